package totp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// Concurrent requests: a code sent many times at once is accepted once.

// TestSameCodeFromTenRequestsIsAcceptedOnce sends one code ten times at once,
// spread over the replicas of each store. One is accepted; each other one is
// a failure (reused), and the fifth failure locks the user.
func TestSameCodeFromTenRequestsIsAcceptedOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stores func(t *testing.T) []store.Store
	}{
		{name: "file store", stores: func(t *testing.T) []store.Store { return []store.Store{fileStore(t)} }},
		{name: "Secret store, 3 replicas", stores: func(t *testing.T) []store.Store { return secretStores(t, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stores := tc.stores(t)
			f := newFixture(t, stores[0])
			secret, _ := f.enrol(t, anaKey, params)
			f.clock.Add(30 * time.Second)
			code := f.code(t, params, secret)

			errs := make([]error, 10)
			var wg sync.WaitGroup
			begin := make(chan struct{})
			for i := range errs {
				replica := *f.a // same keyring and clock, its own store client
				replica.Store = stores[i%len(stores)]
				wg.Go(func() {
					<-begin
					errs[i] = replica.VerifyCode(context.Background(), anaKey, code)
				})
			}
			close(begin)
			wg.Wait()

			accepted, reused, locked := 0, 0, 0
			for _, err := range errs {
				var le *totp.LockedError
				switch {
				case err == nil:
					accepted++
				case errors.Is(err, totp.ErrReusedCode):
					reused++
				case errors.As(err, &le):
					locked++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			g.Expect(accepted).To(Equal(1))
			g.Expect(reused).To(Equal(4))
			g.Expect(locked).To(Equal(5))
			g.Expect(f.record(t, anaKey).TOTP.LastStep).To(Equal(params.Step(f.clock.Now())))
		})
	}
}

func TestSameFirstCodeFromTenRequestsConfirmsOnce(t *testing.T) {
	g := NewWithT(t)
	stores := secretStores(t, 3)
	f := newFixture(t, stores[0])
	_, b32, err := f.a.BeginEnrollment(context.Background(), anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	code := f.code(t, params, decodeSecret(t, b32))

	type result struct {
		codes []string
		err   error
	}
	results := make([]result, 10)
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i := range results {
		a := *f.a
		a.Store = stores[i%len(stores)]
		wg.Go(func() {
			<-begin
			codes, err := a.ConfirmEnrollment(context.Background(), anaKey, browser, code)
			results[i] = result{codes, err}
		})
	}
	close(begin)
	wg.Wait()

	var confirmed []string
	for _, r := range results {
		if r.err == nil {
			g.Expect(confirmed).To(BeNil(), "confirmed twice")
			confirmed = r.codes
			continue
		}
		g.Expect(r.err).To(MatchError(totp.ErrAlreadyEnrolled))
	}
	g.Expect(confirmed).To(HaveLen(10))
	e := f.record(t, anaKey)
	for _, c := range confirmed {
		_, ok := totp.MatchRecoveryCode(e.RecoveryCodeHashes, c)
		g.Expect(ok).To(BeTrue(), "the stored hashes are those of the codes shown")
	}
}
