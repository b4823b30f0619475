package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UserVerification says whether the authenticator must check who holds it
// (a PIN, a fingerprint, a face): required, preferred or discouraged.
// +kubebuilder:validation:Enum=preferred;required;discouraged
type UserVerification string

const (
	UserVerificationPreferred   UserVerification = "preferred"
	UserVerificationRequired    UserVerification = "required"
	UserVerificationDiscouraged UserVerification = "discouraged"
)

// ResidentKey says whether a new credential is a passkey (a discoverable
// credential kept on the authenticator): discouraged, preferred or required.
// +kubebuilder:validation:Enum=discouraged;preferred;required
type ResidentKey string

const (
	ResidentKeyDiscouraged ResidentKey = "discouraged"
	ResidentKeyPreferred   ResidentKey = "preferred"
	ResidentKeyRequired    ResidentKey = "required"
)

// Attestation is what the server asks to learn about an authenticator's
// make and model at registration: none or direct.
// +kubebuilder:validation:Enum=none;direct
type Attestation string

const (
	AttestationNone   Attestation = "none"
	AttestationDirect Attestation = "direct"
)

// Bounds and default of a WebAuthn ceremony's timeout; the CRD's rule on
// the field repeats them.
const (
	MinWebAuthnTimeout     = 30 * time.Second
	MaxWebAuthnTimeout     = 10 * time.Minute
	DefaultWebAuthnTimeout = 5 * time.Minute
)

// WebAuthnSpec configures passkeys and security keys (W3C WebAuthn). The
// defaults suit a challenge server whose pages are on the cookie domain.
// +kubebuilder:validation:XValidation:rule="!has(self.allowedAAGUIDs) || (has(self.attestation) && self.attestation == 'direct')",message="allowedAAGUIDs needs attestation: direct"
type WebAuthnSpec struct {
	// RPDisplayName is the name of the site the browser and the
	// authenticator show while registering a key. Defaults to
	// "mfa-operator".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	RPDisplayName string `json:"rpDisplayName,omitempty"`
	// RPID is the relying party ID credentials are bound to: a domain that
	// is each origin's host or a registrable suffix of it (never a public
	// suffix such as co.uk). Defaults to the operator's cookie domain, else
	// the public URL's host. Changing it orphans every registered key.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	RPID string `json:"rpID,omitempty"`
	// Origins are the web origins (scheme://host[:port]) whose pages may run
	// a ceremony: https, or http for localhost names only. Defaults to the
	// public URL's origin and, with its scheme, the policies' hosts.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=270
	// +kubebuilder:validation:items:Pattern=`^https?://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`
	Origins []string `json:"origins,omitempty"`
	// UserVerification: required (the key checks a PIN or biometric, or is
	// refused), preferred (the default: checked when the key can) or
	// discouraged (presence only, a touch).
	// +optional
	// +kubebuilder:default=preferred
	UserVerification UserVerification `json:"userVerification,omitempty"`
	// ResidentKey: discouraged (a server-side credential), preferred (the
	// default: a passkey when the authenticator can keep one) or required
	// (passkeys only).
	// +optional
	// +kubebuilder:default=preferred
	ResidentKey ResidentKey `json:"residentKey,omitempty"`
	// Attestation: none (the default: the key's make is not asked) or
	// direct (the authenticator's attestation statement is verified; with
	// allowedAAGUIDs only those models may register).
	// +optional
	// +kubebuilder:default=none
	Attestation Attestation `json:"attestation,omitempty"`
	// AllowedAAGUIDs are the authenticator models (AAGUIDs, lower-case
	// UUIDs) that may register, with attestation direct: a key of another
	// model, or one that attests nothing, is refused.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:Pattern=`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`
	AllowedAAGUIDs []string `json:"allowedAAGUIDs,omitempty"`
	// Timeout is how long a person has to answer the browser's prompt, and
	// how long the server keeps the ceremony: 30s to 10m. Defaults to 5m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ms|s|m|h)){1,4}$') && duration(self) >= duration('30s') && duration(self) <= duration('10m')",message="timeout must be a duration between 30s and 10m, e.g. 5m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// GetRPDisplayName returns the site name shown by browsers.
func (w *WebAuthnSpec) GetRPDisplayName() string {
	if w == nil || w.RPDisplayName == "" {
		return "mfa-operator"
	}
	return w.RPDisplayName
}

// GetUserVerification returns the user verification requirement
// (preferred by default).
func (w *WebAuthnSpec) GetUserVerification() UserVerification {
	if w == nil || w.UserVerification == "" {
		return UserVerificationPreferred
	}
	return w.UserVerification
}

// GetResidentKey returns the resident key requirement (preferred by
// default).
func (w *WebAuthnSpec) GetResidentKey() ResidentKey {
	if w == nil || w.ResidentKey == "" {
		return ResidentKeyPreferred
	}
	return w.ResidentKey
}

// GetAttestation returns the attestation conveyance (none by default).
func (w *WebAuthnSpec) GetAttestation() Attestation {
	if w == nil || w.Attestation == "" {
		return AttestationNone
	}
	return w.Attestation
}

// GetTimeout returns the ceremony timeout (5m by default).
func (w *WebAuthnSpec) GetTimeout() time.Duration {
	if w == nil || w.Timeout == nil || w.Timeout.Duration <= 0 {
		return DefaultWebAuthnTimeout
	}
	return w.Timeout.Duration
}
