package passkey

import (
	"errors"
	"net/url"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

func TestRegistrableSuffix(t *testing.T) {
	for _, tc := range []struct {
		rpID, host string
		want       bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "auth.example.com", true},
		{"Example.COM", "auth.example.com", true},
		{"example.com", "badexample.com", false},
		{"example.com", "example.org", false},
		{"auth.example.com", "example.com", false},
		{"com", "example.com", false},
		{"co.uk", "example.co.uk", false},
		{"github.io", "me.github.io", false},
		{"localhost", "app.localhost", false},
		{"app.localhost", "app.localhost", true},
		{"", "", false},
	} {
		if got := RegistrableSuffix(tc.rpID, tc.host); got != tc.want {
			t.Errorf("RegistrableSuffix(%q, %q) = %v, want %v", tc.rpID, tc.host, got, tc.want)
		}
	}
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestCheckSpecNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  v1alpha1.WebAuthnSpec
		field string
	}{
		{"rp id outside an origin", v1alpha1.WebAuthnSpec{RPID: "example.com", Origins: []string{"https://auth.example.com", "https://login.example.org"}}, "spec.webauthn.rpID"},
		{"rp id a public suffix", v1alpha1.WebAuthnSpec{RPID: "co.uk", Origins: []string{"https://example.co.uk"}}, "spec.webauthn.rpID"},
		{"plain http origin", v1alpha1.WebAuthnSpec{Origins: []string{"http://auth.example.com"}}, "spec.webauthn.origins[0]"},
		{"an IP address origin", v1alpha1.WebAuthnSpec{Origins: []string{"https://127.0.0.1"}}, "spec.webauthn.origins[0]"},
		{"origin with a path", v1alpha1.WebAuthnSpec{Origins: []string{"https://auth.example.com/x"}}, "spec.webauthn.origins[0]"},
		{"aaguids without attestation", v1alpha1.WebAuthnSpec{AllowedAAGUIDs: []string{"cb69481e-8ff7-4039-93ec-0a2729a154a8"}}, "spec.webauthn.allowedAAGUIDs"},
		{"a bad aaguid", v1alpha1.WebAuthnSpec{Attestation: v1alpha1.AttestationDirect, AllowedAAGUIDs: []string{"nope"}}, "spec.webauthn.allowedAAGUIDs[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := CheckSpec(&tc.spec)
			g.Expect(err).To(HaveOccurred())
			g.Expect(fieldOf(err)).To(Equal(tc.field), err.Error())
		})
	}
	g := NewWithT(t)
	g.Expect(CheckSpec(&v1alpha1.WebAuthnSpec{RPID: "example.com", Origins: []string{"https://auth.example.com", "https://example.com:8443", "http://app.localhost:8080"}})).
		To(MatchError(ContainSubstring("app.localhost")), "an origin outside the RP ID")
	g.Expect(CheckSpec(&v1alpha1.WebAuthnSpec{RPID: "example.com", Origins: []string{"https://auth.example.com", "https://example.com:8443"}})).To(Succeed())
	g.Expect(CheckSpec(nil)).To(Succeed())
}

func TestDefaults(t *testing.T) {
	g := NewWithT(t)
	public, _ := url.Parse("https://auth.example.com")

	rp, err := New(nil, Defaults{CookieDomain: ".example.com", PublicURL: public, Hosts: []string{"admin.example.com", "*.example.com", "shop.example.org"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rp.ID).To(Equal("example.com"), "the cookie domain")
	g.Expect(rp.Origins).To(Equal([]string{"https://auth.example.com", "https://admin.example.com"}), "the public URL and the policy hosts under the RP ID")

	rp, err = New(&v1alpha1.WebAuthnSpec{}, Defaults{PublicURL: public})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rp.ID).To(Equal("auth.example.com"), "the public URL's host without a cookie domain")

	_, err = New(nil, Defaults{CookieDomain: "example.org", PublicURL: public})
	g.Expect(fieldOf(err)).To(Equal("spec.webauthn.rpID"), "the challenge pages are outside the RP ID")

	internal, _ := url.Parse("http://mfa-challenge.mfa-system.svc.cluster.local")
	_, err = New(nil, Defaults{PublicURL: internal})
	g.Expect(fieldOf(err)).To(Equal("spec.webauthn.origins"), "no browser runs WebAuthn on a plain http public URL")

	_, err = New(nil, Defaults{})
	g.Expect(fieldOf(err)).To(Equal("spec.webauthn.rpID"))
}
