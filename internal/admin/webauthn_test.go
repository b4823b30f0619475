package admin

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// A WebAuthn provider's keys are listed one row each, and reset --factor
// webauthn removes them with their recovery codes while the user's TOTP
// record keeps its own.
func TestUsersListsWebAuthnKeysAndResetRemovesThem(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	st, err := store.NewFileStore(filepath.Join(t.TempDir(), "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const keys = "apps/webauthn"
	_, err = st.Update(ctx, store.Key{Provider: keys, User: ana}, func(e *store.Enrollment) error {
		e.WebAuthn = &store.WebAuthnEnrollment{UserHandle: []byte("handle"), Credentials: []store.WebAuthnCredential{
			{ID: []byte{1}, Name: "YubiKey\x1b[2J", Created: now.Add(-48 * time.Hour), LastUsed: now.Add(-time.Hour)},
			{ID: []byte{2}, Name: "Laptop", BackupEligible: true, Created: now.Add(-24 * time.Hour)},
		}}
		e.RecoveryCodeHashes = []string{"a", "b"}
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = st.Update(ctx, store.Key{Provider: provider, User: ana}, func(e *store.Enrollment) error {
		e.TOTP = &store.TOTPEnrollment{SealedSecret: []byte("x"), Digits: 6, PeriodSeconds: 30, Created: now}
		e.RecoveryCodeHashes = []string{"c"}
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())

	revoked := revocationsSeen{}
	a := &Admin{Store: st, Lister: st, Revoker: revoked, Now: func() time.Time { return now },
		Keys: func(context.Context, string) ([]store.Key, error) {
			return []store.Key{{Provider: provider, User: ana}, {Provider: keys, User: ana}}, nil
		}}
	rows, err := a.Users(ctx, nil)
	g.Expect(err).NotTo(HaveOccurred())
	factors := map[string]Row{}
	for _, r := range rows {
		factors[r.Provider+" "+r.Factor+" "+r.Detail] = r
	}
	g.Expect(factors).To(HaveLen(5))
	g.Expect(factors).To(HaveKey(keys + " webauthn YubiKey[2J, device-bound")) // no escape reaches the terminal
	g.Expect(factors[keys+" webauthn YubiKey[2J, device-bound"].LastUsed).To(Equal(now.Add(-time.Hour)))
	g.Expect(factors).To(HaveKey(keys + " webauthn Laptop, synced passkey"))
	g.Expect(factors).To(HaveKey(keys + " recovery-codes 2 left"))
	g.Expect(factors).To(HaveKey(provider + " totp "))
	g.Expect(factors).To(HaveKey(provider + " recovery-codes 1 left"))

	changed, err := a.Reset(ctx, ana, "", FactorWebAuthn)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(Equal([]string{keys}), "the TOTP record is untouched")
	g.Expect(revoked).To(HaveKeyWithValue(ana, now), "what was issued before the reset is revoked")
	rows, err = a.Users(ctx, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(HaveLen(2))
	for _, r := range rows {
		g.Expect(r.Provider).To(Equal(provider))
	}

	_, err = a.Reset(ctx, ana, "", "sms")
	g.Expect(err).To(MatchError(ErrUnknownFactor))
	g.Expect(err.Error()).To(ContainSubstring("webauthn"))
}

// revocationsSeen records each user's revocation instant.
type revocationsSeen map[string]time.Time

func (r revocationsSeen) Revoke(_ context.Context, user string, at time.Time) error {
	r[user] = at
	return nil
}
