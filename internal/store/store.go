// Package store keeps what the challenge server knows about each user of each
// provider: the
// TOTP enrolment (secret sealed with the keyring, replay guard), recovery
// code hashes, failed attempts and lockout, the Duo username and the Duo
// pushes that recently issued a session (their replay guard), the
// WebAuthn credentials with their ceremonies in progress, and the
// browsers remembered after answering the provider.
//
// Two implementations share one contract: SecretStore (one Secret per user,
// compare-and-swap on resourceVersion, for replicas in a cluster) and
// FileStore (bbolt, for the standalone server). Every change goes through
// Update, which is atomic: two replicas can never both accept the same code.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Key names one enrolment: what one user holds for one MFAProvider. An
// enrolment serves only its provider, and a policy reaches only providers of
// its namespace or providers that admit it, so a policy can never create,
// read, use or lock a factor that satisfies another namespace's policies.
type Key struct {
	// Provider is the MFAProvider's namespace/name.
	Provider string
	// User is the user id from the policy's identity source.
	User string
	// ProviderCreated is when the provider was created (zero: unknown). A
	// record from before providers owned enrolments is copied only into a
	// provider that already existed when that record was confirmed: a
	// provider made later, by whoever, never inherits it.
	ProviderCreated time.Time
}

func (k Key) String() string { return k.Provider + " " + k.User }

// Enrollment is everything stored about one user for one provider. It is
// also the stored form (JSON).
type Enrollment struct {
	// User is the user id the record belongs to.
	User string `json:"user"`
	// Provider is the namespace/name of the MFAProvider the record belongs
	// to; empty in records written before enrolments had a provider, which
	// are read only to migrate them (see migrate).
	Provider string `json:"provider,omitempty"`
	// TOTP is the confirmed enrolment, nil if none.
	TOTP *TOTPEnrollment `json:"totp,omitempty"`
	// Pending are generated secrets, each shown as a QR code to one
	// browser, not yet confirmed by a first code. Confirming one discards
	// the others.
	Pending []TOTPEnrollment `json:"pending,omitempty"`
	// LegacyPendingTOTP is the unbound pending secret of records written
	// before pending secrets were bound to a browser. It is never used:
	// migration drops it.
	LegacyPendingTOTP *TOTPEnrollment `json:"pendingTOTP,omitempty"`
	// RecoveryCodeHashes are the hashes of the unused recovery codes.
	RecoveryCodeHashes []string `json:"recoveryCodeHashes,omitempty"`
	// FailedAttempts are the recent failed verifications (pruned to the
	// lockout window by whoever records one).
	FailedAttempts []time.Time `json:"failedAttempts,omitempty"`
	// LockedUntil: verifications are refused before this time.
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// Lockouts counts the lockouts since the last success; each one lasts
	// longer than the one before.
	Lockouts int `json:"lockouts,omitempty"`
	// DuoUsername is the user's name at Duo, when it differs from User.
	DuoUsername string `json:"duoUsername,omitempty"`
	// DuoPushesUsed are the approved Duo pushes that recently issued a
	// session: each push issues one, whichever replica is asked (pruned
	// and bounded by whoever records one).
	DuoPushesUsed []UsedDuoPush `json:"duoPushesUsed,omitempty"`
	// WebAuthn holds the user's passkeys and security keys and the
	// ceremonies in progress (webauthn.go); nil if none.
	WebAuthn *WebAuthnEnrollment `json:"webauthn,omitempty"`
	// Browsers are the browsers remembered after answering this provider
	// (browsers.go): bounded, pruned past their cookies' expiry.
	Browsers []RememberedBrowser `json:"browsers,omitempty"`
}

// UsedDuoPush is an approved Duo push that issued a session.
type UsedDuoPush struct {
	// TxHash is a hash of Duo's transaction ID; the ID itself is not kept.
	TxHash string `json:"tx"`
	// Until is when the record may be dropped: the push can no longer be
	// completed by then.
	Until time.Time `json:"until"`
}

// TOTPEnrollment is one TOTP secret and the parameters it was enrolled with.
type TOTPEnrollment struct {
	// SealedSecret is keyring.Seal(PurposeStore, secret, aad=[]byte(user)).
	SealedSecret []byte `json:"sealedSecret"`
	// Digits, PeriodSeconds and Algorithm are the parameters at enrolment
	// time: the authenticator app keeps using them whatever the provider
	// says later.
	Digits        int    `json:"digits"`
	PeriodSeconds int    `json:"periodSeconds"`
	Algorithm     string `json:"algorithm"`
	// Skew is how many time steps either side of the current one are
	// accepted, as configured at enrolment time.
	Skew int `json:"skew"`
	// LastStep is the replay guard: the highest accepted time step. Only
	// later steps are accepted.
	LastStep int64 `json:"lastStep"`
	// Created is when the secret was generated (pending) or confirmed.
	Created time.Time `json:"created"`
	// Browser is, for a pending secret, a hash of the browser that asked
	// for it: only that browser sees it and may confirm it.
	Browser []byte `json:"browser,omitempty"`
}

// ErrUnavailable means the store cannot be reached (API server down or slow,
// too many concurrent writers, database closed). Callers answer 503 "try
// again"; nothing was written.
var ErrUnavailable = errors.New("enrollment store unavailable, try again")

// ErrInvalidUser is returned for a user id the store refuses: empty, longer
// than MaxUserLength or not UTF-8; or for a provider that is not
// namespace/name.
var ErrInvalidUser = errors.New("invalid user id")

// ErrCorrupt is returned for a stored record that does not decode or that
// names another user or provider. Nothing is written over it.
var ErrCorrupt = errors.New("stored enrollment is corrupt")

// MaxUserLength is the longest user id stored, in bytes.
const MaxUserLength = 1024

// Store keeps enrolments. Implementations are safe for concurrent use, also
// from several processes sharing one backend.
//
// Records written before enrolments had a provider were keyed by the user
// alone. They are still read: a key with no record of its own starts from
// a copy of the user's old record (its confirmed TOTP secret, recovery
// codes, lockout and Duo username; never its unbound pending secret) when
// the key's provider existed when that record was confirmed, so the
// providers users enrolled with keep working, and the first change writes
// the copy under the key. The old record is never written.
type Store interface {
	// Get returns the record of k; a key never seen gets an empty
	// Enrollment{User, Provider} and no error.
	Get(ctx context.Context, k Key) (*Enrollment, error)
	// Update reads the record, calls fn with it and writes fn's changes with
	// compare-and-swap; on a conflict it reads again and calls fn again (a
	// bounded number of times), so fn must decide from what it is given
	// only. fn returning an error aborts without writing, and Update returns
	// that error. When fn changes nothing, nothing is written. The Enrollment
	// fn saw last is returned, with or without an error.
	Update(ctx context.Context, k Key, fn func(e *Enrollment) error) (*Enrollment, error)
}

// maxAttempts bounds the read-modify-write rounds of one Update that lose a
// compare-and-swap race.
const maxAttempts = 10

func checkKey(k Key) error {
	if k.User == "" || len(k.User) > MaxUserLength || !utf8.ValidString(k.User) {
		return fmt.Errorf("%w: the user id must be 1 to %d bytes of UTF-8", ErrInvalidUser, MaxUserLength)
	}
	ns, name, ok := strings.Cut(k.Provider, "/")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: the provider %q is not namespace/name", ErrInvalidUser, k.Provider)
	}
	return nil
}

// decode reads a stored record and checks that it belongs to k.
func decode(k Key, raw []byte) (*Enrollment, error) {
	e := &Enrollment{}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("%w: decoding the enrollment of user %q: %w", ErrCorrupt, k.User, err)
	}
	if e.User != k.User || e.Provider != k.Provider {
		return nil, fmt.Errorf("%w: the stored enrollment for user %q of %q names another user or provider", ErrCorrupt, k.User, k.Provider)
	}
	return e, nil
}

// migrate returns k's copy of a record written before enrolments had a
// provider (legacy, keyed by the user alone).
func migrate(k Key, legacy []byte) (*Enrollment, error) {
	old, err := decode(Key{User: k.User}, legacy)
	if err != nil {
		return nil, err
	}
	if !k.ProviderCreated.IsZero() && (old.TOTP == nil || k.ProviderCreated.After(old.TOTP.Created)) {
		return &Enrollment{User: k.User, Provider: k.Provider}, nil
	}
	return &Enrollment{
		User:               k.User,
		Provider:           k.Provider,
		TOTP:               old.TOTP,
		RecoveryCodeHashes: old.RecoveryCodeHashes,
		FailedAttempts:     old.FailedAttempts,
		LockedUntil:        old.LockedUntil,
		DuoUsername:        old.DuoUsername,
	}, nil
}

// current decodes k's record, else migrates the user's legacy record, else
// returns an empty one.
func current(k Key, raw, legacy []byte) (*Enrollment, error) {
	switch {
	case raw != nil:
		return decode(k, raw)
	case legacy != nil:
		return migrate(k, legacy)
	}
	return &Enrollment{User: k.User, Provider: k.Provider}, nil
}

func encode(e *Enrollment) ([]byte, error) {
	return json.Marshal(e)
}

// apply runs fn on k's current record (see current) and says whether it
// changed. fn's error is returned as is.
func apply(k Key, raw, legacy []byte, fn func(e *Enrollment) error) (e *Enrollment, out []byte, changed bool, err error) {
	if e, err = current(k, raw, legacy); err != nil {
		return nil, nil, false, err
	}
	before, err := encode(e)
	if err != nil {
		return e, nil, false, err
	}
	if err := fn(e); err != nil {
		return e, nil, false, err
	}
	// fn may not move a record to another user or provider.
	e.User, e.Provider = k.User, k.Provider
	out, err = encode(e)
	if err != nil {
		return e, nil, false, err
	}
	return e, out, !bytes.Equal(before, out), nil
}
