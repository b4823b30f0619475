package webhook

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// lockedOut counts a lockout in mfa_lockouts_total and writes it to the
// audit trail: who, for which provider, until when, how many in a row.
func lockedOut(ctx context.Context, m *metrics, a *audit.Logger, k store.Key, e *store.Enrollment) {
	m.lockouts.Inc()
	auditLockout(ctx, a, k.Provider, k.User,
		e.LockedUntil.UTC().Format(time.RFC3339)+" ("+strconv.Itoa(e.Lockouts)+" in a row)")
}

// lockoutCounter is the enrolment store as the TOTP authenticator sees
// it: every update that locks a user out (LockedUntil moved into the
// future) counts in mfa_lockouts_total, whichever page caused it.
type lockoutCounter struct {
	store.Store
	now     func() time.Time
	counted func(context.Context, store.Key, *store.Enrollment)
}

// Update implements store.Store.
func (l *lockoutCounter) Update(ctx context.Context, k store.Key, fn func(e *store.Enrollment) error) (*store.Enrollment, error) {
	var before time.Time
	e, err := l.Store.Update(ctx, k, func(e *store.Enrollment) error {
		before = e.LockedUntil // the last call is the one written
		return fn(e)
	})
	if err == nil && e != nil && e.LockedUntil.After(before) && e.LockedUntil.After(l.now()) {
		l.counted(ctx, k, e)
	}
	return e, err
}

// lockoutNotice tells a locked-out user when they may try again: the time
// in UTC, as every time on the pages, and how long that is from now. The
// date is added when it is not today (UTC).
func lockoutNotice(until, now time.Time) string {
	until, now = until.UTC(), now.UTC()
	at := until.Format("15:04") + " UTC"
	if y, m, d := until.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		at += " on " + until.Format("2 January")
	}
	return "Too many attempts. For your security, verification is paused until " + at +
		" (" + inDuration(until.Sub(now)) + "). Try again then."
}

// inDuration says how far away d is, in whole minutes rounded up:
// "in 1 minute", "in 12 minutes", "in 4 hours", "in 1 hour 5 minutes".
func inDuration(d time.Duration) string {
	minutes := int((d + time.Minute - 1) / time.Minute)
	minutes = max(minutes, 1)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	h, m := minutes/60, minutes%60
	switch {
	case h == 0:
		return "in " + plural(m, "minute")
	case m == 0:
		return "in " + plural(h, "hour")
	default:
		return "in " + plural(h, "hour") + " " + plural(m, "minute")
	}
}
