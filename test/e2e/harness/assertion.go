package harness

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
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
	return verifyWithJWKS(t, []byte(p.Body), assertion)
}

// verifyWithJWKS verifies assertion with the keys of a JWKS document:
// ES256 only, exp and iat checked. It returns the claims.
func verifyWithJWKS(t testing.TB, doc []byte, assertion string) jwt.MapClaims {
	t.Helper()
	keys, err := jwks.ParseP256(doc)
	if err != nil {
		t.Fatalf("the JWKS: %v\n%s", err, doc)
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
