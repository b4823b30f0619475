package totp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// Lockouts: failed codes lock a user out for a while, and each lockout in
// a row lasts longer until a success.

func TestLockoutAfterFiveFailuresReleasedAfterFiveMinutes(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, recovery := f.enrol(t, anaKey, params)
	f.clock.Add(30 * time.Second)

	for i := 1; i <= 4; i++ {
		g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode), "failure %d", i)
		f.clock.Add(time.Second)
	}
	lockedAt := f.clock.Now()
	err := f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))
	var locked *totp.LockedError
	g.Expect(errors.As(err, &locked)).To(BeTrue(), "the fifth failure locks: %v", err)
	g.Expect(locked.Until).To(BeTemporally("==", lockedAt.Add(5*time.Minute)))

	before := f.record(t, anaKey)
	err = f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))
	g.Expect(errors.As(err, &locked)).To(BeTrue(), "a right code is not even checked while locked: %v", err)
	err = f.a.VerifyRecoveryCode(ctx, anaKey, recovery[0])
	g.Expect(errors.As(err, &locked)).To(BeTrue(), "nor a recovery code: %v", err)
	g.Expect(f.record(t, anaKey)).To(Equal(before), "attempts while locked change nothing")

	f.clock.Add(5*time.Minute - time.Nanosecond)
	err = f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))
	g.Expect(errors.As(err, &locked)).To(BeTrue(), "still locked a moment before the end: %v", err)

	f.clock.Add(time.Nanosecond)
	g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))).To(Succeed(), "released after 5 minutes")
	e := f.record(t, anaKey)
	g.Expect(e.LockedUntil.IsZero()).To(BeTrue())
	g.Expect(e.FailedAttempts).To(BeEmpty())
}

func TestFailuresOutsideTheWindowAreForgotten(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)
	for range 4 {
		g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode))
	}
	f.clock.Add(5*time.Minute + time.Second)
	for i := range 4 {
		g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode), "failure %d of the new window", i+1)
	}
	g.Expect(f.record(t, anaKey).FailedAttempts).To(HaveLen(4))
}

func TestSuccessClearsFailures(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)
	f.clock.Add(30 * time.Second)
	for range 4 {
		g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode))
	}
	g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))).To(Succeed())
	g.Expect(f.record(t, anaKey).FailedAttempts).To(BeEmpty())
	f.clock.Add(30 * time.Second)
	for range 4 {
		g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode))
	}
}

func TestLockoutSettings(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	f.a.Lockout = totp.Lockout{MaxFailures: 2, Window: time.Minute, Duration: time.Hour}
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)
	g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode))
	var locked *totp.LockedError
	g.Expect(errors.As(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret))), &locked)).To(BeTrue())
	g.Expect(locked.Until).To(BeTemporally("==", start.Add(time.Hour)))
}

// lockOut fails k's codes until the user is locked and returns the lockout.
func (f *fixture) lockOut(t *testing.T, k store.Key, secret []byte) *totp.LockedError {
	t.Helper()
	g := NewWithT(t)
	for i := 1; i <= 4; i++ {
		g.Expect(f.a.VerifyCode(context.Background(), k, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode), "failure %d", i)
		f.clock.Add(time.Second)
	}
	err := f.a.VerifyCode(context.Background(), k, wrong(f.code(t, params, secret)))
	var locked *totp.LockedError
	g.Expect(errors.As(err, &locked)).To(BeTrue(), "the fifth failure locks: %v", err)
	return locked
}

func TestLockoutsEscalateUntilASuccess(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name    string
		lockout totp.Lockout
		want    []time.Duration
	}{
		{name: "defaults", want: []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour, day, day}},
		{name: "longer first lockout, capped at a day", lockout: totp.Lockout{Duration: 10 * time.Minute}, want: []time.Duration{10 * time.Minute, 30 * time.Minute, 2 * time.Hour, 8 * time.Hour, day, day}},
		{name: "MaxDuration caps", lockout: totp.Lockout{MaxDuration: time.Hour}, want: []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour, time.Hour}},
		{name: "MaxDuration below Duration", lockout: totp.Lockout{Duration: time.Hour, MaxDuration: 30 * time.Minute}, want: []time.Duration{time.Hour, time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFileFixture(t)
			f.a.Lockout = tc.lockout
			ctx := context.Background()
			secret, _ := f.enrol(t, anaKey, params)

			for i, d := range tc.want {
				locked := f.lockOut(t, anaKey, secret)
				g.Expect(locked.Count).To(Equal(i+1), "lockout %d", i+1)
				g.Expect(locked.Until).To(BeTemporally("==", f.clock.Now().Add(d)), "lockout %d lasts %s", i+1, d)
				e := f.record(t, anaKey)
				g.Expect(e.Lockouts).To(Equal(i + 1))
				g.Expect(e.LockedUntil).To(BeTemporally("==", locked.Until))

				var still *totp.LockedError
				g.Expect(errors.As(f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret)), &still)).To(BeTrue())
				g.Expect(still.Until).To(BeTemporally("==", locked.Until))
				g.Expect(still.Count).To(BeZero(), "an earlier lockout still in force")
				f.clock.Add(d)
			}

			g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))).To(Succeed())
			g.Expect(f.record(t, anaKey).Lockouts).To(BeZero(), "a success resets the escalation")
			locked := f.lockOut(t, anaKey, secret)
			g.Expect(locked.Count).To(Equal(1))
			g.Expect(locked.Until).To(BeTemporally("==", f.clock.Now().Add(tc.want[0])))
		})
	}
}

func TestRecoveryCodeFailuresEscalateTheSameLockout(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, recovery := f.enrol(t, anaKey, params)
	f.clock.Add(f.lockOut(t, anaKey, secret).Until.Sub(f.clock.Now()))

	for range 4 {
		g.Expect(f.a.VerifyRecoveryCode(ctx, anaKey, "not a code")).To(MatchError(totp.ErrInvalidCode))
	}
	var locked *totp.LockedError
	g.Expect(errors.As(f.a.VerifyRecoveryCode(ctx, anaKey, "not a code"), &locked)).To(BeTrue())
	g.Expect(locked.Count).To(Equal(2))
	g.Expect(locked.Until).To(BeTemporally("==", f.clock.Now().Add(15*time.Minute)))

	f.clock.Add(15 * time.Minute)
	g.Expect(f.a.VerifyRecoveryCode(ctx, anaKey, recovery[0])).To(Succeed())
	g.Expect(f.record(t, anaKey).Lockouts).To(BeZero(), "a recovery code resets the escalation too")
}
