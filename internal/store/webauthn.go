package store

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"slices"
	"time"
)

// Ceremony kinds.
const (
	CeremonyRegister = "register"
	CeremonyLogin    = "login"
)

// MaxWebAuthnCeremonies bounds the ceremonies kept per user: each page
// view starts one, and the oldest is dropped past this.
const MaxWebAuthnCeremonies = 8

// MaxWebAuthnCredentials bounds the keys one user may register.
const MaxWebAuthnCredentials = 20

// Errors of the WebAuthn record. They are decided inside Update's
// compare-and-swap, so two replicas can never both accept one ceremony or
// one signature counter.
var (
	// ErrNoCeremony: no ceremony of this browser has that challenge: it
	// was never started here, already used (a replay) or has expired.
	ErrNoCeremony = errors.New("no such WebAuthn ceremony: already used or expired")
	// ErrUnknownCredential: the credential is not registered for the user.
	ErrUnknownCredential = errors.New("this key is not registered")
	// ErrCredentialExists: the credential is already registered.
	ErrCredentialExists = errors.New("this key is already registered")
	// ErrTooManyCredentials: the user holds MaxWebAuthnCredentials keys.
	ErrTooManyCredentials = errors.New("too many keys registered")
	// ErrCounterRegressed: the authenticator's signature counter did not
	// grow: a cloned authenticator, or an assertion seen before.
	ErrCounterRegressed = errors.New("the key's signature counter went backwards")
)

// WebAuthnEnrollment is what one user holds for one WebAuthn provider.
type WebAuthnEnrollment struct {
	// UserHandle is the random user handle authenticators keep (never the
	// user id, which may be an e-mail address).
	UserHandle []byte `json:"userHandle"`
	// Credentials are the registered passkeys and security keys.
	Credentials []WebAuthnCredential `json:"credentials,omitempty"`
	// Ceremonies are the registrations and sign-ins in progress.
	Ceremonies []WebAuthnCeremony `json:"ceremonies,omitempty"`
}

// WebAuthnCredential is one registered key.
type WebAuthnCredential struct {
	ID        []byte `json:"id"`
	PublicKey []byte `json:"publicKey"`
	// SignCount is the highest signature counter accepted; a later
	// assertion must carry a higher one (unless the key keeps none: 0).
	SignCount uint32 `json:"signCount"`
	// AAGUID is the authenticator model (16 bytes, zero when not told).
	AAGUID            []byte   `json:"aaguid,omitempty"`
	Transports        []string `json:"transports,omitempty"`
	AttestationType   string   `json:"attestationType,omitempty"`
	AttestationFormat string   `json:"attestationFormat,omitempty"`
	UserPresent       bool     `json:"userPresent,omitempty"`
	UserVerified      bool     `json:"userVerified,omitempty"`
	// BackupEligible: the key may be synced (a passkey of a password
	// manager or platform); BackupState: it is.
	BackupEligible bool `json:"backupEligible,omitempty"`
	BackupState    bool `json:"backupState,omitempty"`
	// Name is what the user called the key.
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
}

// WebAuthnCeremony is a registration or sign-in begun by one browser.
type WebAuthnCeremony struct {
	// Kind is CeremonyRegister or CeremonyLogin.
	Kind string `json:"kind"`
	// Challenge is the base64url challenge the browser signs.
	Challenge string `json:"challenge"`
	// Browser is a hash of the browser that began it: only that browser
	// may finish it.
	Browser []byte `json:"browser"`
	// Expires is when it can no longer be finished.
	Expires time.Time `json:"expires"`
	// Session is the relying party's ceremony state (JSON), as the
	// WebAuthn library needs it to finish.
	Session []byte `json:"session"`
}

// AddCeremony records a ceremony begun now, dropping expired ones and,
// past MaxWebAuthnCeremonies, the oldest.
func (w *WebAuthnEnrollment) AddCeremony(c WebAuthnCeremony, now time.Time) {
	w.pruneCeremonies(now)
	if len(w.Ceremonies) >= MaxWebAuthnCeremonies {
		w.Ceremonies = slices.Delete(w.Ceremonies, 0, len(w.Ceremonies)-MaxWebAuthnCeremonies+1)
	}
	w.Ceremonies = append(w.Ceremonies, c)
}

// FindCeremony returns the unexpired ceremony of kind with challenge begun
// by browser, without using it.
func (w *WebAuthnEnrollment) FindCeremony(kind, challenge string, browser []byte, now time.Time) (*WebAuthnCeremony, error) {
	i := w.ceremonyIndex(kind, challenge, browser, now)
	if i < 0 {
		return nil, ErrNoCeremony
	}
	return &w.Ceremonies[i], nil
}

// TakeCeremony removes the ceremony FindCeremony would return: a ceremony
// is finished once.
func (w *WebAuthnEnrollment) TakeCeremony(kind, challenge string, browser []byte, now time.Time) error {
	i := w.ceremonyIndex(kind, challenge, browser, now)
	if i < 0 {
		return ErrNoCeremony
	}
	w.Ceremonies = slices.Delete(w.Ceremonies, i, i+1)
	w.pruneCeremonies(now)
	return nil
}

func (w *WebAuthnEnrollment) ceremonyIndex(kind, challenge string, browser []byte, now time.Time) int {
	if w == nil || challenge == "" || len(browser) == 0 {
		return -1
	}
	for i := range w.Ceremonies {
		c := &w.Ceremonies[i]
		if c.Kind == kind && now.Before(c.Expires) &&
			subtle.ConstantTimeCompare([]byte(c.Challenge), []byte(challenge)) == 1 &&
			subtle.ConstantTimeCompare(c.Browser, browser) == 1 {
			return i
		}
	}
	return -1
}

func (w *WebAuthnEnrollment) pruneCeremonies(now time.Time) {
	w.Ceremonies = slices.DeleteFunc(w.Ceremonies, func(c WebAuthnCeremony) bool { return !now.Before(c.Expires) })
	if len(w.Ceremonies) == 0 {
		w.Ceremonies = nil
	}
}

// Credential returns the registered credential with id, nil if none.
func (w *WebAuthnEnrollment) Credential(id []byte) *WebAuthnCredential {
	if w == nil {
		return nil
	}
	for i := range w.Credentials {
		if bytes.Equal(w.Credentials[i].ID, id) {
			return &w.Credentials[i]
		}
	}
	return nil
}

// AddCredential registers c, unless its ID is registered already or the
// user holds the most keys allowed.
func (w *WebAuthnEnrollment) AddCredential(c WebAuthnCredential) error {
	if w.Credential(c.ID) != nil {
		return ErrCredentialExists
	}
	if len(w.Credentials) >= MaxWebAuthnCredentials {
		return ErrTooManyCredentials
	}
	w.Credentials = append(w.Credentials, c)
	return nil
}

// AcceptAssertion records a verified assertion of credential id whose
// authenticator data carried counter: refused with ErrCounterRegressed
// when the counter does not exceed the stored one (either being nonzero),
// as for a cloned key. Run it inside Update, with TakeCeremony, so that a
// stale read never accepts a counter another replica has passed.
func (w *WebAuthnEnrollment) AcceptAssertion(id []byte, counter uint32, userVerified, backupState bool, now time.Time) (*WebAuthnCredential, error) {
	c := w.Credential(id)
	if c == nil {
		return nil, ErrUnknownCredential
	}
	if (counter != 0 || c.SignCount != 0) && counter <= c.SignCount {
		return c, ErrCounterRegressed
	}
	c.SignCount = counter
	c.UserVerified = c.UserVerified || userVerified
	c.BackupState = backupState
	c.LastUsed = now
	return c, nil
}

// HasCredentials says whether e holds a registered WebAuthn key.
func (e *Enrollment) HasCredentials() bool {
	return e.WebAuthn != nil && len(e.WebAuthn.Credentials) > 0
}
