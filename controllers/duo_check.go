package controllers

import (
	"context"
	"fmt"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// CheckDuoCredentials is the DuoCheckFunc of the operator: it asks Duo's
// Auth API /auth/v2/check whether a provider's credentials work, trusting
// the provider's CA bundle (caBundleRef) instead of the system roots when
// it has one. TLS verification is never turned off.
//
// Its errors classify as classifyDuoError expects: Duo's refusals
// (*duo.APIError: 401xx bad keys or signature, 40105 clock skew, ...) are
// terminal; Duo rate limiting (429), a peer failing TLS verification
// (*duo.TLSError) and an unreachable Duo (DNS, connection, timeout, HTTP
// 5xx) are not, and are retried with backoff. Settings the client refuses
// before calling (a malformed API host, a CA bundle without certificates)
// are the author's to fix: terminal as well.
func CheckDuoCredentials(ctx context.Context, apiHost string, creds policy.DuoCredentials) error {
	c, err := duo.New(apiHost, creds)
	if err != nil {
		return terminalDuoError{err}
	}
	return c.Check(ctx)
}

// terminalDuoError marks an error as a configuration error.
type terminalDuoError struct{ error }

func (terminalDuoError) Terminal() bool  { return true }
func (e terminalDuoError) Unwrap() error { return e.error }

// validateDuoAPIHost refuses an API host that does not look like one Duo
// hands out (api-xxxxxxxx.duosecurity.com), unless the provider names a CA
// bundle: a private proxy or a test server is trusted only through the
// certificates its author gives, so a typo in a public host name is caught
// here rather than sent credentials. A nil error for other providers.
func validateDuoAPIHost(p *v1alpha1.MFAProvider) error {
	d := p.Spec.Duo
	if p.Spec.Type != v1alpha1.ProviderDuo || d == nil {
		return nil
	}
	if duo.ValidAPIHost(d.APIHost) || d.CABundleRef != nil {
		return nil
	}
	return &policy.FieldError{Field: "spec.duo.apiHost", Reason: v1alpha1.ReasonInvalidSpec,
		Message: fmt.Sprintf("%q is not a Duo API host: use the API hostname of the Duo Auth API application, e.g. api-xxxxxxxx.duosecurity.com (another host, such as a private proxy, needs spec.duo.caBundleRef)", d.APIHost)}
}
