package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// verifyAssertion checks an X-MFA-Assertion against the keys published at
// /.well-known/jwks.json and returns its claims.
func (f *coreFixture) verifyAssertion(token string) jwt.MapClaims {
	f.t.Helper()
	g := NewWithT(f.t)
	w := f.serve(httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	keys, err := jwks.Parse(w.Body.Bytes())
	g.Expect(err).NotTo(HaveOccurred())
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(f.clock.Now), jwt.WithExpirationRequired()).
		ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
			k, ok := keys[t.Header["kid"].(string)]
			g.Expect(ok).To(BeTrue(), "kid %v published", t.Header["kid"])
			return k.Key, nil
		})
	g.Expect(err).NotTo(HaveOccurred())
	return claims
}

func TestAssertionClaims(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com:8443/home", map[string]string{"X-Auth-Request-Email": ana}), cookies...))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	c := f.verifyAssertion(w.Header().Get(headerAssertion))
	now := f.clock.Now().Unix()
	g.Expect(c["sub"]).To(Equal(ana))
	g.Expect(c["aud"]).To(Equal("admin.example.com"))
	g.Expect(c["iss"]).To(Equal("https://auth.example.com"))
	g.Expect(c["multifactor"]).To(Equal([]any{"google-authenticator"}))
	g.Expect(c["amr"]).To(Equal([]any{"mfa", "otp"}))
	g.Expect(c["iat"]).To(BeNumerically("==", now))
	g.Expect(c["exp"]).To(BeNumerically("==", now+int64(assertionLifetime.Seconds())))
}

func TestAssertionIsReusedUntilNearExpiry(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	req := func() string {
		w := f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/public/", map[string]string{"X-Auth-Request-Email": ana}))
		g.Expect(w.Code).To(Equal(http.StatusOK))
		return w.Header().Get(headerAssertion)
	}
	first := req()
	f.clock.Advance(assertionLifetime - assertionRenewBefore - time.Second)
	g.Expect(req()).To(Equal(first))
	f.clock.Advance(2 * time.Second)
	renewed := req()
	g.Expect(renewed).NotTo(Equal(first))
	f.verifyAssertion(renewed)

	// Another user, another host: another assertion.
	w := f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/public/", map[string]string{"X-Auth-Request-Email": "bob@example.com"}))
	g.Expect(w.Header().Get(headerAssertion)).NotTo(Equal(renewed))
}

func TestJWKSPublishesEverySigningKey(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	before := f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/public/", map[string]string{"X-Auth-Request-Email": ana})).Header().Get(headerAssertion)

	kd := *f.kr
	g.Expect(kd.AddSigningKey(f.clock.Now())).To(Succeed())
	f.setKeyring(&kd)

	w := f.serve(httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Get("Content-Type")).To(Equal("application/jwk-set+json"))
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	g.Expect(json.Unmarshal(w.Body.Bytes(), &set)).To(Succeed())
	g.Expect(set.Keys).To(HaveLen(2))
	for i, k := range set.Keys {
		g.Expect(k).To(HaveKeyWithValue("kid", kd.SigningKeys[i].ID))
		g.Expect(k).To(HaveKeyWithValue("kty", "EC"))
		g.Expect(k).To(HaveKeyWithValue("alg", "ES256"))
		g.Expect(k).NotTo(HaveKey("d")) // never the private part
	}
	// Assertions signed before the rotation still verify; new ones use the
	// new key.
	f.verifyAssertion(before)
	after := f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/public/", map[string]string{"X-Auth-Request-Email": ana})).Header().Get(headerAssertion)
	tok, _, err := jwt.NewParser().ParseUnverified(after, jwt.MapClaims{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok.Header["kid"]).To(Equal(kd.SigningKeys[0].ID))
	f.verifyAssertion(after)
}
