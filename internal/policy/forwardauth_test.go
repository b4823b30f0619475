package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

func forwardAuthIdentity(mut func(f *v1alpha1.ForwardAuthIdentity)) v1alpha1.IdentitySpec {
	f := &v1alpha1.ForwardAuthIdentity{URL: "http://oauth2-proxy.auth.svc/oauth2/auth", SigninURL: "https://sso.example.com/oauth2/start"}
	if mut != nil {
		mut(f)
	}
	return v1alpha1.IdentitySpec{ForwardAuth: f}
}

// TestForwardAuthIsChecked: each bad setting of identity.forwardAuth is
// refused naming its field; a good one is accepted.
func TestForwardAuthIsChecked(t *testing.T) {
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	tests := []struct {
		name, field string
		mut         func(f *v1alpha1.ForwardAuthIdentity)
	}{
		{"defaults", "", nil},
		{"a relative url", "spec.identity.forwardAuth.url", func(f *v1alpha1.ForwardAuthIdentity) { f.URL = "/oauth2/auth" }},
		{"a url with user info", "spec.identity.forwardAuth.url", func(f *v1alpha1.ForwardAuthIdentity) { f.URL = "http://u:p@o/oauth2/auth" }},
		{"a sign-in url of another scheme", "spec.identity.forwardAuth.signinURL", func(f *v1alpha1.ForwardAuthIdentity) { f.SigninURL = "javascript:alert(1)" }},
		{"a sign-in url carrying rd", "spec.identity.forwardAuth.signinURL", func(f *v1alpha1.ForwardAuthIdentity) {
			f.SigninURL = "https://sso.example.com/oauth2/start?rd=https://evil.example"
		}},
		{"a cache TTL over 5m", "spec.identity.forwardAuth.cacheTTL", func(f *v1alpha1.ForwardAuthIdentity) { f.CacheTTL = dur(6 * time.Minute) }},
		{"a timeout under 100ms", "spec.identity.forwardAuth.timeout", func(f *v1alpha1.ForwardAuthIdentity) { f.Timeout = dur(time.Millisecond) }},
		{"a token from a cookie", "spec.identity.forwardAuth.token.cookie", func(f *v1alpha1.ForwardAuthIdentity) {
			f.Token = &v1alpha1.JWTIdentity{Issuer: "https://sso.example.com", Audiences: []string{"app"}, JWKSURL: "https://sso.example.com/jwks", Cookie: "id"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := CheckPolicy(claimsPolicy(forwardAuthIdentity(tt.mut), "true"), anyProvider)
			if tt.field == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var fe *FieldError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "%v", err)
			g.Expect(fe.Field).To(Equal(tt.field))
			g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonInvalidSpec))
		})
	}
}

// TestForwardAuthClaimsNeedAToken: user.claims is refused under a
// forwardAuth identity read from headers, accepted with a token.
func TestForwardAuthClaimsNeedAToken(t *testing.T) {
	g := NewWithT(t)
	_, err := CheckPolicy(claimsPolicy(forwardAuthIdentity(nil), `"pwd" in user.claims.amr`), anyProvider)
	g.Expect(err).To(MatchError(ContainSubstring("spec.identity.forwardAuth.token")))
	_, err = CheckPolicy(claimsPolicy(forwardAuthIdentity(func(f *v1alpha1.ForwardAuthIdentity) {
		f.Token = &v1alpha1.JWTIdentity{Issuer: "https://sso.example.com", Audiences: []string{"app"}, JWKSURL: "https://sso.example.com/jwks"}
	}), `"pwd" in user.claims.amr`), anyProvider)
	g.Expect(err).NotTo(HaveOccurred())
}

// TestForwardAuthCABundleFromASecret: the CA bundle is read from the
// policy's namespace; missing Secret, missing key and non-PEM content are
// refused naming the field.
func TestForwardAuthCABundleFromASecret(t *testing.T) {
	p := claimsPolicy(forwardAuthIdentity(func(f *v1alpha1.ForwardAuthIdentity) {
		f.CABundleRef = &v1alpha1.SecretKeySelector{Name: "sso-ca", Key: "ca.crt"}
	}), "true")
	g := NewWithT(t)
	g.Expect(PolicySecretNames(&p.Spec)).To(Equal([]string{"sso-ca"}))
	secret := func(ns, data string) map[types.NamespacedName]*corev1.Secret {
		return map[types.NamespacedName]*corev1.Secret{{Namespace: ns, Name: "sso-ca"}: {Data: map[string][]byte{"ca.crt": []byte(data)}}}
	}
	_, err := ResolvePolicySecrets(p, nil)
	g.Expect(err).To(MatchError(ContainSubstring(`Secret "sso-ca" not found in namespace "apps"`)))
	_, err = ResolvePolicySecrets(p, secret("other", testCAPEM))
	g.Expect(err).To(MatchError(ContainSubstring("not found")), "a Secret of another namespace is not read")
	_, err = ResolvePolicySecrets(p, secret("apps", "not a certificate"))
	g.Expect(err).To(MatchError(ContainSubstring("holds no PEM certificate")))
	ca, err := ResolvePolicySecrets(p, secret("apps", testCAPEM))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ca).To(Equal(testCAPEM))
}

// testCAPEM is a self-signed certificate made for the test.
var testCAPEM = func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}()
