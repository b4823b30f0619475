package webhook

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestAMRNamesEachFactorsMethod(t *testing.T) {
	for _, tc := range []struct {
		claimed string
		amr     []string
		visible string
	}{
		{"", []string{}, ""},
		{"google-authenticator", []string{"mfa", "otp"}, "google-authenticator"},
		{"duo", []string{"mfa"}, "duo"},
		{"webauthn+hwk", []string{"mfa", "hwk"}, "webauthn"},
		{"webauthn+swk", []string{"mfa", "swk"}, "webauthn"},
		{"webauthn+hwk,google-authenticator,webauthn+swk", []string{"mfa", "otp", "hwk", "swk"}, "webauthn,google-authenticator"},
	} {
		g := NewWithT(t)
		g.Expect(amr(tc.claimed)).To(Equal(tc.amr), tc.claimed)
		g.Expect(visibleMultifactor(tc.claimed)).To(Equal(tc.visible), tc.claimed)
	}
}
