// Package store keeps what the challenge server knows about each user: the
// TOTP enrolment (secret sealed with the keyring, replay guard), recovery
// code hashes, failed attempts and lockout, and the Duo username.
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
	"time"
	"unicode/utf8"
)

// Enrollment is everything stored about one user. It is also the stored
// form (JSON).
type Enrollment struct {
	// User is the user id the record belongs to.
	User string `json:"user"`
	// TOTP is the confirmed enrolment, nil if none.
	TOTP *TOTPEnrollment `json:"totp,omitempty"`
	// PendingTOTP is a generated secret, shown as a QR code, not yet
	// confirmed by a first code.
	PendingTOTP *TOTPEnrollment `json:"pendingTOTP,omitempty"`
	// RecoveryCodeHashes are the hashes of the unused recovery codes.
	RecoveryCodeHashes []string `json:"recoveryCodeHashes,omitempty"`
	// FailedAttempts are the recent failed verifications (pruned to the
	// lockout window by whoever records one).
	FailedAttempts []time.Time `json:"failedAttempts,omitempty"`
	// LockedUntil: verifications are refused before this time.
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// DuoUsername is the user's name at Duo, when it differs from User.
	DuoUsername string `json:"duoUsername,omitempty"`
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
}

// ErrUnavailable means the store cannot be reached (API server down or slow,
// too many concurrent writers, database closed). Callers answer 503 "try
// again"; nothing was written.
var ErrUnavailable = errors.New("enrollment store unavailable, try again")

// ErrInvalidUser is returned for a user id the store refuses: empty, longer
// than MaxUserLength or not UTF-8.
var ErrInvalidUser = errors.New("invalid user id")

// ErrCorrupt is returned for a stored record that does not decode or that
// names another user. Nothing is written over it.
var ErrCorrupt = errors.New("stored enrollment is corrupt")

// MaxUserLength is the longest user id stored, in bytes.
const MaxUserLength = 1024

// Store keeps enrolments. Implementations are safe for concurrent use, also
// from several processes sharing one backend.
type Store interface {
	// Get returns the user's record; a user never seen gets an empty
	// Enrollment{User: user} and no error.
	Get(ctx context.Context, user string) (*Enrollment, error)
	// Update reads the record, calls fn with it and writes fn's changes with
	// compare-and-swap; on a conflict it reads again and calls fn again (a
	// bounded number of times), so fn must decide from what it is given
	// only. fn returning an error aborts without writing, and Update returns
	// that error. When fn changes nothing, nothing is written. The Enrollment
	// fn saw last is returned, with or without an error.
	Update(ctx context.Context, user string, fn func(e *Enrollment) error) (*Enrollment, error)
}

// maxAttempts bounds the read-modify-write rounds of one Update that lose a
// compare-and-swap race.
const maxAttempts = 10

func checkUser(user string) error {
	if user == "" || len(user) > MaxUserLength || !utf8.ValidString(user) {
		return fmt.Errorf("%w: the user id must be 1 to %d bytes of UTF-8", ErrInvalidUser, MaxUserLength)
	}
	return nil
}

// decode reads a stored record and checks that it belongs to user.
func decode(user string, raw []byte) (*Enrollment, error) {
	e := &Enrollment{}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("%w: decoding the enrollment of user %q: %w", ErrCorrupt, user, err)
	}
	if e.User != user {
		return nil, fmt.Errorf("%w: the stored enrollment for user %q names another user", ErrCorrupt, user)
	}
	return e, nil
}

func encode(e *Enrollment) ([]byte, error) {
	return json.Marshal(e)
}

// apply runs fn on a decoded record (or a new one when raw is nil) and says
// whether it changed. fn's error is returned as is.
func apply(user string, raw []byte, fn func(e *Enrollment) error) (e *Enrollment, out []byte, changed bool, err error) {
	if raw == nil {
		e = &Enrollment{User: user}
	} else if e, err = decode(user, raw); err != nil {
		return nil, nil, false, err
	}
	before, err := encode(e)
	if err != nil {
		return e, nil, false, err
	}
	if err := fn(e); err != nil {
		return e, nil, false, err
	}
	// fn may not move a record to another user.
	e.User = user
	out, err = encode(e)
	if err != nil {
		return e, nil, false, err
	}
	return e, out, !bytes.Equal(before, out), nil
}
