package policy

import (
	"errors"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/passkey"
)

// checkWebAuthn checks a webauthn provider's settings on their own.
func checkWebAuthn(spec *v1alpha1.MFAProviderSpec) error {
	if spec.TOTP != nil {
		return &FieldError{Field: "spec.totp", Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.totp is only allowed when type is totp; remove it"}
	}
	if spec.Duo != nil {
		return &FieldError{Field: "spec.duo", Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.duo is only allowed when type is duo; remove it"}
	}
	return webAuthnFieldError(passkey.CheckSpec(spec.WebAuthn))
}

// CheckWebAuthnDefaults checks a webauthn provider's settings with what
// they default to (the operator's cookie domain and public URL): the RP ID
// must be a registrable suffix of every origin, the public URL's included.
// Other providers pass.
func CheckWebAuthnDefaults(spec *v1alpha1.MFAProviderSpec, d passkey.Defaults) error {
	if spec.Type != v1alpha1.ProviderWebAuthn {
		return nil
	}
	_, err := passkey.New(spec.WebAuthn, d)
	return webAuthnFieldError(err)
}

func webAuthnFieldError(err error) error {
	var fe *passkey.FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: fe.Field, Reason: v1alpha1.ReasonInvalidSpec, Message: fe.Message}
	}
	return err
}
