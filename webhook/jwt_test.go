package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

const coreIssuerURL = "https://idp.example.com"

// coreIssuer is an identity provider: signing keys and a JWKS endpoint.
type coreIssuer struct {
	srv     *httptest.Server
	ec      *ecdsa.PrivateKey
	rsa     *rsa.PrivateKey
	clock   *coreClock
	mu      sync.Mutex
	keys    []map[string]string
	fetches int
}

var (
	coreRSAOnce sync.Once
	coreRSAKey  *rsa.PrivateKey
)

func newCoreIssuer(t testing.TB) *coreIssuer {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	coreRSAOnce.Do(func() { coreRSAKey, _ = rsa.GenerateKey(rand.Reader, 2048) })
	i := &coreIssuer{ec: ec, rsa: coreRSAKey}
	i.publishEC("ec-1", &ec.PublicKey)
	i.keys = append(i.keys, map[string]string{"kty": "RSA", "kid": "rsa-1", "use": "sig",
		"n": b64(coreRSAKey.N.Bytes()), "e": b64(big.NewInt(int64(coreRSAKey.E)).Bytes())})
	i.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i.mu.Lock()
		defer i.mu.Unlock()
		i.fetches++
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": i.keys})
	}))
	t.Cleanup(i.srv.Close)
	return i
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (i *coreIssuer) publishEC(kid string, pub *ecdsa.PublicKey) {
	i.mu.Lock()
	defer i.mu.Unlock()
	b, _ := pub.Bytes()
	i.keys = append(i.keys, map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": b64(b[1:33]), "y": b64(b[33:])})
}

func (i *coreIssuer) fetchCount() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.fetches
}

// policyYAML is the MFAPolicy apps/jwt-app with this issuer's JWT identity.
func (i *coreIssuer) policyYAML(rules string) string {
	return `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: jwt-app, namespace: apps }
spec:
  identity:
    jwt: { issuer: "` + coreIssuerURL + `", audiences: [other, app], jwksURL: "` + i.srv.URL + `/jwks" }
  rules:` + rules
}

// claims fills iss, aud, iat and exp around the clock unless set.
func (i *coreIssuer) claims(c jwt.MapClaims) jwt.MapClaims {
	now := i.clock.Now()
	out := jwt.MapClaims{"iss": coreIssuerURL, "aud": "app", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	for k, v := range c {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

func (i *coreIssuer) sign(t testing.TB, c jwt.MapClaims) string {
	return i.signWith(t, jwt.SigningMethodES256, i.ec, "ec-1", c)
}

func (i *coreIssuer) signWith(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, i.claims(c))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return s
}

func userOf(id string) policy.User { return policy.User{ID: id, Email: id} }

const coreJWTRules = `
  - name: admins-denied-at-night
    when: '"role" in user.claims && user.claims.role == "night-owl"'
    action: Deny
  - name: groups
    when: '"ops" in user.groups && user.claims.amr == ["pwd"] && user.email == "ana@example.com"'
    action: Allow
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`

func TestJWTIdentity(t *testing.T) {
	idp := newCoreIssuer(t)
	f := newCoreServer(t, coreProvidersYAML+idp.policyYAML(coreJWTRules))
	idp.clock = f.clock
	now := f.clock.Now()
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pubPEM := func() []byte {
		der, _ := x509.MarshalPKIXPublicKey(&idp.ec.PublicKey)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}()
	ops := jwt.MapClaims{"sub": "ana", "email": ana, "groups": []string{"ops"}, "amr": []string{"pwd"}}

	tests := []struct {
		name     string
		token    func() string
		header   string
		wantCode int
		wantUser string
	}{
		{"ES256, claims and groups reach the rules", func() string { return idp.sign(t, ops) }, "", http.StatusOK, "ana"},
		{"RS256", func() string { return idp.signWith(t, jwt.SigningMethodRS256, idp.rsa, "rsa-1", ops) }, "", http.StatusOK, "ana"},
		{"a claim denies", func() string { return idp.sign(t, jwt.MapClaims{"sub": "ana", "role": "night-owl"}) }, "", http.StatusForbidden, ""},
		{"RequireMFA without a cookie", func() string { return idp.sign(t, jwt.MapClaims{"sub": "ana"}) }, "", http.StatusUnauthorized, ""},
		{"alg none", func() string {
			return idp.signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ec-1", ops)
		}, "", http.StatusUnauthorized, ""},
		{"HS256 keyed with the public key", func() string { return idp.signWith(t, jwt.SigningMethodHS256, pubPEM, "ec-1", ops) }, "", http.StatusUnauthorized, ""},
		{"ES256 header on the RSA key", func() string { return idp.signWith(t, jwt.SigningMethodES256, idp.ec, "rsa-1", ops) }, "", http.StatusUnauthorized, ""},
		{"ES384 with a P-384 key under the P-256 kid", func() string { return idp.signWith(t, jwt.SigningMethodES384, p384, "ec-1", ops) }, "", http.StatusUnauthorized, ""},
		{"wrong audience", func() string { return idp.sign(t, jwt.MapClaims{"sub": "ana", "aud": "elsewhere"}) }, "", http.StatusUnauthorized, ""},
		{"wrong issuer", func() string { return idp.sign(t, jwt.MapClaims{"sub": "ana", "iss": "https://evil.example.com"}) }, "", http.StatusUnauthorized, ""},
		{"expired", func() string {
			return idp.sign(t, jwt.MapClaims{"sub": "ana", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})
		}, "", http.StatusUnauthorized, ""},
		{"no exp", func() string { return idp.sign(t, jwt.MapClaims{"sub": "ana", "exp": nil}) }, "", http.StatusUnauthorized, ""},
		{"not yet valid", func() string { return idp.sign(t, jwt.MapClaims{"sub": "ana", "nbf": now.Add(time.Hour).Unix()}) }, "", http.StatusUnauthorized, ""},
		{"unknown kid", func() string { return idp.signWith(t, jwt.SigningMethodES256, ec2, "ec-unknown", ops) }, "", http.StatusUnauthorized, ""},
		{"signed by another key under a known kid", func() string { return idp.signWith(t, jwt.SigningMethodES256, ec2, "ec-1", ops) }, "", http.StatusUnauthorized, ""},
		{"no user claim", func() string { return idp.sign(t, jwt.MapClaims{"email": ana}) }, "", http.StatusUnauthorized, ""},
		{"not a bearer token", func() string { return idp.sign(t, ops) }, "Basic ", http.StatusUnauthorized, ""},
		{"no token", func() string { return "" }, "", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			scheme := "Bearer "
			if tt.header != "" {
				scheme = tt.header
			}
			h := map[string]string{}
			if tok := tt.token(); tok != "" {
				h["Authorization"] = scheme + tok
			}
			// identity headers are ignored for a JWT policy.
			h["X-Auth-Request-Email"] = ana
			w := f.serve(authRequest("/auth/apps/jwt-app", "https://app.example.com/", h))
			g.Expect(w.Code).To(Equal(tt.wantCode), f.logs.String())
			g.Expect(w.Header().Get(headerUser)).To(Equal(tt.wantUser))
		})
	}
}

func TestJWTFromCookieRecordsAuthTime(t *testing.T) {
	g := NewWithT(t)
	idp := newCoreIssuer(t)
	f := newCoreServer(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: cookie-app, namespace: apps }
spec:
  identity:
    jwt: { issuer: "`+coreIssuerURL+`", audiences: [app], jwksURL: "`+idp.srv.URL+`", cookie: id_token, userClaim: email }
  rules: [{ name: all, when: 'true', action: Allow }]
`)
	idp.clock = f.clock
	login := f.clock.Now().Add(-time.Hour).Truncate(time.Second)
	e := f.s.config.snapshot().entry("apps", "cookie-app")
	for _, tt := range []struct {
		name   string
		claims jwt.MapClaims
		want   time.Time
	}{
		{"auth_time", jwt.MapClaims{"email": ana, "auth_time": login.Unix(), "iat": login.Add(30 * time.Minute).Unix()}, login},
		{"iat when no auth_time", jwt.MapClaims{"email": ana, "iat": login.Unix()}, login},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.AddCookie(&http.Cookie{Name: "id_token", Value: idp.sign(t, tt.claims)})
			id, err := identifyAt(f.s, r, e)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(id).NotTo(BeNil())
			g.Expect(id.Source).To(Equal(sourceJWT))
			g.Expect(id.User.ID).To(Equal(ana))
			g.Expect(id.AuthTime.Equal(tt.want)).To(BeTrue(), "%s != %s", id.AuthTime, tt.want)
		})
	}
	// A bearer header is not where this policy looks.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+idp.sign(t, jwt.MapClaims{"email": ana}))
	id, err := identifyAt(f.s, r, e)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id).To(BeNil())
}

func TestJWTVerificationIsCachedUntilExpiry(t *testing.T) {
	g := NewWithT(t)
	idp := newCoreIssuer(t)
	f := newCoreServer(t, coreProvidersYAML+idp.policyYAML(`
  - { name: all, when: 'true', action: Allow }
`))
	idp.clock = f.clock
	tok := idp.sign(t, jwt.MapClaims{"sub": "ana", "exp": f.clock.Now().Add(5 * time.Minute).Unix()})
	req := func() *http.Request {
		return authRequest("/auth/apps/jwt-app", "https://app.example.com/", map[string]string{"Authorization": "Bearer " + tok})
	}
	g.Expect(f.serve(req()).Code).To(Equal(http.StatusOK))
	e := f.s.config.snapshot().entry("apps", "jwt-app")
	g.Expect(e.verifier.tokens.Len()).To(Equal(1))
	g.Expect(f.serve(req()).Code).To(Equal(http.StatusOK))
	g.Expect(e.verifier.tokens.Len()).To(Equal(1))

	f.clock.Advance(5*time.Minute + jwtLeeway + time.Second)
	g.Expect(f.serve(req()).Code).To(Equal(http.StatusUnauthorized))
}

func TestJWKSRefetchedOnUnknownKidAtMostEveryInterval(t *testing.T) {
	g := NewWithT(t)
	idp := newCoreIssuer(t)
	f := newCoreServer(t, coreProvidersYAML+idp.policyYAML(`
  - { name: all, when: 'true', action: Allow }
`))
	idp.clock = f.clock
	req := func(tok string) *http.Request {
		return authRequest("/auth/apps/jwt-app", "https://app.example.com/", map[string]string{"Authorization": "Bearer " + tok})
	}
	g.Expect(f.serve(req(idp.sign(t, jwt.MapClaims{"sub": "ana"}))).Code).To(Equal(http.StatusOK))
	fetched := idp.fetchCount()
	g.Expect(fetched).To(BeNumerically(">=", 1))

	// The issuer rotates in a new key; within the interval, tokens naming
	// it are refused without asking the issuer again.
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp.publishEC("ec-2", &ec2.PublicKey)
	tok := idp.signWith(t, jwt.SigningMethodES256, ec2, "ec-2", jwt.MapClaims{"sub": "ana"})
	f.clock.Advance(jwks.MinRefresh / 2)
	for range 5 {
		g.Expect(f.serve(req(tok)).Code).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(idp.fetchCount()).To(Equal(fetched))

	f.clock.Advance(jwks.MinRefresh)
	g.Expect(f.serve(req(tok)).Code).To(Equal(http.StatusOK))
	g.Expect(idp.fetchCount()).To(Equal(fetched + 1))
}

func TestJWKSRefreshedWhenOldSoRemovedKeysStopWorking(t *testing.T) {
	g := NewWithT(t)
	idp := newCoreIssuer(t)
	f := newCoreServer(t, coreProvidersYAML+idp.policyYAML(`
  - { name: all, when: 'true', action: Allow }
`))
	idp.clock = f.clock
	req := func(sub string) int {
		tok := idp.sign(t, jwt.MapClaims{"sub": sub})
		return f.serve(authRequest("/auth/apps/jwt-app", "https://app.example.com/", map[string]string{"Authorization": "Bearer " + tok})).Code
	}
	g.Expect(req("ana")).To(Equal(http.StatusOK))
	fetched := idp.fetchCount()

	// The issuer withdraws its EC key; an hour later the keys are
	// refetched in the background, after which the key no longer verifies.
	idp.mu.Lock()
	idp.keys = idp.keys[1:]
	idp.mu.Unlock()
	f.clock.Advance(jwks.MaxAge + time.Minute)
	g.Expect(req("bob")).To(Equal(http.StatusOK)) // served with the keys known, starts the refresh
	g.Eventually(idp.fetchCount, 10*time.Second, 10*time.Millisecond).Should(BeNumerically(">", fetched))
	g.Eventually(func() int { return req("carol") }, 10*time.Second, 10*time.Millisecond).Should(Equal(http.StatusUnauthorized))
}
