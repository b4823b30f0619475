package totp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/store"
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
	ErrNoBrowser       = errors.New("the browser has no identifier to bind a new secret to; allow cookies and reload")
)

// LockedError is returned while a user is locked out after too many failed
// attempts, and by the failure that locks them. Codes are not checked while
// locked, so it says nothing about whether a code was right.
type LockedError struct {
	Until time.Time
	// Count is the number of lockouts in a row, this one included; 0 when
	// the error reports an earlier lockout still in force.
	Count int
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed attempts; try again after %s", e.Until.UTC().Format(time.RFC3339))
}

// Lockout cuts off guessing: MaxFailures failed attempts within Window lock
// the user for Duration. Each lockout after that, until a success, lasts
// longer (Duration ×1, ×3, ×12, ×48, ×288: 5m, 15m, 1h, 4h, 24h by
// default), at most MaxDuration. Zero fields take the defaults: 5, 5m, 5m,
// 24h.
type Lockout struct {
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
	MaxDuration time.Duration
}

// lockoutSteps are the multiples of Duration of successive lockouts.
var lockoutSteps = []time.Duration{1, 3, 12, 48, 288}

// durationOf returns how long the n-th lockout in a row lasts (n from 1).
func (l Lockout) durationOf(n int) time.Duration {
	l = l.withDefaults()
	step := lockoutSteps[min(max(n, 1), len(lockoutSteps))-1]
	return min(l.Duration*step, max(l.MaxDuration, l.Duration))
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
	if l.MaxDuration <= 0 {
		l.MaxDuration = 24 * time.Hour
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
		e.Lockouts++
		e.LockedUntil = now.Add(l.durationOf(e.Lockouts)).UTC()
		return &LockedError{Until: e.LockedUntil, Count: e.Lockouts}
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
	e.Lockouts = 0
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
func (a *Authenticator) Status(ctx context.Context, k store.Key) (enrolled bool, err error) {
	e, err := a.Store.Get(ctx, k)
	if err != nil {
		return false, err
	}
	return e.TOTP != nil, nil
}

// PendingLifetime is how long a pending secret may be confirmed.
const PendingLifetime = 10 * time.Minute

// maxPending bounds the pending secrets kept for one user (one per
// browser); a new one pushes out the oldest.
const maxPending = 4

// BeginEnrollment returns the otpauth:// URI (for the QR code) and the
// base32 secret (for manual entry) of the pending secret of the user in
// this browser (browser: the browser's own random identifier), making one
// when there is none, when it expired (PendingLifetime) or when p no longer
// matches it. A reload in the same browser shows the same QR code; another
// browser gets a secret of its own and never sees this one. It refuses
// with ErrAlreadyEnrolled once an app is confirmed.
func (a *Authenticator) BeginEnrollment(ctx context.Context, k store.Key, browser []byte, p Params) (uri string, secretBase32 string, err error) {
	if err := p.Validate(); err != nil {
		return "", "", err
	}
	if len(browser) == 0 {
		return "", "", ErrNoBrowser
	}
	kr, err := a.keyring()
	if err != nil {
		return "", "", err
	}
	now := a.now()
	bound := browserHash(browser)
	var secret []byte
	_, err = a.Store.Update(ctx, k, func(e *store.Enrollment) error {
		secret = nil
		if e.TOTP != nil {
			return ErrAlreadyEnrolled
		}
		e.LegacyPendingTOTP = nil
		e.Pending = livePending(e.Pending, now)
		if i := pendingOf(e.Pending, bound); i >= 0 {
			pe := &e.Pending[i]
			if sameParams(pe, p) {
				if s, err := kr.Open(keyring.PurposeStore, pe.SealedSecret, []byte(k.User)); err == nil {
					secret = s
					pe.Skew = p.Skew
					return nil
				}
				// The key that sealed it is gone: start over with a new secret.
			}
			e.Pending = slices.Delete(e.Pending, i, i+1)
		}
		s, err := GenerateSecretFor(p.Algorithm)
		if err != nil {
			return err
		}
		secret = s
		if len(e.Pending) >= maxPending {
			e.Pending = slices.Delete(e.Pending, 0, len(e.Pending)-maxPending+1)
		}
		e.Pending = append(e.Pending, store.TOTPEnrollment{
			SealedSecret:  kr.Seal(keyring.PurposeStore, s, []byte(k.User)),
			Digits:        p.Digits,
			PeriodSeconds: int(p.Period / time.Second),
			Algorithm:     string(p.Algorithm),
			Skew:          p.Skew,
			Created:       now.UTC(),
			Browser:       bound,
		})
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return URI(p, k.User, secret), EncodeSecret(secret), nil
}

// browserHash is what a pending secret keeps of the browser it is bound to.
func browserHash(browser []byte) []byte {
	sum := sha256.Sum256(append([]byte("mfa-operator pending totp\x00"), browser...))
	return sum[:]
}

// livePending drops the pending secrets older than PendingLifetime.
func livePending(pending []store.TOTPEnrollment, now time.Time) []store.TOTPEnrollment {
	return slices.DeleteFunc(pending, func(pe store.TOTPEnrollment) bool { return expired(&pe, now) })
}

func expired(pe *store.TOTPEnrollment, now time.Time) bool {
	return !now.Before(pe.Created.Add(PendingLifetime))
}

// pendingOf returns the index of the pending secret bound to bound, or -1.
func pendingOf(pending []store.TOTPEnrollment, bound []byte) int {
	return slices.IndexFunc(pending, func(pe store.TOTPEnrollment) bool {
		return subtle.ConstantTimeCompare(pe.Browser, bound) == 1
	})
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

// ConfirmEnrollment checks the first code of the pending secret of this
// browser. When it is right the secret becomes the user's enrolment (the
// replay guard starts at that code's step), every other pending secret is
// discarded, and 10 recovery codes are made; they are returned once and
// stored only as hashes.
func (a *Authenticator) ConfirmEnrollment(ctx context.Context, k store.Key, browser []byte, code string) (recoveryCodes []string, err error) {
	kr, err := a.keyring()
	if err != nil {
		return nil, err
	}
	now := a.now()
	code = normalizeCode(code)
	var verdict error
	bound := browserHash(browser)
	_, err = a.Store.Update(ctx, k, func(e *store.Enrollment) error {
		verdict, recoveryCodes = nil, nil
		if e.TOTP != nil {
			return ErrAlreadyEnrolled
		}
		i := pendingOf(e.Pending, bound)
		if len(browser) == 0 || i < 0 || expired(&e.Pending[i], now) {
			return ErrNoPending
		}
		if err := lockedAt(e, now); err != nil {
			return err
		}
		pending := &e.Pending[i]
		secret, err := a.openSecret(kr, k.User, pending)
		if err != nil {
			return err
		}
		if verdict = a.checkCode(e, pending, secret, code, now); verdict != nil {
			return nil // write the counted failure
		}
		codes, hashes, err := NewRecoveryCodes(RecoveryCodeCount)
		if err != nil {
			return err
		}
		confirmed := *pending
		// Sealed again so that the enrolment uses the current key.
		confirmed.SealedSecret = kr.Seal(keyring.PurposeStore, secret, []byte(k.User))
		confirmed.Created = now.UTC()
		confirmed.Browser = nil
		e.TOTP = &confirmed
		e.Pending = nil
		e.LegacyPendingTOTP = nil
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
func (a *Authenticator) VerifyCode(ctx context.Context, k store.Key, code string) error {
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	now := a.now()
	code = normalizeCode(code)
	var verdict error
	_, err = a.Store.Update(ctx, k, func(e *store.Enrollment) error {
		verdict = nil
		// Recovery codes stand in for an authenticator app or for the
		// WebAuthn keys they were issued with.
		if e.TOTP == nil && !e.HasCredentials() {
			return ErrNotEnrolled
		}
		if err := lockedAt(e, now); err != nil {
			return err
		}
		secret, err := a.openSecret(kr, k.User, e.TOTP)
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
func (a *Authenticator) VerifyRecoveryCode(ctx context.Context, k store.Key, code string) error {
	now := a.now()
	var verdict error
	_, err := a.Store.Update(ctx, k, func(e *store.Enrollment) error {
		verdict = nil
		// Recovery codes stand in for an authenticator app or for the
		// WebAuthn keys they were issued with.
		if e.TOTP == nil && !e.HasCredentials() {
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
func (a *Authenticator) Reset(ctx context.Context, k store.Key) error {
	_, err := a.Store.Update(ctx, k, func(e *store.Enrollment) error {
		e.TOTP = nil
		e.Pending = nil
		e.LegacyPendingTOTP = nil
		e.RecoveryCodeHashes = nil
		return nil
	})
	return err
}
