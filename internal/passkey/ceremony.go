package passkey

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// Errors of the ceremonies, besides the store's (store.ErrNoCeremony,
// store.ErrUnknownCredential, store.ErrCounterRegressed,
// store.ErrCredentialExists, store.ErrUnavailable).
var (
	// ErrBadResponse: what the browser sent is not a WebAuthn response.
	ErrBadResponse = errors.New("the browser's answer is not a WebAuthn response")
	// ErrNotEnrolled: the user has no key to sign in with.
	ErrNotEnrolled = errors.New("no key is registered for this user")
	// ErrAlreadyEnrolled: the user holds a key, and adding another needs
	// a sign-in with one first.
	ErrAlreadyEnrolled = errors.New("a key is registered already; sign in with it to add another")
	// ErrNotAllowedModel: the key's model is not in allowedAAGUIDs.
	ErrNotAllowedModel = errors.New("this kind of key is not allowed here")
)

// RefusedError is a response that does not verify (wrong RP ID or origin,
// bad signature, user verification missing, expired): Reason is the
// library's explanation, for the log only.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "the key's answer was refused: " + e.Reason }

// RecoveryCodeCount is how many recovery codes the first key comes with.
const RecoveryCodeCount = 10

// Ceremonies runs registrations and sign-ins against a store.
type Ceremonies struct {
	Store store.Store
	Now   func() time.Time
}

func (c *Ceremonies) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// user is the WebAuthn library's view of a store record.
type user struct {
	handle []byte
	name   string
	creds  []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func userOf(k store.Key, w *store.WebAuthnEnrollment) *user {
	u := &user{handle: w.UserHandle, name: k.User}
	for _, c := range w.Credentials {
		transports := make([]protocol.AuthenticatorTransport, 0, len(c.Transports))
		for _, t := range c.Transports {
			transports = append(transports, protocol.AuthenticatorTransport(t))
		}
		u.creds = append(u.creds, webauthn.Credential{
			ID: c.ID, PublicKey: c.PublicKey, AttestationType: c.AttestationType, AttestationFormat: c.AttestationFormat,
			Transport: transports,
			Flags: webauthn.CredentialFlags{UserPresent: c.UserPresent, UserVerified: c.UserVerified,
				BackupEligible: c.BackupEligible, BackupState: c.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
		})
	}
	return u
}

// BeginRegistration starts a registration for browser and returns the
// options for navigator.credentials.create (JSON). Keys the user holds
// already are excluded, so one key is not registered twice.
func (c *Ceremonies) BeginRegistration(ctx context.Context, rp *RelyingParty, k store.Key, browser []byte) ([]byte, error) {
	var options []byte
	now := c.now()
	_, err := c.Store.Update(ctx, k, func(e *store.Enrollment) error {
		if e.WebAuthn == nil {
			e.WebAuthn = &store.WebAuthnEnrollment{}
		}
		if len(e.WebAuthn.UserHandle) == 0 {
			e.WebAuthn.UserHandle = make([]byte, 32)
			_, _ = rand.Read(e.WebAuthn.UserHandle)
		}
		u := userOf(k, e.WebAuthn)
		exclude := webauthn.Credentials(u.creds).CredentialDescriptors()
		creation, session, err := rp.wa.BeginRegistration(u, webauthn.WithExclusions(exclude))
		if err != nil {
			return fmt.Errorf("beginning a WebAuthn registration: %w", err)
		}
		return c.record(e.WebAuthn, store.CeremonyRegister, session, creation.Response, browser, now, now.Add(rp.spec.GetTimeout()), &options)
	})
	return options, err
}

// BeginLogin starts a sign-in for browser with any of the user's keys and
// returns the options for navigator.credentials.get (JSON).
func (c *Ceremonies) BeginLogin(ctx context.Context, rp *RelyingParty, k store.Key, browser []byte) ([]byte, error) {
	var options []byte
	now := c.now()
	_, err := c.Store.Update(ctx, k, func(e *store.Enrollment) error {
		if !e.HasCredentials() {
			return ErrNotEnrolled
		}
		assertion, session, err := rp.wa.BeginLogin(userOf(k, e.WebAuthn))
		if err != nil {
			return fmt.Errorf("beginning a WebAuthn sign-in: %w", err)
		}
		return c.record(e.WebAuthn, store.CeremonyLogin, session, assertion.Response, browser, now, now.Add(rp.spec.GetTimeout()), &options)
	})
	return options, err
}

// record keeps a ceremony until expires (the provider's timeout, by the
// server's clock; the library enforces its own copy of it too).
func (c *Ceremonies) record(w *store.WebAuthnEnrollment, kind string, session *webauthn.SessionData, publicKey any, browser []byte, now, expires time.Time, options *[]byte) error {
	state, err := json.Marshal(session)
	if err != nil {
		return err
	}
	if *options, err = json.Marshal(publicKey); err != nil {
		return err
	}
	w.AddCeremony(store.WebAuthnCeremony{Kind: kind, Challenge: session.Challenge, Browser: browser, Expires: expires, Session: state}, now)
	return nil
}

// Registered is the outcome of a registration.
type Registered struct {
	Credential store.WebAuthnCredential
	// RecoveryCodes are shown once: set for the user's first key only.
	RecoveryCodes []string
}

// FinishRegistration verifies the browser's answer (credential.toJSON())
// to a registration browser began and stores the key as name. The
// ceremony is used up in the same compare-and-swap that stores the key.
// A user who holds a key already gets another only when mayAdd (they just
// signed in with one): a first factor alone never adds a key.
func (c *Ceremonies) FinishRegistration(ctx context.Context, rp *RelyingParty, k store.Key, browser []byte, response []byte, name string, mayAdd bool) (*Registered, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	challenge := parsed.Response.CollectedClientData.Challenge
	now := c.now()
	e, err := c.Store.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	cer, err := e.WebAuthn.FindCeremony(store.CeremonyRegister, challenge, browser, now)
	if err != nil {
		return nil, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(cer.Session, &session); err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrCorrupt, err)
	}
	cred, err := rp.wa.CreateCredential(userOf(k, e.WebAuthn), session, parsed)
	if err != nil {
		return nil, refused(err)
	}
	if err := rp.checkModel(cred); err != nil {
		return nil, err
	}
	out := &Registered{Credential: storedCredential(cred, name, now)}
	_, err = c.Store.Update(ctx, k, func(e *store.Enrollment) error {
		out.RecoveryCodes = nil
		if err := e.WebAuthn.TakeCeremony(store.CeremonyRegister, challenge, browser, now); err != nil {
			return err
		}
		if !bytes.Equal(e.WebAuthn.UserHandle, session.UserID) {
			return store.ErrNoCeremony // the record was reset since
		}
		first := !e.HasCredentials()
		if !first && !mayAdd {
			return ErrAlreadyEnrolled
		}
		if err := e.WebAuthn.AddCredential(out.Credential); err != nil {
			return err
		}
		if first && e.TOTP == nil {
			codes, hashes, err := totp.NewRecoveryCodes(RecoveryCodeCount)
			if err != nil {
				return err
			}
			out.RecoveryCodes, e.RecoveryCodeHashes = codes, hashes
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinishLogin verifies the browser's answer to a sign-in browser began.
// The ceremony is used up, and the key's signature counter checked and
// advanced, in one compare-and-swap: of two replicas shown the same
// answer, one accepts it. A counter that did not grow is refused with
// store.ErrCounterRegressed (and the credential returned, for the log).
func (c *Ceremonies) FinishLogin(ctx context.Context, rp *RelyingParty, k store.Key, browser []byte, response []byte) (*store.WebAuthnCredential, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	challenge := parsed.Response.CollectedClientData.Challenge
	now := c.now()
	e, err := c.Store.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	cer, err := e.WebAuthn.FindCeremony(store.CeremonyLogin, challenge, browser, now)
	if err != nil {
		return nil, err
	}
	if e.WebAuthn.Credential(parsed.RawID) == nil {
		return nil, store.ErrUnknownCredential
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(cer.Session, &session); err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrCorrupt, err)
	}
	if _, err := rp.wa.ValidateLogin(userOf(k, e.WebAuthn), session, parsed); err != nil {
		return nil, refused(err)
	}
	data := parsed.Response.AuthenticatorData
	var used store.WebAuthnCredential
	_, err = c.Store.Update(ctx, k, func(e *store.Enrollment) error {
		if err := e.WebAuthn.TakeCeremony(store.CeremonyLogin, challenge, browser, now); err != nil {
			return err
		}
		cred, err := e.WebAuthn.AcceptAssertion(parsed.RawID, data.Counter, data.Flags.HasUserVerified(), data.Flags.HasBackupState(), now)
		if cred != nil {
			used = *cred
		}
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrCounterRegressed) {
			return &used, err
		}
		return nil, err
	}
	return &used, nil
}

// HardwareBound says whether a key cannot leave its authenticator (RFC
// 8176 amr hwk), as opposed to a passkey that may be synced (swk).
func HardwareBound(c *store.WebAuthnCredential) bool { return !c.BackupEligible }

func storedCredential(cred *webauthn.Credential, name string, now time.Time) store.WebAuthnCredential {
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	return store.WebAuthnCredential{
		ID: cred.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
		AAGUID: cred.Authenticator.AAGUID, Transports: transports,
		AttestationType: cred.AttestationType, AttestationFormat: cred.AttestationFormat,
		UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Name: name, Created: now,
	}
}

// checkModel enforces allowedAAGUIDs: the key must attest (an attestation
// that is none or self proves no model) and name an allowed model.
func (rp *RelyingParty) checkModel(cred *webauthn.Credential) error {
	if len(rp.allowed) == 0 {
		return nil
	}
	id, err := uuid.FromBytes(cred.Authenticator.AAGUID)
	if err != nil || cred.AttestationType == "" || cred.AttestationType == "none" || cred.AttestationType == "self" {
		return ErrNotAllowedModel
	}
	if !slices.Contains(rp.allowed, id) {
		return ErrNotAllowedModel
	}
	return nil
}

func refused(err error) error {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		reason := perr.Details
		if perr.DevInfo != "" {
			reason += " (" + perr.DevInfo + ")"
		}
		return &RefusedError{Reason: reason}
	}
	return &RefusedError{Reason: err.Error()}
}
