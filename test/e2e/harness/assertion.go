package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// VerifyAssertion checks an X-MFA-Assertion as an app would: its
// signature against the keys the challenge server publishes at
// /.well-known/jwks.json (fetched through nginx, without a login), ES256
// only, and its time claims. It returns the claims.
func (e *Env) VerifyAssertion(t testing.TB, assertion string) jwt.MapClaims {
	t.Helper()
	p := e.NewClient("", "").GetNoRedirect(t, "/.well-known/jwks.json")
	if p.Status != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json: %d %s", p.Status, p.Body)
	}
	keys, err := parseJWKS([]byte(p.Body))
	if err != nil {
		t.Fatalf("the JWKS: %v\n%s", err, p.Body)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(assertion, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key %q in the JWKS", kid)
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("the assertion does not verify: %v", err)
	}
	return claims
}

// parseJWKS reads the P-256 keys of a JWK set by kid.
func parseJWKS(b []byte) (map[string]*ecdsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty, Crv, X, Y, Kid string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("key %q: bad coordinates", k.Kid)
		}
		pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
			return nil, fmt.Errorf("key %q is not on P-256", k.Kid)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no P-256 key")
	}
	return keys, nil
}
