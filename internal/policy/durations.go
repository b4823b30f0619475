package policy

import (
	"fmt"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// checkRememberFor refuses a rememberFor outside the bounds the CRD
// enforces, for the policies no API server has checked: the standalone
// server's files.
func checkRememberFor(spec *v1alpha1.MFAPolicySpec) error {
	for i := range spec.Rules {
		mf := spec.Rules[i].Multifactor
		if mf == nil || mf.RememberFor == nil {
			continue
		}
		if d := mf.RememberFor.Duration; d < v1alpha1.MinRememberFor || d > v1alpha1.MaxRememberFor {
			return &FieldError{Field: fmt.Sprintf("spec.rules[%d].multifactor.rememberFor", i), Rule: spec.Rules[i].Name, Reason: v1alpha1.ReasonInvalidSpec,
				Message: fmt.Sprintf("rememberFor must be a duration between %s and %s, e.g. 720h, not %s", shortDuration(v1alpha1.MinRememberFor), shortDuration(v1alpha1.MaxRememberFor), shortDuration(d))}
		}
	}
	return nil
}

// checkTOTPPeriod refuses a period that is not a whole number of seconds
// within the bounds the CRD enforces.
func checkTOTPPeriod(t *v1alpha1.TOTPSpec) error {
	if t == nil || t.Period == nil {
		return nil
	}
	if d := t.Period.Duration; d < v1alpha1.MinTOTPPeriod || d > v1alpha1.MaxTOTPPeriod || d%time.Second != 0 {
		return &FieldError{Field: "spec.totp.period", Reason: v1alpha1.ReasonInvalidSpec,
			Message: fmt.Sprintf("period %s must be a whole number of seconds between %s and %s (authenticator apps use 30s)", shortDuration(d), shortDuration(v1alpha1.MinTOTPPeriod), shortDuration(v1alpha1.MaxTOTPPeriod))}
	}
	return nil
}

// shortDuration writes d as a policy would: 720h, 1m, 1h30m, 1.5s.
func shortDuration(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if len(s) > len(zero) && s[len(s)-len(zero):] == zero {
			s = s[:len(s)-len(zero)+1]
		}
	}
	return s
}
