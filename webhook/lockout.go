package webhook

import (
	"context"
	"time"

	"github.com/mfa-operator/mfa-operator/webhook/store"
)

// lockoutCounter is the enrolment store as the TOTP authenticator sees
// it: every update that locks a user out (LockedUntil moved into the
// future) counts in mfa_lockouts_total, whichever page caused it.
type lockoutCounter struct {
	store.Store
	now     func() time.Time
	counted func()
}

// Update implements store.Store.
func (l *lockoutCounter) Update(ctx context.Context, user string, fn func(e *store.Enrollment) error) (*store.Enrollment, error) {
	var before time.Time
	e, err := l.Store.Update(ctx, user, func(e *store.Enrollment) error {
		before = e.LockedUntil // the last call is the one written
		return fn(e)
	})
	if err == nil && e != nil && e.LockedUntil.After(before) && e.LockedUntil.After(l.now()) {
		l.counted()
	}
	return e, err
}
