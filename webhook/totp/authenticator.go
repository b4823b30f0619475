package totp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/webhook/store"
)

// Errors of the Authenticator. Store errors (store.ErrUnavailable: answer
// 503, try again) are returned wrapped as they come.
var (
	ErrInvalidCode     = errors.New("the code is not valid")
	ErrReusedCode      = errors.New("the code was already used; wait for the next one")
	ErrNotEnrolled     = errors.New("no authenticator app is enrolled for this user")
	ErrAlreadyEnrolled = errors.New("an authenticator app is already enrolled for this user")
	ErrNoPending       = errors.New("no enrolment is in progress for this user; start again")
	ErrNoKeyring       = errors.New("no keyring is loaded")
)

// LockedError is returned while a user is locked out after too many failed
// attempts, and by the failure that locks them. Codes are not checked while
// locked, so it says nothing about whether a code was right.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed attempts; try again after %s", e.Until.UTC().Format(time.RFC3339))
}

// Lockout cuts off guessing: MaxFailures failed attempts within Window lock
// the user for Duration. Zero fields take the defaults: 5, 5m, 5m.
type Lockout struct {
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
}

func (l Lockout) withDefaults() Lockout {
	if l.MaxFailures <= 0 {
		l.MaxFailures = 5
	}
	if l.Window <= 0 {
		l.Window = 5 * time.Minute
	}
	if l.Duration <= 0 {
		l.Duration = 5 * time.Minute
	}
	return l
}

// recordFailure notes a failed attempt at now and returns the lockout it
// caused, if any.
func (l Lockout) recordFailure(e *store.Enrollment, now time.Time) *LockedError {
	l = l.withDefaults()
	cutoff := now.Add(-l.Window)
	recent := make([]time.Time, 0, len(e.FailedAttempts)+1)
	for _, t := range e.FailedAttempts {
		if t.After(cutoff) {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now.UTC())
	if len(recent) >= l.MaxFailures {
		e.FailedAttempts = nil
		e.LockedUntil = now.Add(l.Duration).UTC()
		return &LockedError{Until: e.LockedUntil}
	}
	e.FailedAttempts = recent
	return nil
}

func lockedAt(e *store.Enrollment, now time.Time) error {
	if now.Before(e.LockedUntil) {
		return &LockedError{Until: e.LockedUntil}
	}
	return nil
}

func clearFailures(e *store.Enrollment) {
	e.FailedAttempts = nil
	e.LockedUntil = time.Time{}
}

// Authenticator enrols users and verifies their codes. Every verification
// runs inside one store.Update, so across replicas a time step or a recovery
// code is accepted once, and a failure is always counted.
type Authenticator struct {
	Store store.Store
	// Keyring returns the current keyring; it can be swapped at runtime.
	Keyring func() *keyring.Keyring
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	Lockout Lockout
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Authenticator) keyring() (*keyring.Keyring, error) {
	if a.Keyring == nil {
		return nil, ErrNoKeyring
	}
	kr := a.Keyring()
	if kr == nil {
		return nil, ErrNoKeyring
	}
	return kr, nil
}

// Status says whether the user has a confirmed authenticator app.
func (a *Authenticator) Status(ctx context.Context, user string) (enrolled bool, err error) {
	e, err := a.Store.Get(ctx, user)
	if err != nil {
		return false, err
	}
	return e.TOTP != nil, nil
}

// BeginEnrollment returns the otpauth:// URI (for the QR code) and the
// base32 secret (for manual entry) of the user's pending secret, making one
// when there is none or when p no longer matches it. A reload shows the
// same QR code. It refuses with ErrAlreadyEnrolled once an app is confirmed.
func (a *Authenticator) BeginEnrollment(ctx context.Context, user string, p Params) (uri string, secretBase32 string, err error) {
	if err := p.Validate(); err != nil {
		return "", "", err
	}
	kr, err := a.keyring()
	if err != nil {
		return "", "", err
	}
	now := a.now()
	var secret []byte
	_, err = a.Store.Update(ctx, user, func(e *store.Enrollment) error {
		secret = nil
		if e.TOTP != nil {
			return ErrAlreadyEnrolled
		}
		if pe := e.PendingTOTP; pe != nil && sameParams(pe, p) {
			if s, err := kr.Open(keyring.PurposeStore, pe.SealedSecret, []byte(user)); err == nil {
				secret = s
				pe.Skew = p.Skew
				return nil
			}
			// The key that sealed it is gone: start over with a new secret.
		}
		s, err := GenerateSecretFor(p.Algorithm)
		if err != nil {
			return err
		}
		secret = s
		e.PendingTOTP = &store.TOTPEnrollment{
			SealedSecret:  kr.Seal(keyring.PurposeStore, s, []byte(user)),
			Digits:        p.Digits,
			PeriodSeconds: int(p.Period / time.Second),
			Algorithm:     string(p.Algorithm),
			Skew:          p.Skew,
			Created:       now.UTC(),
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return URI(p, user, secret), EncodeSecret(secret), nil
}

func sameParams(t *store.TOTPEnrollment, p Params) bool {
	return t.Digits == p.Digits && t.PeriodSeconds == int(p.Period/time.Second) && t.Algorithm == string(p.Algorithm)
}

// paramsOf returns the parameters a secret was enrolled with.
func paramsOf(t *store.TOTPEnrollment) Params {
	return Params{
		Digits:    t.Digits,
		Period:    time.Duration(t.PeriodSeconds) * time.Second,
		Algorithm: v1alpha1.TOTPAlgorithm(t.Algorithm),
		Skew:      t.Skew,
	}
}

// normalizeCode drops the spaces apps show in the middle of a code.
func normalizeCode(code string) string {
	return strings.Join(strings.Fields(code), "")
}

// checkCode verifies code against t and records the outcome in e: on
// success the replay guard moves to the accepted step and failures are
// cleared; on failure the attempt is counted (and may lock the user). The
// returned error is the verdict for the caller; e must be written either way.
func (a *Authenticator) checkCode(e *store.Enrollment, t *store.TOTPEnrollment, secret []byte, code string, now time.Time) error {
	p := paramsOf(t)
	if step, ok := Verify(p, secret, code, now, t.LastStep); ok {
		t.LastStep = step
		clearFailures(e)
		return nil
	}
	verdict := ErrInvalidCode
	if _, right := Verify(p, secret, code, now, anyStep); right {
		verdict = ErrReusedCode
	}
	if locked := a.Lockout.recordFailure(e, now); locked != nil {
		return locked
	}
	return verdict
}

func (a *Authenticator) openSecret(kr *keyring.Keyring, user string, t *store.TOTPEnrollment) ([]byte, error) {
	secret, err := kr.Open(keyring.PurposeStore, t.SealedSecret, []byte(user))
	if err != nil {
		return nil, fmt.Errorf("opening the TOTP secret of user %q: %w (the keyring no longer holds the key that sealed it; the user must enrol again)", user, err)
	}
	return secret, nil
}

// ConfirmEnrollment checks the first code of the pending secret. When it is
// right the secret becomes the user's enrolment (the replay guard starts at
// that code's step) and 10 recovery codes are made; they are returned once
// and stored only as hashes.
func (a *Authenticator) ConfirmEnrollment(ctx context.Context, user, code string) (recoveryCodes []string, err error) {
	kr, err := a.keyring()
	if err != nil {
		return nil, err
	}
	now := a.now()
	code = normalizeCode(code)
	var verdict error
	_, err = a.Store.Update(ctx, user, func(e *store.Enrollment) error {
		verdict, recoveryCodes = nil, nil
		if e.TOTP != nil {
			return ErrAlreadyEnrolled
		}
		if e.PendingTOTP == nil {
			return ErrNoPending
		}
		if err := lockedAt(e, now); err != nil {
			return err
		}
		secret, err := a.openSecret(kr, user, e.PendingTOTP)
		if err != nil {
			return err
		}
		if verdict = a.checkCode(e, e.PendingTOTP, secret, code, now); verdict != nil {
			return nil // write the counted failure
		}
		codes, hashes, err := NewRecoveryCodes(RecoveryCodeCount)
		if err != nil {
			return err
		}
		confirmed := *e.PendingTOTP
		// Sealed again so that the enrolment uses the current key.
		confirmed.SealedSecret = kr.Seal(keyring.PurposeStore, secret, []byte(user))
		confirmed.Created = now.UTC()
		e.TOTP = &confirmed
		e.PendingTOTP = nil
		e.RecoveryCodeHashes = hashes
		recoveryCodes = codes
		return nil
	})
	if err != nil {
		return nil, err
	}
	if verdict != nil {
		return nil, verdict
	}
	return recoveryCodes, nil
}

// VerifyCode checks a code of the user's authenticator app. A code is
// accepted once: a code of a step at or before the last accepted one is
// ErrReusedCode. Failures count towards the lockout; while locked the code
// is not checked.
func (a *Authenticator) VerifyCode(ctx context.Context, user, code string) error {
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	now := a.now()
	code = normalizeCode(code)
	var verdict error
	_, err = a.Store.Update(ctx, user, func(e *store.Enrollment) error {
		verdict = nil
		if e.TOTP == nil {
			return ErrNotEnrolled
		}
		if err := lockedAt(e, now); err != nil {
			return err
		}
		secret, err := a.openSecret(kr, user, e.TOTP)
		if err != nil {
			return err
		}
		verdict = a.checkCode(e, e.TOTP, secret, code, now)
		return nil
	})
	if err != nil {
		return err
	}
	return verdict
}

// VerifyRecoveryCode checks a recovery code; each one works once. Failures
// count towards the same lockout as codes.
func (a *Authenticator) VerifyRecoveryCode(ctx context.Context, user, code string) error {
	now := a.now()
	var verdict error
	_, err := a.Store.Update(ctx, user, func(e *store.Enrollment) error {
		verdict = nil
		if e.TOTP == nil {
			return ErrNotEnrolled
		}
		if err := lockedAt(e, now); err != nil {
			return err
		}
		i, ok := MatchRecoveryCode(e.RecoveryCodeHashes, code)
		if !ok {
			verdict = ErrInvalidCode
			if locked := a.Lockout.recordFailure(e, now); locked != nil {
				verdict = locked
			}
			return nil
		}
		e.RecoveryCodeHashes = append(e.RecoveryCodeHashes[:i:i], e.RecoveryCodeHashes[i+1:]...)
		clearFailures(e)
		return nil
	})
	if err != nil {
		return err
	}
	return verdict
}

// Reset removes the user's authenticator app, pending secret and recovery
// codes, so that they can enrol again (e.g. after signing in with a
// recovery code because the phone is lost). The lockout state is kept.
func (a *Authenticator) Reset(ctx context.Context, user string) error {
	_, err := a.Store.Update(ctx, user, func(e *store.Enrollment) error {
		e.TOTP = nil
		e.PendingTOTP = nil
		e.RecoveryCodeHashes = nil
		return nil
	})
	return err
}
