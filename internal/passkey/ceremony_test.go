package passkey_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/passkey"
	"github.com/mfa-operator/mfa-operator/internal/passkey/passkeytest"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

const origin = "https://auth.example.com"

var (
	key     = store.Key{Provider: "apps/webauthn", User: "ana@example.com"}
	browser = []byte("browser-1")
)

type fixture struct {
	c   *passkey.Ceremonies
	rp  *passkey.RelyingParty
	now time.Time
}

func newFixture(tb testing.TB, spec *v1alpha1.WebAuthnSpec) *fixture {
	tb.Helper()
	s, err := store.NewFileStore(filepath.Join(tb.TempDir(), "store.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	public, _ := url.Parse(origin)
	rp, err := passkey.New(spec, passkey.Defaults{CookieDomain: "example.com", PublicURL: public})
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{rp: rp, now: time.Now()}
	f.c = &passkey.Ceremonies{Store: s, Now: func() time.Time { return f.now }}
	return f
}

func (f *fixture) register(tb testing.TB, a *passkeytest.Authenticator, mayAdd bool) (*passkey.Registered, error) {
	tb.Helper()
	opts, err := f.c.BeginRegistration(context.Background(), f.rp, key, browser)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := a.Create(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return f.c.FinishRegistration(context.Background(), f.rp, key, browser, resp, "key", mayAdd)
}

// answer begins a sign-in and returns a's answer to it.
func (f *fixture) answer(tb testing.TB, a *passkeytest.Authenticator) []byte {
	tb.Helper()
	opts, err := f.c.BeginLogin(context.Background(), f.rp, key, browser)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := a.Get(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

func (f *fixture) login(resp []byte) (*store.WebAuthnCredential, error) {
	return f.c.FinishLogin(context.Background(), f.rp, key, browser, resp)
}

func TestRegisterAndSignIn(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	a := passkeytest.New(origin, "example.com")
	reg, err := f.register(t, a, false)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reg.RecoveryCodes).To(HaveLen(passkey.RecoveryCodeCount), "the first key comes with recovery codes")
	g.Expect(passkey.HardwareBound(&reg.Credential)).To(BeTrue())

	cred, err := f.login(f.answer(t, a))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cred.SignCount).To(Equal(uint32(1)))

	second := passkeytest.New(origin, "example.com")
	second.BackupEligible = true
	_, err = f.register(t, second, false)
	g.Expect(err).To(MatchError(passkey.ErrAlreadyEnrolled), "a first factor alone adds no key")
	reg, err = f.register(t, second, true)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reg.RecoveryCodes).To(BeEmpty(), "codes are shown once, at the first key")
	g.Expect(passkey.HardwareBound(&reg.Credential)).To(BeFalse(), "a passkey that may be synced")
	_, err = f.login(f.answer(t, second))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestSignInRefusals(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	a := passkeytest.New(origin, "example.com")
	_, err := f.register(t, a, false)
	g.Expect(err).NotTo(HaveOccurred())

	resp := f.answer(t, a)
	_, err = f.login(resp)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = f.login(resp)
	g.Expect(err).To(MatchError(store.ErrNoCeremony), "an answer is accepted once")

	resp = f.answer(t, a)
	_, err = f.c.FinishLogin(context.Background(), f.rp, key, []byte("another browser"), resp)
	g.Expect(err).To(MatchError(store.ErrNoCeremony), "the ceremony belongs to the browser that began it")

	f.now = f.now.Add(6 * time.Minute)
	_, err = f.login(resp)
	g.Expect(err).To(MatchError(store.ErrNoCeremony), "expired")

	a.Counter = 0
	cred, err := f.login(f.answer(t, a))
	g.Expect(err).To(MatchError(store.ErrCounterRegressed), "a counter reset, as by a clone")
	g.Expect(cred).NotTo(BeNil())

	a.Counter = 10
	wrongRP := *a
	wrongRP.RPID = "evil.example.org"
	var refused *passkey.RefusedError
	_, err = f.login(f.answer(t, &wrongRP))
	g.Expect(errors.As(err, &refused)).To(BeTrue(), "an answer for another RP ID: %v", err)

	wrongOrigin := *a
	wrongOrigin.Origin = "https://evil.example.org"
	_, err = f.login(f.answer(t, &wrongOrigin))
	g.Expect(errors.As(err, &refused)).To(BeTrue(), "an answer from another origin: %v", err)

	_, err = f.login(f.answer(t, passkeytest.New(origin, "example.com")))
	g.Expect(err).To(MatchError(store.ErrUnknownCredential))

	_, err = f.login([]byte(`{"id":"x"}`))
	g.Expect(err).To(MatchError(passkey.ErrBadResponse))

	_, err = f.login(f.answer(t, a))
	g.Expect(err).NotTo(HaveOccurred(), "the key itself still works")
}

func TestAllowedAAGUIDsRefuseKeysThatAttestNothing(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, &v1alpha1.WebAuthnSpec{Attestation: v1alpha1.AttestationDirect, AllowedAAGUIDs: []string{"cb69481e-8ff7-4039-93ec-0a2729a154a8"}})
	_, err := f.register(t, passkeytest.New(origin, "example.com"), false)
	g.Expect(err).To(MatchError(passkey.ErrNotAllowedModel))
}

func TestBeginLoginWithoutKey(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, nil)
	_, err := f.c.BeginLogin(context.Background(), f.rp, key, browser)
	g.Expect(err).To(MatchError(passkey.ErrNotEnrolled))
}

// BenchmarkRegistration is one registration on the server: options, the
// stored ceremony, verification and the stored key (bbolt store).
func BenchmarkRegistration(b *testing.B) {
	f := newFixture(b, nil)
	for b.Loop() {
		b.StopTimer()
		f.c.Store = mustStore(b)
		a := passkeytest.New(origin, "example.com")
		b.StartTimer()
		opts, err := f.c.BeginRegistration(context.Background(), f.rp, key, browser)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		resp, err := a.Create(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := f.c.FinishRegistration(context.Background(), f.rp, key, browser, resp, "key", false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignIn is one sign-in on the server: options, the stored
// ceremony, the signature check and the counter's compare-and-swap.
func BenchmarkSignIn(b *testing.B) {
	f := newFixture(b, nil)
	a := passkeytest.New(origin, "example.com")
	if _, err := f.register(b, a, false); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		opts, err := f.c.BeginLogin(context.Background(), f.rp, key, browser)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		resp, err := a.Get(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := f.login(resp); err != nil {
			b.Fatal(err)
		}
	}
}

func mustStore(tb testing.TB) store.Store {
	s, err := store.NewFileStore(filepath.Join(tb.TempDir(), "store.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
