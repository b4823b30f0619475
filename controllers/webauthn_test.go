package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

func webAuthnProvider(ns string, spec *v1alpha1.WebAuthnSpec) *v1alpha1.MFAProvider {
	return &v1alpha1.MFAProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "webauthn"},
		Spec:       v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderWebAuthn, WebAuthn: spec},
	}
}

// TestWebAuthnProviderVerdicts: the defaults (the operator's cookie domain
// and public URL) make a Ready provider; an RP ID that is not a registrable
// suffix of every origin is refused with the field named.
func TestWebAuthnProviderVerdicts(t *testing.T) {
	tests := []struct {
		name    string
		spec    *v1alpha1.WebAuthnSpec
		message string // "" for Ready
	}{
		{name: "defaults", spec: nil},
		{name: "explicit origins under the RP ID", spec: &v1alpha1.WebAuthnSpec{RPID: "example.com", Origins: []string{"https://auth.example.com", "https://admin.example.com"}}},
		{name: "an origin outside the RP ID", spec: &v1alpha1.WebAuthnSpec{RPID: "example.com", Origins: []string{"https://auth.example.com", "https://login.example.org"}},
			message: `spec.webauthn.rpID: "example.com" is not login.example.org nor a registrable suffix of it`},
		{name: "the public URL outside the RP ID", spec: &v1alpha1.WebAuthnSpec{RPID: "other.example.com"},
			message: `spec.webauthn.rpID: "other.example.com" is not auth.example.com nor a registrable suffix of it`},
		{name: "a public suffix", spec: &v1alpha1.WebAuthnSpec{RPID: "co.uk", Origins: []string{"https://shop.co.uk"}},
			message: `spec.webauthn.rpID: "co.uk" is not shop.co.uk nor a registrable suffix of it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prov := webAuthnProvider(newNamespace(t), tt.spec)
			create(t, prov)
			waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
				g.Expect(p.Status.Multifactor).To(Equal(v1alpha1.MultifactorWebAuthn))
				if tt.message == "" {
					ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
					g.Expect(ready.Message).To(Equal("WebAuthn provider ready"))
					return
				}
				ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
					verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonInvalidSpec, stalled: true})
				g.Expect(ready.Message).To(ContainSubstring(tt.message))
			})
		})
	}
}

// TestWebAuthnCRDValidation: the API server refuses what the schema can
// tell is wrong before any controller sees it.
func TestWebAuthnCRDValidation(t *testing.T) {
	ns := newNamespace(t)
	for name, tc := range map[string]struct {
		spec v1alpha1.MFAProviderSpec
		msg  string
	}{
		"allowedAAGUIDs without direct attestation": {v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderWebAuthn, WebAuthn: &v1alpha1.WebAuthnSpec{AllowedAAGUIDs: []string{"cb69481e-8ff7-4039-93ec-0a2729a154a8"}}}, "allowedAAGUIDs needs attestation: direct"},
		"webauthn settings on a totp provider":      {v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderTOTP, WebAuthn: &v1alpha1.WebAuthnSpec{}}, "spec.webauthn is only allowed when type is webauthn"},
		"a timeout too long":                        {v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderWebAuthn, WebAuthn: &v1alpha1.WebAuthnSpec{Timeout: &metav1.Duration{Duration: 3600e9}}}, "timeout must be a duration between 30s and 10m"},
		"an unknown user verification":              {v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderWebAuthn, WebAuthn: &v1alpha1.WebAuthnSpec{UserVerification: "always"}}, "supported values"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := &v1alpha1.MFAProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"}, Spec: tc.spec}
			err := k8sClient.Create(ctx, p)
			g.Expect(err).To(MatchError(ContainSubstring(tc.msg)))
		})
	}
}
