package policy

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// TestRememberForBounds: the standalone server's files are not checked by
// an API server, so CheckPolicy refuses what the CRD refuses, with the
// same words.
func TestRememberForBounds(t *testing.T) {
	ready := Tenancy{Provider: func(types.NamespacedName, string) ProviderState { return ProviderReady }}
	tests := []struct {
		rememberFor time.Duration
		refused     string
	}{
		{0, "rememberFor must be a duration between 1m and 8760h, e.g. 720h, not 0s"},
		{-5 * time.Minute, "rememberFor must be a duration between 1m and 8760h, e.g. 720h, not -5m"},
		{59 * time.Second, "rememberFor must be a duration between 1m and 8760h, e.g. 720h, not 59s"},
		{1000000 * time.Hour, "rememberFor must be a duration between 1m and 8760h, e.g. 720h, not 1000000h"},
		{8760*time.Hour + time.Second, "rememberFor must be a duration between 1m and 8760h, e.g. 720h, not 8760h0m1s"},
		{time.Minute, ""},
		{90 * time.Minute, ""},
		{720 * time.Hour, ""},
		{8760 * time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.rememberFor.String(), func(t *testing.T) {
			g := NewWithT(t)
			p := mfaPolicy("apps", "admin", 1, "false", "totp")
			p.Spec.Rules[1].Multifactor.RememberFor = &metav1.Duration{Duration: tt.rememberFor}
			_, err := CheckPolicy(&p, ready)
			if tt.refused == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var fe *FieldError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "%v", err)
			g.Expect(fe.Field).To(Equal("spec.rules[1].multifactor.rememberFor"))
			g.Expect(fe.Rule).To(Equal("everyone-else"))
			g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonInvalidSpec))
			g.Expect(fe.Message).To(Equal(tt.refused))
		})
	}
	t.Run("unset is the default", func(t *testing.T) {
		p := mfaPolicy("apps", "admin", 1, "false", "totp")
		_, err := CheckPolicy(&p, ready)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
	})
}

// TestTOTPPeriodBounds: a period is a whole number of seconds from 1s to
// 10m.
func TestTOTPPeriodBounds(t *testing.T) {
	tests := []struct {
		period  time.Duration
		refused string
	}{
		{0, "period 0s must be a whole number of seconds between 1s and 10m (authenticator apps use 30s)"},
		{1500 * time.Millisecond, "period 1.5s must be a whole number of seconds between 1s and 10m (authenticator apps use 30s)"},
		{11 * time.Minute, "period 11m must be a whole number of seconds between 1s and 10m (authenticator apps use 30s)"},
		{time.Second, ""},
		{30 * time.Second, ""},
		{10 * time.Minute, ""},
	}
	for _, tt := range tests {
		t.Run(tt.period.String(), func(t *testing.T) {
			g := NewWithT(t)
			p := totpProvider("apps", "totp")
			p.Spec.TOTP.Period = &metav1.Duration{Duration: tt.period}
			_, err := ResolveProvider(&p, nil)
			if tt.refused == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var fe *FieldError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "%v", err)
			g.Expect(fe.Field).To(Equal("spec.totp.period"))
			g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonInvalidSpec))
			g.Expect(fe.Message).To(Equal(tt.refused))
		})
	}
}
