package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// Backend opens stores for the conformance suite.
type Backend struct {
	Name string
	// Open returns n clients of one fresh, empty backend. Separate clients
	// stand for separate replicas; a backend that only one process can open
	// returns the same store n times.
	Open func(t *testing.T, n int) []store.Store
	// WriteLegacy writes raw as the record of user in the form stores used
	// before enrolments had a provider (keyed by the user alone).
	WriteLegacy func(t *testing.T, s store.Store, user string, raw []byte)
}

// Provider is the provider of the suite's keys.
const Provider = "apps/google-authenticator"

// Key is user's key for Provider.
func Key(user string) store.Key { return store.Key{Provider: Provider, User: user} }

// LegacyRecord is a record as stores wrote it before enrolments had a
// provider: a confirmed secret, recovery codes, a lockout, a Duo username
// and an unbound pending secret.
const LegacyRecord = `{"user":"gil@example.com","totp":{"sealedSecret":"AAEC","digits":6,"periodSeconds":30,"algorithm":"SHA1","skew":1,"lastStep":59000000,"created":"2026-11-01T10:00:00Z"},` +
	`"pendingTOTP":{"sealedSecret":"cGVuZGluZw==","digits":6,"periodSeconds":30,"algorithm":"SHA1","skew":1,"lastStep":0,"created":"2026-11-02T10:00:00Z"},` +
	`"recoveryCodeHashes":["h1","h2"],"failedAttempts":["2026-11-27T09:59:00Z"],"lockedUntil":"2026-11-27T10:05:00Z","duoUsername":"gil"}`

// ErrReused is what the suite's accept-a-step function returns for a step
// already accepted.
var ErrReused = errors.New("time step already accepted")

// AcceptStep is the replay guard in miniature: it accepts step once.
func AcceptStep(step int64) func(e *store.Enrollment) error {
	return func(e *store.Enrollment) error {
		if e.TOTP == nil {
			e.TOTP = &store.TOTPEnrollment{Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1"}
		}
		if e.TOTP.LastStep >= step {
			return ErrReused
		}
		e.TOTP.LastStep = step
		return nil
	}
}

// RunConformance checks that a Store keeps the contract the challenge server
// relies on.
func RunConformance(t *testing.T, b Backend) {
	runWebAuthn(t, b)
	runBrowsers(t, b)
	t.Run("get of an unknown user is an empty enrollment", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		e, err := s.Get(context.Background(), Key("nobody@example.com"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e).To(Equal(&store.Enrollment{User: "nobody@example.com", Provider: Provider}))
	})

	t.Run("update then get returns every field", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		user := "ana@example.com"
		now := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
		want := store.Enrollment{
			User:     user,
			Provider: Provider,
			TOTP: &store.TOTPEnrollment{
				SealedSecret: []byte{0, 1, 2, 255}, Digits: 8, PeriodSeconds: 60,
				Algorithm: "SHA256", Skew: 2, LastStep: 59_000_000, Created: now,
			},
			Pending:            []store.TOTPEnrollment{{SealedSecret: []byte("pending"), Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1", Created: now, Browser: []byte{7, 7}}},
			Lockouts:           2,
			RecoveryCodeHashes: []string{"h1", "h2"},
			FailedAttempts:     []time.Time{now.Add(-time.Minute), now},
			LockedUntil:        now.Add(5 * time.Minute),
			DuoUsername:        "ana",
			DuoPushesUsed:      []store.UsedDuoPush{{TxHash: "h3", Until: now.Add(10 * time.Minute)}},
		}
		got, err := s.Update(ctx, Key(user), func(e *store.Enrollment) error {
			g.Expect(e).To(Equal(&store.Enrollment{User: user, Provider: Provider}), "fn of a new user sees an empty record")
			*e = want
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*got).To(Equal(want))

		read, err := s.Get(ctx, Key(user))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read).To(Equal(&want))

		other, err := s.Get(ctx, Key("bob@example.com"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(other).To(Equal(&store.Enrollment{User: "bob@example.com", Provider: Provider}), "users are separate")
	})

	t.Run("fn returning an error writes nothing and returns that error", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		user := "carl@example.com"
		_, err := s.Update(ctx, Key(user), func(e *store.Enrollment) error {
			e.DuoUsername = "carl"
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())

		boom := errors.New("boom")
		seen, err := s.Update(ctx, Key(user), func(e *store.Enrollment) error {
			e.DuoUsername = "changed"
			e.RecoveryCodeHashes = []string{"x"}
			return boom
		})
		g.Expect(err).To(MatchError(boom))
		g.Expect(seen.DuoUsername).To(Equal("changed"), "the enrollment fn saw is returned")

		read, err := s.Get(ctx, Key(user))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read).To(Equal(&store.Enrollment{User: user, Provider: Provider, DuoUsername: "carl"}))

		_, err = s.Update(ctx, Key("dora@example.com"), func(e *store.Enrollment) error {
			e.DuoUsername = "dora"
			return boom
		})
		g.Expect(err).To(MatchError(boom))
		read, err = s.Get(ctx, Key("dora@example.com"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read).To(Equal(&store.Enrollment{User: "dora@example.com", Provider: Provider}), "nothing was created")
	})

	t.Run("the same user's records of two providers are separate", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		other := store.Key{Provider: "team-b/totp", User: "hana@example.com"}
		_, err := s.Update(ctx, Key(other.User), AcceptStep(10))
		g.Expect(err).NotTo(HaveOccurred())
		e, err := s.Get(ctx, other)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e).To(Equal(&store.Enrollment{User: other.User, Provider: other.Provider}), "another provider sees nothing of it")
		_, err = s.Update(ctx, other, AcceptStep(5))
		g.Expect(err).NotTo(HaveOccurred(), "and its own replay guard starts afresh")
		e, err = s.Get(ctx, Key(other.User))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.TOTP.LastStep).To(BeEquivalentTo(10))
	})

	t.Run("a record from before enrolments had a provider is copied for each provider", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		user := "gil@example.com"
		b.WriteLegacy(t, s, user, []byte(LegacyRecord))
		locked := time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC)
		want := &store.Enrollment{
			User: user, Provider: Provider,
			TOTP: &store.TOTPEnrollment{SealedSecret: []byte{0, 1, 2}, Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1", Skew: 1,
				LastStep: 59_000_000, Created: time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)},
			RecoveryCodeHashes: []string{"h1", "h2"},
			FailedAttempts:     []time.Time{time.Date(2026, 11, 27, 9, 59, 0, 0, time.UTC)},
			LockedUntil:        locked,
			DuoUsername:        "gil",
		}
		e, err := s.Get(ctx, Key(user))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e).To(Equal(want), "everything but the unbound pending secret is kept")

		_, err = s.Update(ctx, Key(user), func(e *store.Enrollment) error {
			g.Expect(e).To(Equal(want))
			e.RecoveryCodeHashes = e.RecoveryCodeHashes[1:]
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())
		e, err = s.Get(ctx, Key(user))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.RecoveryCodeHashes).To(Equal([]string{"h2"}), "the copy is written under the new key")

		other := store.Key{Provider: "billing/totp", User: user}
		e, err = s.Get(ctx, other)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.TOTP).To(Equal(want.TOTP), "another provider starts from its own copy")
		g.Expect(e.RecoveryCodeHashes).To(Equal([]string{"h1", "h2"}))

		existed := store.Key{Provider: "team-c/totp", User: user, ProviderCreated: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}
		e, err = s.Get(ctx, existed)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.TOTP).To(Equal(want.TOTP), "a provider that existed when the user enrolled gets a copy")

		later := store.Key{Provider: "team-d/totp", User: user, ProviderCreated: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
		e, err = s.Get(ctx, later)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e).To(Equal(&store.Enrollment{User: user, Provider: later.Provider}), "a provider made after the enrolment never inherits it")
	})

	t.Run("invalid user ids are refused", func(t *testing.T) {
		s := b.Open(t, 1)[0]
		for name, user := range map[string]string{
			"empty":    "",
			"too long": string(make([]byte, store.MaxUserLength+1)),
			"not utf8": "\xff\xfe",
		} {
			t.Run(name, func(t *testing.T) {
				g := NewWithT(t)
				_, err := s.Get(context.Background(), Key(user))
				g.Expect(err).To(MatchError(store.ErrInvalidUser))
				_, err = s.Get(context.Background(), store.Key{Provider: "no-namespace", User: "ana"})
				g.Expect(err).To(MatchError(store.ErrInvalidUser))
				_, err = s.Update(context.Background(), Key(user), func(*store.Enrollment) error { return nil })
				g.Expect(err).To(MatchError(store.ErrInvalidUser))
			})
		}
	})

	for _, tc := range []struct {
		name     string
		existing bool
	}{
		{name: "same time step from 10 writers is accepted once, new user", existing: false},
		{name: "same time step from 10 writers is accepted once, enrolled user", existing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stores := b.Open(t, 3)
			ctx := context.Background()
			user := "eve@example.com"
			const step = 59_000_000
			if tc.existing {
				_, err := stores[0].Update(ctx, Key(user), AcceptStep(step-1))
				g.Expect(err).NotTo(HaveOccurred())
			}
			errs := race(10, func(i int) error {
				_, err := stores[i%len(stores)].Update(ctx, Key(user), AcceptStep(step))
				return err
			})
			accepted, reused := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, ErrReused):
					reused++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			g.Expect(accepted).To(Equal(1))
			g.Expect(reused).To(Equal(9))
			e, err := stores[1%len(stores)].Get(ctx, Key(user))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(e.TOTP.LastStep).To(BeEquivalentTo(step))
		})
	}

	t.Run("concurrent updates from 10 writers are all kept", func(t *testing.T) {
		g := NewWithT(t)
		stores := b.Open(t, 3)
		ctx := context.Background()
		user := "finn@example.com"
		errs := race(10, func(i int) error {
			_, err := stores[i%len(stores)].Update(ctx, Key(user), func(e *store.Enrollment) error {
				e.RecoveryCodeHashes = append(e.RecoveryCodeHashes, fmt.Sprintf("writer-%d", i))
				return nil
			})
			return err
		})
		for _, err := range errs {
			g.Expect(err).NotTo(HaveOccurred())
		}
		e, err := stores[0].Get(ctx, Key(user))
		g.Expect(err).NotTo(HaveOccurred())
		want := make([]string, 10)
		for i := range want {
			want[i] = fmt.Sprintf("writer-%d", i)
		}
		g.Expect(e.RecoveryCodeHashes).To(ConsistOf(want), "no update is lost")
	})
}

// race runs n calls of f at once and returns their errors by index.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}
