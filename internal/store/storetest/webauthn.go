package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// webAuthnTime is the suite's clock for ceremonies.
var webAuthnTime = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// withKey is a record holding one key (id 1, counter counter) and one
// sign-in ceremony per browser of browsers, all with challenge "ch".
func withKey(counter uint32, browsers ...string) func(e *store.Enrollment) error {
	return func(e *store.Enrollment) error {
		e.WebAuthn = &store.WebAuthnEnrollment{UserHandle: []byte("handle")}
		if err := e.WebAuthn.AddCredential(store.WebAuthnCredential{ID: []byte{1}, PublicKey: []byte{2}, SignCount: counter, Name: "key"}); err != nil {
			return err
		}
		for _, b := range browsers {
			e.WebAuthn.AddCeremony(store.WebAuthnCeremony{Kind: store.CeremonyLogin, Challenge: "ch", Browser: []byte(b),
				Expires: webAuthnTime.Add(time.Minute), Session: []byte("{}")}, webAuthnTime)
		}
		return nil
	}
}

// assertOnce is a sign-in finishing inside the compare-and-swap, as
// passkey.Ceremonies does it.
func assertOnce(browser string, counter uint32) func(e *store.Enrollment) error {
	return func(e *store.Enrollment) error {
		if err := e.WebAuthn.TakeCeremony(store.CeremonyLogin, "ch", []byte(browser), webAuthnTime); err != nil {
			return err
		}
		_, err := e.WebAuthn.AcceptAssertion([]byte{1}, counter, true, false, webAuthnTime)
		return err
	}
}

func runWebAuthn(t *testing.T, b Backend) {
	t.Run("webauthn credentials keep every field", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		cred := store.WebAuthnCredential{
			ID: []byte{1, 2, 3}, PublicKey: []byte{4, 5, 6}, SignCount: 7, AAGUID: make([]byte, 16),
			Transports: []string{"usb", "internal"}, AttestationType: "none", AttestationFormat: "none",
			UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true,
			Name: "YubiKey 5", Created: webAuthnTime, LastUsed: webAuthnTime.Add(time.Hour),
		}
		want := &store.WebAuthnEnrollment{UserHandle: []byte("handle"), Credentials: []store.WebAuthnCredential{cred},
			Ceremonies: []store.WebAuthnCeremony{{Kind: store.CeremonyRegister, Challenge: "c", Browser: []byte{9}, Expires: webAuthnTime, Session: []byte(`{"challenge":"c"}`)}}}
		_, err := s.Update(ctx, Key("wa@example.com"), func(e *store.Enrollment) error { e.WebAuthn = want; return nil })
		g.Expect(err).NotTo(HaveOccurred())
		read, err := s.Get(ctx, Key("wa@example.com"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read.WebAuthn).To(Equal(want))
		g.Expect(read.HasCredentials()).To(BeTrue())
	})

	t.Run("a webauthn ceremony is finished once across replicas", func(t *testing.T) {
		g := NewWithT(t)
		replicas := b.Open(t, 2)
		ctx := context.Background()
		k := Key("once@example.com")
		_, err := replicas[0].Update(ctx, k, withKey(0, "browser"))
		g.Expect(err).NotTo(HaveOccurred())

		var wg sync.WaitGroup
		errs := make([]error, 2*len(replicas))
		for i := range errs {
			wg.Go(func() {
				// Each replica tries the same assertion, with a counter the
				// key never used: only the ceremony's single use decides.
				_, errs[i] = replicas[i%len(replicas)].Update(ctx, k, assertOnce("browser", 0))
			})
		}
		wg.Wait()
		accepted := 0
		for _, err := range errs {
			if err == nil {
				accepted++
				continue
			}
			g.Expect(err).To(MatchError(store.ErrNoCeremony))
		}
		g.Expect(accepted).To(Equal(1))
	})

	t.Run("a webauthn counter that does not grow is refused across replicas", func(t *testing.T) {
		g := NewWithT(t)
		replicas := b.Open(t, 2)
		ctx := context.Background()
		k := Key("counter@example.com")
		_, err := replicas[0].Update(ctx, k, withKey(5, "a", "b", "c", "d"))
		g.Expect(err).NotTo(HaveOccurred())

		_, err = replicas[0].Update(ctx, k, assertOnce("a", 6))
		g.Expect(err).NotTo(HaveOccurred())
		// The other replica read nothing of that: the compare-and-swap
		// still refuses a counter that is not above 6.
		_, err = replicas[1].Update(ctx, k, assertOnce("b", 6))
		g.Expect(errors.Is(err, store.ErrCounterRegressed)).To(BeTrue(), "same counter: %v", err)
		_, err = replicas[1].Update(ctx, k, assertOnce("c", 2))
		g.Expect(errors.Is(err, store.ErrCounterRegressed)).To(BeTrue(), "lower counter: %v", err)
		_, err = replicas[1].Update(ctx, k, assertOnce("d", 7))
		g.Expect(err).NotTo(HaveOccurred())

		read, err := replicas[0].Get(ctx, k)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read.WebAuthn.Credentials[0].SignCount).To(Equal(uint32(7)))
		g.Expect(read.WebAuthn.Credentials[0].LastUsed).To(Equal(webAuthnTime))
	})

	t.Run("a webauthn ceremony belongs to the browser that began it and expires", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		k := Key("bound@example.com")
		_, err := s.Update(ctx, k, withKey(0, "mine"))
		g.Expect(err).NotTo(HaveOccurred())
		_, err = s.Update(ctx, k, assertOnce("other", 1))
		g.Expect(err).To(MatchError(store.ErrNoCeremony))
		_, err = s.Update(ctx, k, func(e *store.Enrollment) error {
			return e.WebAuthn.TakeCeremony(store.CeremonyLogin, "ch", []byte("mine"), webAuthnTime.Add(time.Minute))
		})
		g.Expect(err).To(MatchError(store.ErrNoCeremony), "expired")
	})
}
