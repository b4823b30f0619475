package totp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// begin shows the QR code of k's pending secret in browser b and returns the
// secret.
func (f *fixture) begin(t *testing.T, k store.Key, b []byte) []byte {
	t.Helper()
	_, b32, err := f.a.BeginEnrollment(context.Background(), k, b, params)
	if err != nil {
		t.Fatalf("BeginEnrollment in %q: %v", b, err)
	}
	return decodeSecret(t, b32)
}

// browserN is the identifier of the n-th browser.
func browserN(n int) []byte { return fmt.Appendf(nil, "browser-%d", n) }

func TestEachBrowserGetsItsOwnPendingSecret(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	first := f.begin(t, anaKey, browserN(1))
	second := f.begin(t, anaKey, browserN(2))
	g.Expect(second).NotTo(Equal(first), "another browser never sees the first browser's secret")
	g.Expect(f.record(t, anaKey).Pending).To(HaveLen(2))

	_, err := f.a.ConfirmEnrollment(ctx, anaKey, browserN(2), f.code(t, params, first))
	g.Expect(err).To(MatchError(totp.ErrInvalidCode), "the second browser's code is checked against its own secret")
	e := f.record(t, anaKey)
	g.Expect(e.TOTP).To(BeNil())
	g.Expect(e.FailedAttempts).To(HaveLen(1), "and the attempt counts as a failure")

	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browserN(3), f.code(t, params, first))
	g.Expect(err).To(MatchError(totp.ErrNoPending), "a browser that was shown no secret has none to confirm")
	g.Expect(f.record(t, anaKey).FailedAttempts).To(HaveLen(1), "which is not a failure")

	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browserN(1), f.code(t, params, first))
	g.Expect(err).NotTo(HaveOccurred(), "the first browser still confirms its own secret")
}

func TestReloadInTheSameBrowserShowsTheSameSecret(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	uri, b32, err := f.a.BeginEnrollment(ctx, anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	f.clock.Add(time.Minute)
	other := f.begin(t, anaKey, browserN(2))

	f.clock.Add(totp.PendingLifetime - time.Minute - time.Second)
	again, b32Again, err := f.a.BeginEnrollment(ctx, anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(uri), "a reload shows the same QR code, also after another browser asked for one")
	g.Expect(b32Again).To(Equal(b32))
	g.Expect(f.begin(t, anaKey, browserN(2))).To(Equal(other))

	e := f.record(t, anaKey)
	g.Expect(e.Pending).To(HaveLen(2), "reloads add no pending secret")
	g.Expect(e.Pending[0].Created).To(BeTemporally("==", start), "nor make one younger")
}

func TestPendingSecretExpires(t *testing.T) {
	for _, tc := range []struct {
		name string
		age  time.Duration
		want error
	}{
		{name: "a second before the lifetime", age: totp.PendingLifetime - time.Second},
		{name: "at the lifetime", age: totp.PendingLifetime, want: totp.ErrNoPending},
		{name: "an hour later", age: time.Hour, want: totp.ErrNoPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFileFixture(t)
			ctx := context.Background()
			secret := f.begin(t, anaKey, browser)
			f.clock.Add(tc.age)

			_, err := f.a.ConfirmEnrollment(ctx, anaKey, browser, f.code(t, params, secret))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(tc.want), "a right code of an expired secret")
			e := f.record(t, anaKey)
			g.Expect(e.TOTP).To(BeNil())
			g.Expect(e.FailedAttempts).To(BeEmpty(), "is not the user's failure")

			fresh := f.begin(t, anaKey, browser)
			g.Expect(fresh).NotTo(Equal(secret), "starting again makes a new secret")
			e = f.record(t, anaKey)
			g.Expect(e.Pending).To(HaveLen(1), "in place of the expired one")
			g.Expect(e.Pending[0].Created).To(BeTemporally("==", f.clock.Now()))
			_, err = f.a.ConfirmEnrollment(ctx, anaKey, browser, f.code(t, params, fresh))
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}

func TestConfirmingInOneBrowserDiscardsTheOthers(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	first := f.begin(t, anaKey, browserN(1))
	second := f.begin(t, anaKey, browserN(2))
	f.begin(t, anaKey, browserN(3))

	_, err := f.a.ConfirmEnrollment(ctx, anaKey, browserN(2), f.code(t, params, second))
	g.Expect(err).NotTo(HaveOccurred())
	e := f.record(t, anaKey)
	g.Expect(e.Pending).To(BeEmpty())
	g.Expect(e.TOTP).NotTo(BeNil())
	g.Expect(e.TOTP.Browser).To(BeEmpty(), "the enrolment is bound to no browser")

	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browserN(1), f.code(t, params, first))
	g.Expect(err).To(MatchError(totp.ErrAlreadyEnrolled))
	_, _, err = f.a.BeginEnrollment(ctx, anaKey, browserN(1), params)
	g.Expect(err).To(MatchError(totp.ErrAlreadyEnrolled))

	f.clock.Add(30 * time.Second)
	g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, first))).To(MatchError(totp.ErrInvalidCode), "the discarded secret is no factor")
	g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, second))).To(Succeed())
}

func TestPendingSecretNeedsABrowser(t *testing.T) {
	for name, b := range map[string][]byte{"nil": nil, "empty": {}} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFileFixture(t)
			ctx := context.Background()
			_, _, err := f.a.BeginEnrollment(ctx, anaKey, b, params)
			g.Expect(err).To(MatchError(totp.ErrNoBrowser))
			g.Expect(f.record(t, anaKey).Pending).To(BeEmpty())

			secret := f.begin(t, anaKey, browser)
			_, err = f.a.ConfirmEnrollment(ctx, anaKey, b, f.code(t, params, secret))
			g.Expect(err).To(MatchError(totp.ErrNoPending), "no browser confirms another browser's secret")
			e := f.record(t, anaKey)
			g.Expect(e.TOTP).To(BeNil())
			g.Expect(e.Pending).To(HaveLen(1))
		})
	}
}

func TestAtMostFourPendingSecrets(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secrets := map[int][]byte{}
	for n := 1; n <= 4; n++ {
		secrets[n] = f.begin(t, anaKey, browserN(n))
		f.clock.Add(time.Second)
	}
	g.Expect(f.begin(t, anaKey, browserN(1))).To(Equal(secrets[1]), "a reload keeps the oldest the oldest")

	secrets[5] = f.begin(t, anaKey, browserN(5))
	g.Expect(f.record(t, anaKey).Pending).To(HaveLen(4))
	_, err := f.a.ConfirmEnrollment(ctx, anaKey, browserN(1), f.code(t, params, secrets[1]))
	g.Expect(err).To(MatchError(totp.ErrNoPending), "the oldest was pushed out")
	for n := 2; n <= 5; n++ {
		g.Expect(f.begin(t, anaKey, browserN(n))).To(Equal(secrets[n]), "browser %d keeps its secret", n)
	}

	renewed := f.begin(t, anaKey, browserN(1))
	g.Expect(renewed).NotTo(Equal(secrets[1]), "the pushed-out browser gets a new secret")
	g.Expect(f.record(t, anaKey).Pending).To(HaveLen(4))
	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browserN(2), f.code(t, params, secrets[2]))
	g.Expect(err).To(MatchError(totp.ErrNoPending), "and pushes out the next oldest")

	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browserN(1), f.code(t, params, renewed))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestExpiredPendingSecretsMakeRoom(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	for n := 1; n <= 4; n++ {
		f.begin(t, anaKey, browserN(n))
	}
	f.clock.Add(totp.PendingLifetime)
	f.begin(t, anaKey, browserN(5))
	e := f.record(t, anaKey)
	g.Expect(e.Pending).To(HaveLen(1), "expired secrets are dropped, not kept until pushed out")
	g.Expect(e.Pending[0].Created).To(BeTemporally("==", f.clock.Now()))
}
