package webhook

import (
	"context"
	"log/slog"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// lockedOut counts a lockout in mfa_lockouts_total and writes it to the
// audit log: who, for which provider, until when, how many in a row.
func lockedOut(m *metrics, log *slog.Logger, k store.Key, e *store.Enrollment) {
	m.lockouts.Inc()
	log.Warn("user locked out after too many failed second-factor attempts",
		"audit", "lockout", "provider", k.Provider, "user", k.User,
		"until", e.LockedUntil.UTC().Format(time.RFC3339), "lockoutsInARow", e.Lockouts)
}

// lockoutCounter is the enrolment store as the TOTP authenticator sees
// it: every update that locks a user out (LockedUntil moved into the
// future) counts in mfa_lockouts_total, whichever page caused it.
type lockoutCounter struct {
	store.Store
	now     func() time.Time
	counted func(store.Key, *store.Enrollment)
}

// Update implements store.Store.
func (l *lockoutCounter) Update(ctx context.Context, k store.Key, fn func(e *store.Enrollment) error) (*store.Enrollment, error) {
	var before time.Time
	e, err := l.Store.Update(ctx, k, func(e *store.Enrollment) error {
		before = e.LockedUntil // the last call is the one written
		return fn(e)
	})
	if err == nil && e != nil && e.LockedUntil.After(before) && e.LockedUntil.After(l.now()) {
		l.counted(k, e)
	}
	return e, err
}
