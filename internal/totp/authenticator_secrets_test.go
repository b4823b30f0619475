package totp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// Secrets at rest: sealed with the keyring, bound to their user and
// provider, and no answer at all without a keyring or a store.

func TestKeyringRotationKeepsSecretsReadable(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)

	g.Expect(f.data.AddSymmetricKey(start)).To(Succeed())
	rotated, err := keyring.New(*f.data)
	g.Expect(err).NotTo(HaveOccurred())
	f.kr.Store(rotated)
	f.clock.Add(30 * time.Second)
	g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))).To(Succeed(), "an older key still opens the secret")

	f.data.SymmetricKeys = f.data.SymmetricKeys[:1]
	dropped, err := keyring.New(*f.data)
	g.Expect(err).NotTo(HaveOccurred())
	f.kr.Store(dropped)
	f.clock.Add(30 * time.Second)
	err = f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))
	g.Expect(err).To(MatchError(keyring.ErrNoKey), "without the sealing key: fail closed")
	g.Expect(err).NotTo(MatchError(totp.ErrInvalidCode))
	g.Expect(f.record(t, anaKey).FailedAttempts).To(BeEmpty(), "not the user's failure")
}

func TestSealedSecretIsBoundToItsUser(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)
	anaTOTP := *f.record(t, anaKey).TOTP
	mallory := store.Key{Provider: provider, User: "mallory"}
	_, err := f.store.Update(ctx, mallory, func(e *store.Enrollment) error {
		e.TOTP = &anaTOTP
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	f.clock.Add(30 * time.Second)
	g.Expect(f.a.VerifyCode(ctx, mallory, f.code(t, params, secret))).To(MatchError(keyring.ErrNoKey))
}

func TestFailsClosedWithoutKeyringOrStore(t *testing.T) {
	g := NewWithT(t)
	s := fileStore(t)
	f := newFixture(t, s)
	secret, _ := f.enrol(t, anaKey, params)
	f.clock.Add(30 * time.Second)

	noKeyring := *f.a
	noKeyring.Keyring = func() *keyring.Keyring { return nil }
	g.Expect(noKeyring.VerifyCode(context.Background(), anaKey, f.code(t, params, secret))).To(MatchError(totp.ErrNoKeyring))

	g.Expect(s.Close()).To(Succeed())
	g.Expect(f.a.VerifyCode(context.Background(), anaKey, f.code(t, params, secret))).To(MatchError(store.ErrUnavailable))
	_, err := f.a.Status(context.Background(), anaKey)
	g.Expect(err).To(MatchError(store.ErrUnavailable))
}

func TestEnrolmentBelongsToOneProvider(t *testing.T) {
	for _, tc := range []struct {
		name     string
		provider string
	}{
		{name: "another provider of the namespace", provider: "apps/duo-totp"},
		{name: "a provider of the same name in another namespace", provider: "team-b/google-authenticator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFileFixture(t)
			ctx := context.Background()
			other := store.Key{Provider: tc.provider, User: ana}

			secret := f.begin(t, anaKey, browser)
			otherSecret := f.begin(t, other, browser)
			g.Expect(otherSecret).NotTo(Equal(secret), "each provider shows its own secret, also in one browser")
			recovery, err := f.a.ConfirmEnrollment(ctx, anaKey, browser, f.code(t, params, secret))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.record(t, other).Pending).To(HaveLen(1), "confirming one provider discards nothing of another")

			enrolled, err := f.a.Status(ctx, other)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(enrolled).To(BeFalse())
			f.clock.Add(30 * time.Second)
			g.Expect(f.a.VerifyCode(ctx, other, f.code(t, params, secret))).To(MatchError(totp.ErrNotEnrolled))
			g.Expect(f.a.VerifyRecoveryCode(ctx, other, recovery[0])).To(MatchError(totp.ErrNotEnrolled))
			_, err = f.a.ConfirmEnrollment(ctx, other, browser, f.code(t, params, secret))
			g.Expect(err).To(MatchError(totp.ErrInvalidCode), "the other provider's pending secret is not the enrolled one")

			_, err = f.a.ConfirmEnrollment(ctx, other, browser, f.code(t, params, otherSecret))
			g.Expect(err).NotTo(HaveOccurred())
			f.clock.Add(30 * time.Second)
			for range 4 {
				g.Expect(f.a.VerifyCode(ctx, other, wrong(f.code(t, params, otherSecret)))).To(MatchError(totp.ErrInvalidCode))
			}
			var locked *totp.LockedError
			g.Expect(errors.As(f.a.VerifyCode(ctx, other, wrong(f.code(t, params, otherSecret))), &locked)).To(BeTrue())
			e := f.record(t, anaKey)
			g.Expect(e.FailedAttempts).To(BeEmpty(), "failures for one provider do not count for another")
			g.Expect(e.LockedUntil.IsZero()).To(BeTrue())
			g.Expect(f.a.VerifyCode(ctx, anaKey, f.code(t, params, secret))).To(Succeed(), "nor lock it")

			g.Expect(f.a.Reset(ctx, other)).To(Succeed())
			enrolled, err = f.a.Status(ctx, anaKey)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(enrolled).To(BeTrue(), "a reset for one provider leaves the others")
		})
	}
}
