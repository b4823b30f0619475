package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bounds and defaults of identity.forwardAuth. The CRD's rules repeat the
// bounds.
const (
	// DefaultForwardAuthCacheTTL is how long a first-factor answer is
	// reused for the same cookies: a session ended upstream is noticed
	// within it.
	DefaultForwardAuthCacheTTL = 10 * time.Second
	MaxForwardAuthCacheTTL     = 5 * time.Minute
	// DefaultForwardAuthTimeout bounds one call to the first factor.
	DefaultForwardAuthTimeout = 2 * time.Second
	MaxForwardAuthTimeout     = 10 * time.Second
)

// ForwardAuthIdentity asks a first-factor service's auth endpoint who the
// user is, with the browser's cookies: 2xx names the user in response
// headers, 401 means no first-factor session (the browser is sent to
// signinURL). It is the contract of oauth2-proxy's /oauth2/auth, also
// served by Pomerium and Authelia.
// +kubebuilder:validation:XValidation:rule="!has(self.token) || !has(self.token.cookie)",message="forwardAuth.token is read from the first factor's response headers; cookie is not allowed"
type ForwardAuthIdentity struct {
	// URL of the first factor's auth endpoint, e.g.
	// http://oauth2-proxy.auth.svc/oauth2/auth. Called with GET.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url"`
	// SigninURL is where a browser without a first-factor session is sent,
	// e.g. https://sso.example.com/oauth2/start. The challenge server adds
	// rd=<its challenge page, itself with rd=the original URL>, so that
	// after the sign-in the browser comes back through the second factor
	// to the app; the first factor must accept that rd (oauth2-proxy:
	// --whitelist-domain).
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	SigninURL string `json:"signinURL"`
	// Headers name the response headers the identity is read from.
	// Defaults are oauth2-proxy's.
	// +optional
	Headers *ForwardAuthHeaders `json:"headers,omitempty"`
	// Cookies are the names of the browser's cookies passed to the first
	// factor (e.g. _oauth2_proxy, which oauth2-proxy may split into
	// _oauth2_proxy_0, _1...; a name ending in * is a prefix). Unset, every
	// cookie but the challenge server's own is passed.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_.-]+[*]?$`
	// +kubebuilder:validation:items:MaxLength=128
	Cookies []string `json:"cookies,omitempty"`
	// PassHeaders are request headers of the original request passed to
	// the first factor besides Cookie, e.g. Authorization for API clients.
	// The original URL and method always go as X-Forwarded-Proto/Host/Uri/
	// Method and X-Original-URL.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:items:MaxLength=128
	PassHeaders []string `json:"passHeaders,omitempty"`
	// Token, when set, reads the user from a signed token in the first
	// factor's response (oauth2-proxy --set-authorization-header gives
	// Authorization: Bearer <ID token>) instead of from the headers, and
	// its claims become user.claims (amr, acr, idp...). A 2xx without a
	// token that verifies is refused.
	// +optional
	Token *JWTIdentity `json:"token,omitempty"`
	// CacheTTL is how long an answer is reused for the same cookies
	// (default 10s, at most 5m; 401s are never reused).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ms|s|m|h)){1,4}$') && duration(self) >= duration('0s') && duration(self) <= duration('5m')",message="cacheTTL must be a duration between 0s and 5m, e.g. 10s"
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
	// Timeout of one call to the first factor (default 2s, at most 10s).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ms|s|m|h)){1,4}$') && duration(self) >= duration('100ms') && duration(self) <= duration('10s')",message="timeout must be a duration between 100ms and 10s, e.g. 2s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// CABundleRef names a Secret key (in the policy's namespace) holding
	// the PEM certificates that sign the first factor's TLS certificate;
	// unset, the system's roots. TLS is always verified.
	// +optional
	CABundleRef *SecretKeySelector `json:"caBundleRef,omitempty"`
}

// ForwardAuthHeaders are the first factor's response headers naming the
// user.
type ForwardAuthHeaders struct {
	// User names the user (user.id; user.email too when it looks like
	// one). Defaults to X-Auth-Request-Email.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	User string `json:"user,omitempty"`
	// Groups, comma separated. Defaults to X-Auth-Request-Groups.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	Groups string `json:"groups,omitempty"`
	// Name is user.name. Defaults to X-Auth-Request-Preferred-Username,
	// then X-Auth-Request-User when that is absent.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`
}

// GetCacheTTL returns how long an answer is reused.
func (f *ForwardAuthIdentity) GetCacheTTL() time.Duration {
	if f.CacheTTL == nil || f.CacheTTL.Duration < 0 {
		return DefaultForwardAuthCacheTTL
	}
	return f.CacheTTL.Duration
}

// GetTimeout returns the timeout of one call.
func (f *ForwardAuthIdentity) GetTimeout() time.Duration {
	if f.Timeout == nil || f.Timeout.Duration <= 0 {
		return DefaultForwardAuthTimeout
	}
	return f.Timeout.Duration
}

// GetUserHeader returns the header naming the user.
func (h *ForwardAuthHeaders) GetUserHeader() string {
	if h == nil || h.User == "" {
		return "X-Auth-Request-Email"
	}
	return h.User
}

// GetGroupsHeader returns the header listing the groups.
func (h *ForwardAuthHeaders) GetGroupsHeader() string {
	if h == nil || h.Groups == "" {
		return "X-Auth-Request-Groups"
	}
	return h.Groups
}

// GetNameHeaders returns the headers naming the user's display name, in
// order of preference.
func (h *ForwardAuthHeaders) GetNameHeaders() []string {
	if h == nil || h.Name == "" {
		return []string{"X-Auth-Request-Preferred-Username", "X-Auth-Request-User"}
	}
	return []string{h.Name}
}
