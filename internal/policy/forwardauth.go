package policy

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// checkForwardAuth checks spec.identity.forwardAuth beyond what the CRD
// can: URLs that parse and are absolute, durations within their bounds (for
// files no API server checked) and a token source the server can read.
func checkForwardAuth(spec *v1alpha1.MFAPolicySpec) error {
	f := spec.Identity.ForwardAuth
	if f == nil {
		return nil
	}
	const field = "spec.identity.forwardAuth"
	if err := checkServiceURL(field+".url", f.URL, "the first factor's auth endpoint, e.g. http://oauth2-proxy.auth.svc/oauth2/auth"); err != nil {
		return err
	}
	if err := checkServiceURL(field+".signinURL", f.SigninURL, "the first factor's sign-in page, e.g. https://sso.example.com/oauth2/start"); err != nil {
		return err
	}
	if u, _ := url.Parse(f.SigninURL); u.Query().Has("rd") {
		return &FieldError{Field: field + ".signinURL", Reason: v1alpha1.ReasonInvalidSpec,
			Message: "signinURL must not carry rd: the challenge server adds it (its challenge page, then the original URL); remove ?rd=..."}
	}
	if d := f.CacheTTL; d != nil && (d.Duration < 0 || d.Duration > v1alpha1.MaxForwardAuthCacheTTL) {
		return &FieldError{Field: field + ".cacheTTL", Reason: v1alpha1.ReasonInvalidSpec,
			Message: fmt.Sprintf("cacheTTL must be a duration between 0s and %s, e.g. 10s, not %s", shortDuration(v1alpha1.MaxForwardAuthCacheTTL), shortDuration(d.Duration))}
	}
	if d := f.Timeout; d != nil && (d.Duration < 100*time.Millisecond || d.Duration > v1alpha1.MaxForwardAuthTimeout) {
		return &FieldError{Field: field + ".timeout", Reason: v1alpha1.ReasonInvalidSpec,
			Message: fmt.Sprintf("timeout must be a duration between 100ms and %s, e.g. 2s, not %s", shortDuration(v1alpha1.MaxForwardAuthTimeout), shortDuration(d.Duration))}
	}
	if t := f.Token; t != nil {
		if t.Cookie != "" {
			return &FieldError{Field: field + ".token.cookie", Reason: v1alpha1.ReasonInvalidSpec,
				Message: "the token is read from a header of the first factor's response (Authorization by default); remove cookie"}
		}
		if err := checkServiceURL(field+".token.jwksURL", t.JWKSURL, "the issuer's JWKS, e.g. https://sso.example.com/jwks"); err != nil {
			return err
		}
	}
	return nil
}

func checkServiceURL(field, raw, what string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return &FieldError{Field: field, Reason: v1alpha1.ReasonInvalidSpec,
			Message: fmt.Sprintf("%q is not an absolute http(s) URL without user info or fragment; give %s", raw, what)}
	}
	return nil
}

// PolicySecretNames returns the names of the Secrets a policy reads, in
// its own namespace.
func PolicySecretNames(spec *v1alpha1.MFAPolicySpec) []string {
	if f := spec.Identity.ForwardAuth; f != nil && f.CABundleRef != nil {
		return []string{f.CABundleRef.Name}
	}
	return nil
}

// ResolvePolicySecrets reads what a policy takes from Secrets: the CA
// bundle of its first factor. Errors are *FieldError naming the field.
func ResolvePolicySecrets(p *v1alpha1.MFAPolicy, secrets map[types.NamespacedName]*corev1.Secret) (caBundle string, err error) {
	f := p.Spec.Identity.ForwardAuth
	if f == nil || f.CABundleRef == nil {
		return "", nil
	}
	const field = "spec.identity.forwardAuth.caBundleRef"
	ca, err := secretValue(p.Namespace, field, *f.CABundleRef, secrets)
	if err != nil {
		return "", err
	}
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
		return "", &FieldError{Field: field, Reason: v1alpha1.ReasonInvalidSpec,
			Message: fmt.Sprintf("key %q of Secret %q holds no PEM certificate", f.CABundleRef.Key, f.CABundleRef.Name)}
	}
	return ca, nil
}
