package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]string {
	b, _ := pub.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]string{"kty": "EC", "crv": pub.Curve.Params().Name, "kid": kid, "use": "sig", "x": enc(b[1 : 1+len(b)/2]), "y": enc(b[1+len(b)/2:])}
}

func TestParseKeepsTheUsableSigningKeys(t *testing.T) {
	g := NewWithT(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	enc := base64.RawURLEncoding.EncodeToString
	set, _ := json.Marshal(map[string]any{"keys": []any{
		ecJWK("p256", &p256.PublicKey),
		ecJWK("p384", &p384.PublicKey),
		map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(edPub)},
		map[string]string{"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": enc(rsaKey.N.Bytes()), "e": enc(big.NewInt(int64(rsaKey.E)).Bytes())},
		map[string]string{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]string{"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"},
		map[string]string{"kty": "EC", "crv": "P-256", "kid": "short", "x": "AA", "y": "AA"},
		map[string]string{"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": enc(edPub)},
	}})
	keys, err := Parse(set)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys).To(HaveLen(4))
	g.Expect(keys).To(HaveKey("p256"))
	g.Expect(keys).To(HaveKey("p384"))
	g.Expect(keys).To(HaveKey("#2"), "a key without kid is named by its index")
	g.Expect(keys["rsa"].Alg).To(Equal("RS256"))
	g.Expect(keys["p256"].Key.(*ecdsa.PublicKey).Equal(&p256.PublicKey)).To(BeTrue())

	_, err = Parse([]byte(`{"keys":`))
	g.Expect(err).To(HaveOccurred())
}

func TestCheckKeyTypeRefusesKeysUsedWithAnotherAlgorithm(t *testing.T) {
	g := NewWithT(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	g.Expect(CheckKeyType(Key{Key: &p256.PublicKey}, "ES256")).To(Succeed())
	g.Expect(CheckKeyType(Key{Key: &p256.PublicKey}, "ES384")).To(MatchError(ContainSubstring("EC key on P-256 cannot verify ES384")))
	g.Expect(CheckKeyType(Key{Key: &p256.PublicKey, Alg: "ES256"}, "RS256")).To(MatchError(ContainSubstring("published for ES256")))
	g.Expect(CheckKeyType(Key{Key: &small.PublicKey}, "RS256")).To(MatchError(ContainSubstring("shorter than 2048 bits")))
	g.Expect(CheckKeyType(Key{Key: &small.PublicKey}, "ES256")).To(MatchError(ContainSubstring("RSA key cannot verify ES256")))
	g.Expect(CheckKeyType(Key{Key: edPub}, "EdDSA")).To(Succeed())
	g.Expect(CheckKeyType(Key{Key: edPub}, "ES256")).To(HaveOccurred())
	g.Expect(CheckKeyType(Key{Key: []byte("secret")}, "HS256")).To(HaveOccurred())
}

// issuer publishes a key set and counts the fetches.
type issuer struct {
	mu      sync.Mutex
	keys    []any
	fetches int
}

func (i *issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.fetches++
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": i.keys})
}

func (i *issuer) publish(k ...any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = k
}

func (i *issuer) count() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.fetches
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newKeySet(t *testing.T) (*issuer, *clock, *KeySet) {
	idp := &issuer{}
	srv := httptest.NewServer(idp)
	t.Cleanup(srv.Close)
	c := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	is := NewIssuers(c.now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ks := is.KeySet(srv.URL)
	if is.KeySet(srv.URL) != ks {
		t.Fatal("one KeySet per URL")
	}
	return idp, c, ks
}

func TestKeySetFetchesAnUnknownKidAtMostEveryMinRefresh(t *testing.T) {
	g := NewWithT(t)
	idp, c, ks := newKeySet(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp.publish(ecJWK("k1", &k1.PublicKey))

	key, err := ks.Key(context.Background(), "k1", "ES256")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(key.(*ecdsa.PublicKey).Equal(&k1.PublicKey)).To(BeTrue())
	g.Expect(idp.count()).To(Equal(1))

	idp.publish(ecJWK("k1", &k1.PublicKey), ecJWK("k2", &k2.PublicKey))
	c.advance(MinRefresh / 2)
	for range 5 {
		_, err = ks.Key(context.Background(), "k2", "ES256")
		g.Expect(err).To(MatchError(ErrUnknownKey))
	}
	g.Expect(idp.count()).To(Equal(1), "junk kids do not make the issuer be asked again within MinRefresh")

	c.advance(MinRefresh)
	_, err = ks.Key(context.Background(), "k2", "ES256")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(idp.count()).To(Equal(2))

	_, err = ks.Key(context.Background(), "", "ES256")
	g.Expect(err).To(MatchError(ErrUnknownKey), "without kid, two keys of the type are ambiguous")
}

func TestKeySetRefreshesOldKeysInTheBackground(t *testing.T) {
	g := NewWithT(t)
	idp, c, ks := newKeySet(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp.publish(ecJWK("k1", &k1.PublicKey))
	ks.RefreshIfOld(context.Background())
	g.Expect(idp.count()).To(Equal(1))
	ks.RefreshIfOld(context.Background())
	g.Expect(idp.count()).To(Equal(1), "fresh keys are not fetched again")

	_, err := ks.Key(context.Background(), "", "ES256")
	g.Expect(err).NotTo(HaveOccurred(), "without kid, the only key of the type")

	idp.publish()
	c.advance(MaxAge + time.Minute)
	_, err = ks.Key(context.Background(), "k1", "ES256")
	g.Expect(err).NotTo(HaveOccurred(), "served with the keys known while the refresh runs")
	g.Eventually(idp.count, 10*time.Second, 10*time.Millisecond).Should(Equal(2))
	g.Eventually(func() error { _, err := ks.Key(context.Background(), "k1", "ES256"); return err },
		10*time.Second, 10*time.Millisecond).Should(MatchError(ErrUnknownKey), "a key the issuer removed stops working")
}
