package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderType is the kind of second factor: totp, duo or webauthn.
// +kubebuilder:validation:Enum=totp;duo;webauthn
type ProviderType string

const (
	// ProviderTOTP is a time-based one-time password (RFC 6238), as in Google Authenticator.
	ProviderTOTP ProviderType = "totp"
	// ProviderDuo is Duo Security (push or passcode) through Duo's Auth API.
	ProviderDuo ProviderType = "duo"
	// ProviderWebAuthn is a passkey or a security key (W3C WebAuthn).
	ProviderWebAuthn ProviderType = "webauthn"
)

// Multifactor names reported to apps (X-MFA-Multifactor, the assertion's
// `multifactor` claim), as in the "multifactor" field of a user profile.
const (
	MultifactorGoogleAuthenticator = "google-authenticator"
	MultifactorDuo                 = "duo"
	MultifactorWebAuthn            = "webauthn"
)

// Bounds of a TOTP period: authenticator apps use 30s; a code valid for
// longer than ten minutes is no longer time-based. The CRD's rule on the
// field repeats them.
const (
	MinTOTPPeriod = time.Second
	MaxTOTPPeriod = 10 * time.Minute
)

// TOTPAlgorithm is the HMAC hash of a TOTP code: SHA1, SHA256 or SHA512.
// +kubebuilder:validation:Enum=SHA1;SHA256;SHA512
type TOTPAlgorithm string

const (
	TOTPAlgorithmSHA1   TOTPAlgorithm = "SHA1"
	TOTPAlgorithmSHA256 TOTPAlgorithm = "SHA256"
	TOTPAlgorithmSHA512 TOTPAlgorithm = "SHA512"
)

// DuoFactor is a way to answer a Duo challenge: push or passcode.
// +kubebuilder:validation:Enum=push;passcode
type DuoFactor string

const (
	DuoFactorPush     DuoFactor = "push"
	DuoFactorPasscode DuoFactor = "passcode"
)

// FailMode says what happens when Duo cannot be reached: closed or open.
// +kubebuilder:validation:Enum=closed;open
type FailMode string

const (
	// FailClosed refuses access when Duo cannot be reached.
	FailClosed FailMode = "closed"
	// FailOpen lets the user through without a second factor when Duo cannot
	// be reached; the session is marked so that it never claims Duo.
	FailOpen FailMode = "open"
)

// SecretKeySelector names a key of a Secret in the same namespace.
type SecretKeySelector struct {
	// Name of the Secret, in the namespace of the object that refers to it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// TOTPSpec configures time-based one-time passwords. The defaults match
// Google Authenticator, which ignores anything else.
type TOTPSpec struct {
	// Issuer is the account label shown in the authenticator app.
	// Defaults to "mfa-operator".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[^:]*$`
	Issuer string `json:"issuer,omitempty"`
	// Digits is the length of a code: 6 (the default) or 8.
	// +optional
	// +kubebuilder:default=6
	// +kubebuilder:validation:Enum=6;8
	Digits *int32 `json:"digits,omitempty"`
	// Period is how long a code is valid: a whole number of seconds between
	// 1s and 10m, written as a duration, a number and a unit (s, m, h or
	// ms), or several of them: 30s, 1m, 1m30s. Defaults to 30s.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ms|s|m|h)){1,4}$') && duration(self) >= duration('1s') && duration(self) <= duration('10m')",message="period must be a duration between 1s and 10m, e.g. 30s"
	Period *metav1.Duration `json:"period,omitempty"`
	// Algorithm is the HMAC hash of a code: SHA1 (the default), SHA256 or
	// SHA512.
	// +optional
	// +kubebuilder:default=SHA1
	Algorithm TOTPAlgorithm `json:"algorithm,omitempty"`
	// Skew is how many time steps either side of the current one are
	// accepted, from 0 to 5. Defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	Skew *int32 `json:"skew,omitempty"`
}

// DuoSpec configures Duo Security through its Auth API v2. Users are
// known to Duo by their id from the policy's identity source (user.id: the
// identity header's value, e.g. an e-mail address, or a JWT's subject).
type DuoSpec struct {
	// APIHost is the Duo API hostname of the account, e.g.
	// api-xxxxxxxx.duosecurity.com (also duofederal.com and duo.com), without
	// scheme or path. Any other host (with an optional port), such as a
	// private proxy in front of Duo or a test server, is accepted only when
	// caBundleRef is set: its certificates are then the only ones trusted
	// for it. Otherwise the provider is not Ready (reason InvalidSpec).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`
	APIHost string `json:"apiHost"`
	// IntegrationKeyRef names the Secret key holding the integration key (ikey).
	// +required
	IntegrationKeyRef SecretKeySelector `json:"integrationKeyRef"`
	// SecretKeyRef names the Secret key holding the secret key (skey).
	// +required
	SecretKeyRef SecretKeySelector `json:"secretKeyRef"`
	// Factors are the ways a user may answer: push (a Duo Push to their
	// phone), passcode (a code from Duo Mobile, a text message or a
	// token). Defaults to both.
	// +optional
	// +kubebuilder:default={push,passcode}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +listType=set
	Factors []DuoFactor `json:"factors,omitempty"`
	// FailMode says what happens when Duo cannot be reached: closed (the
	// default: refuse) or open (let the user through without a second
	// factor, logged as a warning; the session never claims duo:
	// X-MFA-Multifactor is empty).
	// Only no answer at all counts as unreachable: a DNS failure, a connection
	// refused or reset, a timeout, an HTTP 5xx. Duo refusing (any 4xx, rate
	// limiting included), a certificate that does not verify and an answer
	// that is not Duo's always fail closed.
	// +optional
	// +kubebuilder:default=closed
	FailMode FailMode `json:"failMode,omitempty"`
	// CABundleRef names a Secret key holding PEM certificates to trust for
	// the API host instead of the system roots (private proxies, tests).
	// It is required for an apiHost that is not a Duo API host.
	// TLS verification is never turned off.
	// +optional
	CABundleRef *SecretKeySelector `json:"caBundleRef,omitempty"`
}

// MFAProviderSpec defines one second factor.
// +kubebuilder:validation:XValidation:rule="self.type != 'duo' || has(self.duo)",message="spec.duo is required when type is duo"
// +kubebuilder:validation:XValidation:rule="self.type == 'duo' || !has(self.duo)",message="spec.duo is only allowed when type is duo"
// +kubebuilder:validation:XValidation:rule="self.type == 'totp' || !has(self.totp)",message="spec.totp is only allowed when type is totp"
// +kubebuilder:validation:XValidation:rule="self.type == 'webauthn' || !has(self.webauthn)",message="spec.webauthn is only allowed when type is webauthn"
type MFAProviderSpec struct {
	// Type of the second factor: totp (Google Authenticator and compatible
	// apps), duo (Duo Security) or webauthn (passkeys and security keys).
	// +required
	Type ProviderType `json:"type"`
	// TOTP settings, only for type totp; optional, the defaults match
	// Google Authenticator.
	// +optional
	TOTP *TOTPSpec `json:"totp,omitempty"`
	// Duo settings, required for type duo and only allowed for it.
	// +optional
	Duo *DuoSpec `json:"duo,omitempty"`
	// WebAuthn settings, only for type webauthn; optional, the defaults
	// suit passkeys and security keys on the challenge server's own site.
	// +optional
	WebAuthn *WebAuthnSpec `json:"webauthn,omitempty"`
	// AllowedNamespaces lists the other namespaces whose MFAPolicies may use
	// this provider, naming it `namespace/name` in multifactor.providers.
	// Policies of the provider's own namespace always may. Enrolments belong
	// to the provider, so every policy it admits shares them: a platform team
	// keeps one provider in its namespace and admits the app namespaces.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AllowedNamespaces []string `json:"allowedNamespaces,omitempty"`
	// AllowedNamespaceSelector admits, besides AllowedNamespaces, the
	// namespaces whose labels match (e.g. matchLabels
	// `mfa.operator.dev/shared-providers: "true"`). An empty selector ({})
	// admits every namespace; leave it unset to admit none by label.
	// +optional
	AllowedNamespaceSelector *metav1.LabelSelector `json:"allowedNamespaceSelector,omitempty"`
}

// MFAProviderStatus is the observed state of an MFAProvider.
type MFAProviderStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Multifactor is the name reported to apps when this provider was used:
	// google-authenticator for totp, duo for duo, webauthn for webauthn.
	// +optional
	Multifactor string `json:"multifactor,omitempty"`
}

// MFAProvider is a second factor (TOTP, Duo or WebAuthn) that MFAPolicy rules can require.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mfaprov,categories=mfa
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type MFAProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec defines the second factor.
	// +required
	Spec MFAProviderSpec `json:"spec"`
	// Status is the controller's verdict.
	// +optional
	Status MFAProviderStatus `json:"status,omitempty"`
}

// MFAProviderList is a list of MFAProvider.
// +kubebuilder:object:root=true
type MFAProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MFAProvider `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MFAProvider{}, &MFAProviderList{})
}

// MultifactorName is the name reported to apps for this provider.
func (s *MFAProviderSpec) MultifactorName() string {
	switch s.Type {
	case ProviderDuo:
		return MultifactorDuo
	case ProviderWebAuthn:
		return MultifactorWebAuthn
	}
	return MultifactorGoogleAuthenticator
}

// GetIssuer returns the issuer shown in authenticator apps.
func (t *TOTPSpec) GetIssuer() string {
	if t == nil || t.Issuer == "" {
		return "mfa-operator"
	}
	return t.Issuer
}

// GetDigits returns the code length (6 by default).
func (t *TOTPSpec) GetDigits() int {
	if t == nil || t.Digits == nil {
		return 6
	}
	return int(*t.Digits)
}

// GetPeriod returns the time step (30s by default).
func (t *TOTPSpec) GetPeriod() time.Duration {
	if t == nil || t.Period == nil || t.Period.Duration <= 0 {
		return 30 * time.Second
	}
	return t.Period.Duration
}

// GetAlgorithm returns the HMAC hash (SHA1 by default).
func (t *TOTPSpec) GetAlgorithm() TOTPAlgorithm {
	if t == nil || t.Algorithm == "" {
		return TOTPAlgorithmSHA1
	}
	return t.Algorithm
}

// GetSkew returns the accepted steps either side (1 by default).
func (t *TOTPSpec) GetSkew() int {
	if t == nil || t.Skew == nil {
		return 1
	}
	return int(*t.Skew)
}

// GetFactors returns the allowed Duo factors (push and passcode by default).
func (d *DuoSpec) GetFactors() []DuoFactor {
	if d == nil || len(d.Factors) == 0 {
		return []DuoFactor{DuoFactorPush, DuoFactorPasscode}
	}
	return d.Factors
}

// GetFailMode returns the fail mode (closed by default).
func (d *DuoSpec) GetFailMode() FailMode {
	if d == nil || d.FailMode == "" {
		return FailClosed
	}
	return d.FailMode
}

// GetConditions returns the status conditions.
func (p *MFAProvider) GetConditions() []metav1.Condition { return p.Status.Conditions }
