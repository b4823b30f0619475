package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/webhook/store"
)

// Backend opens stores for the conformance suite.
type Backend struct {
	Name string
	// Open returns n clients of one fresh, empty backend. Separate clients
	// stand for separate replicas; a backend that only one process can open
	// returns the same store n times.
	Open func(t *testing.T, n int) []store.Store
}

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
	t.Run("get of an unknown user is an empty enrollment", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		e, err := s.Get(context.Background(), "nobody@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e).To(Equal(&store.Enrollment{User: "nobody@example.com"}))
	})

	t.Run("update then get returns every field", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		user := "ana@example.com"
		now := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
		want := store.Enrollment{
			User: user,
			TOTP: &store.TOTPEnrollment{
				SealedSecret: []byte{0, 1, 2, 255}, Digits: 8, PeriodSeconds: 60,
				Algorithm: "SHA256", Skew: 2, LastStep: 59_000_000, Created: now,
			},
			PendingTOTP:        &store.TOTPEnrollment{SealedSecret: []byte("pending"), Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1", Created: now},
			RecoveryCodeHashes: []string{"h1", "h2"},
			FailedAttempts:     []time.Time{now.Add(-time.Minute), now},
			LockedUntil:        now.Add(5 * time.Minute),
			DuoUsername:        "ana",
		}
		got, err := s.Update(ctx, user, func(e *store.Enrollment) error {
			g.Expect(e).To(Equal(&store.Enrollment{User: user}), "fn of a new user sees an empty record")
			*e = want
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(*got).To(Equal(want))

		read, err := s.Get(ctx, user)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read).To(Equal(&want))

		other, err := s.Get(ctx, "bob@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(other).To(Equal(&store.Enrollment{User: "bob@example.com"}), "users are separate")
	})

	t.Run("fn returning an error writes nothing and returns that error", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		user := "carl@example.com"
		_, err := s.Update(ctx, user, func(e *store.Enrollment) error {
			e.DuoUsername = "carl"
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())

		boom := errors.New("boom")
		seen, err := s.Update(ctx, user, func(e *store.Enrollment) error {
			e.DuoUsername = "changed"
			e.RecoveryCodeHashes = []string{"x"}
			return boom
		})
		g.Expect(err).To(MatchError(boom))
		g.Expect(seen.DuoUsername).To(Equal("changed"), "the enrollment fn saw is returned")

		read, err := s.Get(ctx, user)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read).To(Equal(&store.Enrollment{User: user, DuoUsername: "carl"}))

		_, err = s.Update(ctx, "dora@example.com", func(e *store.Enrollment) error {
			e.DuoUsername = "dora"
			return boom
		})
		g.Expect(err).To(MatchError(boom))
		read, err = s.Get(ctx, "dora@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read).To(Equal(&store.Enrollment{User: "dora@example.com"}), "nothing was created")
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
				_, err := s.Get(context.Background(), user)
				g.Expect(err).To(MatchError(store.ErrInvalidUser))
				_, err = s.Update(context.Background(), user, func(*store.Enrollment) error { return nil })
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
				_, err := stores[0].Update(ctx, user, AcceptStep(step-1))
				g.Expect(err).NotTo(HaveOccurred())
			}
			errs := race(10, func(i int) error {
				_, err := stores[i%len(stores)].Update(ctx, user, AcceptStep(step))
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
			e, err := stores[1%len(stores)].Get(ctx, user)
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
			_, err := stores[i%len(stores)].Update(ctx, user, func(e *store.Enrollment) error {
				e.RecoveryCodeHashes = append(e.RecoveryCodeHashes, fmt.Sprintf("writer-%d", i))
				return nil
			})
			return err
		})
		for _, err := range errs {
			g.Expect(err).NotTo(HaveOccurred())
		}
		e, err := stores[0].Get(ctx, user)
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
