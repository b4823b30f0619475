package webhook

import (
	"fmt"
	"net/http"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// securityKey is one WebAuthn key on the Security page.
type securityKey struct {
	Name, Created, LastUsed string
}

// securityFactor is what the Security page shows of the user's enrolment
// e with bp; or, when the user has none there, the link that adds one.
func (c *challengePages) securityFactor(cr *challengeRequest, bp *policy.BundleProvider, e *store.Enrollment) (securityFactor, *choice) {
	f := securityFactor{Label: providerLabel(bp), Detail: providerDetail(bp), Provider: choiceName(cr.policy, bp)}
	with := *cr
	with.provider = bp
	switch bp.Spec.Type {
	case v1alpha1.ProviderTOTP:
		if e.TOTP == nil {
			return f, &choice{URL: c.pageURL(&with, f.Provider, ""), Label: f.Label, Detail: bp.Spec.TOTP.GetIssuer()}
		}
		f.Enrolled = true
		f.Created = e.TOTP.Created.UTC().Format(dateLayout)
		if e.TOTP.LastStep > 0 && e.TOTP.PeriodSeconds > 0 {
			f.LastUsed = time.Unix(e.TOTP.LastStep*int64(e.TOTP.PeriodSeconds), 0).UTC().Format(dateLayout)
		}
	case v1alpha1.ProviderWebAuthn:
		if !e.HasCredentials() {
			return f, &choice{URL: c.pageURL(&with, f.Provider, ""), Label: f.Label, Detail: f.Detail}
		}
		f.Enrolled = true
		for _, k := range e.WebAuthn.Credentials {
			key := securityKey{Name: k.Name, Created: k.Created.UTC().Format(dateLayout)}
			if !k.LastUsed.IsZero() {
				key.LastUsed = k.LastUsed.UTC().Format(dateLayout)
			}
			f.Keys = append(f.Keys, key)
		}
		if len(e.WebAuthn.Credentials) < store.MaxWebAuthnCredentials {
			f.AddKeyURL = c.pageURL(&with, f.Provider, methodAddKey)
		}
	default:
		return f, nil // Duo enrols at Duo: always there
	}
	f.CodesLeft = fmt.Sprintf("%d recovery codes left", len(e.RecoveryCodeHashes))
	return f, nil
}

// hasMethod says whether the user can verify with bp, given the user's
// enrolment e with it.
func hasMethod(bp *policy.BundleProvider, e *store.Enrollment) bool {
	switch bp.Spec.Type {
	case v1alpha1.ProviderTOTP:
		return e.TOTP != nil
	case v1alpha1.ProviderWebAuthn:
		return e.HasCredentials()
	}
	return true // Duo enrols at Duo
}

// holdsCodes says whether e, the user's enrolment with bp, comes with
// recovery codes: an authenticator app or keys.
func holdsCodes(bp *policy.BundleProvider, e *store.Enrollment) bool {
	switch bp.Spec.Type {
	case v1alpha1.ProviderTOTP, v1alpha1.ProviderWebAuthn:
		return hasMethod(bp, e)
	}
	return false
}

// removeMethod removes the user's authenticator app, or every key, of the
// chosen provider, with its recovery codes. Nothing else of the record
// changes (lockout, remembered browsers).
func (c *challengePages) removeMethod(r *http.Request, cr *challengeRequest) error {
	if cr.provider.Spec.Type != v1alpha1.ProviderWebAuthn {
		return c.authenticator(cr).Reset(r.Context(), cr.enrollment())
	}
	_, err := c.store.Update(r.Context(), cr.enrollment(), func(e *store.Enrollment) error {
		e.WebAuthn, e.RecoveryCodeHashes = nil, nil
		return nil
	})
	return err
}
