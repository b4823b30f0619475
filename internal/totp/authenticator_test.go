package totp_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	env, c, err := storetest.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

// clock is the injected time, moved by the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	a     *totp.Authenticator
	store store.Store
	clock *clock
	kr    *atomic.Pointer[keyring.Keyring]
	data  *keyring.Data
}

// start is the middle of a 30 s step, so that codes of the previous and
// next steps are both within a skew of 1.
var start = time.Unix(1_800_000_015, 0).UTC()

func newFixture(t *testing.T, s store.Store) *fixture {
	t.Helper()
	data, err := keyring.Generate(start)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(*data)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: s, clock: &clock{t: start}, kr: &atomic.Pointer[keyring.Keyring]{}, data: data}
	f.kr.Store(kr)
	f.a = &totp.Authenticator{Store: s, Keyring: f.kr.Load, Now: f.clock.Now}
	return f
}

func fileStore(t *testing.T) *store.FileStore {
	t.Helper()
	s, err := store.NewFileStore(filepath.Join(t.TempDir(), "enrollments.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var namespaces atomic.Int64

// secretStores returns n stores of one fresh namespace, each with its own
// client, as n replicas.
func secretStores(t *testing.T, n int) []store.Store {
	t.Helper()
	ns := fmt.Sprintf("totp-test-%d", namespaces.Add(1))
	stores := make([]store.Store, n)
	for i := range stores {
		c, err := client.New(rest.CopyConfig(cfg), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				t.Fatal(err)
			}
		}
		stores[i] = store.NewSecretStore(c, ns)
	}
	return stores
}

func newFileFixture(t *testing.T) *fixture { return newFixture(t, fileStore(t)) }

// code is what the user's app shows now.
func (f *fixture) code(t *testing.T, p totp.Params, secret []byte) string {
	t.Helper()
	c, err := totp.Code(p, secret, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrol scans the QR code in browser and types the first code, as a user
// would.
func (f *fixture) enrol(t *testing.T, k store.Key, p totp.Params) (secret []byte, recovery []string) {
	t.Helper()
	g := NewWithT(t)
	_, b32, err := f.a.BeginEnrollment(context.Background(), k, browser, p)
	g.Expect(err).NotTo(HaveOccurred())
	secret = decodeSecret(t, b32)
	recovery, err = f.a.ConfirmEnrollment(context.Background(), k, browser, f.code(t, p, secret))
	g.Expect(err).NotTo(HaveOccurred())
	return secret, recovery
}

func decodeSecret(t *testing.T, b32 string) []byte {
	t.Helper()
	secret, err := totp.DecodeSecret(b32)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func (f *fixture) record(t *testing.T, k store.Key) *store.Enrollment {
	t.Helper()
	e, err := f.store.Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var params = totp.Params{Issuer: "Example Corp", Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1}

const (
	ana      = "ana@example.com"
	provider = "apps/google-authenticator"
)

// anaKey is ana's enrolment for the provider of most tests.
var anaKey = store.Key{Provider: provider, User: ana}

// browser is the identifier of ana's browser in most tests.
var browser = []byte("browser-1")

func TestBeginEnrollmentShowsTheSamePendingSecretUntilConfirmed(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()

	uri, b32, err := f.a.BeginEnrollment(ctx, anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	secret := decodeSecret(t, b32)
	g.Expect(secret).To(HaveLen(20))
	g.Expect(uri).To(Equal(totp.URI(params, anaKey.User, secret)))

	again, b32Again, err := f.a.BeginEnrollment(ctx, anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(uri), "a reload shows the same QR code")
	g.Expect(b32Again).To(Equal(b32))

	e := f.record(t, anaKey)
	g.Expect(e.TOTP).To(BeNil())
	g.Expect(e.Pending).To(HaveLen(1))
	g.Expect(e.Pending[0].SealedSecret).NotTo(ContainSubstring(string(secret)), "the secret is stored sealed")
	g.Expect(e.Pending[0].Created).To(BeTemporally("==", start))
	g.Expect(e.Pending[0].Browser).NotTo(BeEmpty())
	g.Expect(e.Pending[0].Browser).NotTo(ContainSubstring(string(browser)), "the browser id is stored hashed")
	enrolled, err := f.a.Status(ctx, anaKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(enrolled).To(BeFalse())

	p8 := params
	p8.Digits = 8
	p8.Algorithm = "SHA256"
	_, b32New, err := f.a.BeginEnrollment(ctx, anaKey, browser, p8)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b32New).NotTo(Equal(b32), "new provider parameters make a new secret")
	g.Expect(decodeSecret(t, b32New)).To(HaveLen(32))
	g.Expect(f.record(t, anaKey).Pending).To(HaveLen(1), "the new secret replaces the old one")
}

func TestBeginEnrollmentRefusesInvalidParams(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	bad := params
	bad.Digits = 4
	_, _, err := f.a.BeginEnrollment(context.Background(), anaKey, browser, bad)
	g.Expect(err).To(MatchError(ContainSubstring("digits")))
	g.Expect(f.record(t, anaKey).Pending).To(BeEmpty())
}

func TestConfirmEnrollmentTakesTheFirstCodeAndMakesRecoveryCodes(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	_, b32, err := f.a.BeginEnrollment(ctx, anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	secret := decodeSecret(t, b32)

	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browser, wrong(f.code(t, params, secret)))
	g.Expect(err).To(MatchError(totp.ErrInvalidCode))
	g.Expect(f.record(t, anaKey).TOTP).To(BeNil(), "a wrong code confirms nothing")
	g.Expect(f.record(t, anaKey).FailedAttempts).To(HaveLen(1), "and counts as a failure")

	code := f.code(t, params, secret)
	recovery, err := f.a.ConfirmEnrollment(ctx, anaKey, browser, code[:3]+" "+code[3:])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(recovery).To(HaveLen(10))

	e := f.record(t, anaKey)
	g.Expect(e.Pending).To(BeEmpty())
	g.Expect(e.TOTP).NotTo(BeNil())
	g.Expect(e.TOTP.LastStep).To(Equal(params.Step(start)), "the replay guard starts at the confirming code")
	g.Expect(e.TOTP.Digits).To(Equal(6))
	g.Expect(e.TOTP.PeriodSeconds).To(Equal(30))
	g.Expect(e.TOTP.Algorithm).To(Equal("SHA1"))
	g.Expect(e.TOTP.Skew).To(Equal(1))
	g.Expect(e.RecoveryCodeHashes).To(HaveLen(10))
	g.Expect(e.FailedAttempts).To(BeEmpty(), "success clears failures")
	enrolled, err := f.a.Status(ctx, anaKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(enrolled).To(BeTrue())

	g.Expect(f.a.VerifyCode(ctx, anaKey, code)).To(MatchError(totp.ErrReusedCode), "the confirming code is spent")

	_, _, err = f.a.BeginEnrollment(ctx, anaKey, browser, params)
	g.Expect(err).To(MatchError(totp.ErrAlreadyEnrolled))
	_, err = f.a.ConfirmEnrollment(ctx, anaKey, browser, code)
	g.Expect(err).To(MatchError(totp.ErrAlreadyEnrolled))
}

func TestConfirmEnrollmentWithoutPendingSecret(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	_, err := f.a.ConfirmEnrollment(context.Background(), anaKey, browser, "123456")
	g.Expect(err).To(MatchError(totp.ErrNoPending))
}

func TestVerifyCodeOfAUserNotEnrolled(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	g.Expect(f.a.VerifyCode(context.Background(), anaKey, "123456")).To(MatchError(totp.ErrNotEnrolled))
	g.Expect(f.a.VerifyRecoveryCode(context.Background(), anaKey, "abcd-efgh-jk")).To(MatchError(totp.ErrNotEnrolled))
	_, _, err := f.a.BeginEnrollment(context.Background(), anaKey, browser, params)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.a.VerifyCode(context.Background(), anaKey, "123456")).To(MatchError(totp.ErrNotEnrolled), "a pending secret is not an enrolment")
}

func TestVerifyCodeAcceptsEachTimeStepOnce(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)

	f.clock.Add(30 * time.Second)
	code := f.code(t, params, secret)
	g.Expect(f.a.VerifyCode(ctx, anaKey, code)).To(Succeed())
	g.Expect(f.a.VerifyCode(ctx, anaKey, code)).To(MatchError(totp.ErrReusedCode), "replay")
	g.Expect(f.record(t, anaKey).TOTP.LastStep).To(Equal(params.Step(f.clock.Now())))

	previous, err := totp.Code(params, secret, f.clock.Now().Add(-30*time.Second))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.a.VerifyCode(ctx, anaKey, previous)).To(MatchError(totp.ErrReusedCode), "a step before the last accepted one")

	next, err := totp.Code(params, secret, f.clock.Now().Add(30*time.Second))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.a.VerifyCode(ctx, anaKey, next)).To(Succeed(), "a fast clock on the phone, within the skew")

	f.clock.Add(90 * time.Second)
	g.Expect(f.a.VerifyCode(ctx, anaKey, wrong(f.code(t, params, secret)))).To(MatchError(totp.ErrInvalidCode))
	g.Expect(f.a.VerifyCode(ctx, anaKey, "abcdef")).To(MatchError(totp.ErrInvalidCode))
}

func TestReusedCodeCountsAsAFailure(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	secret, _ := f.enrol(t, anaKey, params)
	code := f.code(t, params, secret)
	g.Expect(f.a.VerifyCode(ctx, anaKey, code)).To(MatchError(totp.ErrReusedCode))
	g.Expect(f.record(t, anaKey).FailedAttempts).To(Equal([]time.Time{start}))
}

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

func TestRecoveryCodesWorkOnceEach(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	_, recovery := f.enrol(t, anaKey, params)
	for i, code := range recovery {
		g.Expect(f.a.VerifyRecoveryCode(ctx, anaKey, code)).To(Succeed(), "code %d", i)
		g.Expect(f.a.VerifyRecoveryCode(ctx, anaKey, code)).To(MatchError(totp.ErrInvalidCode), "code %d again", i)
		g.Expect(f.record(t, anaKey).RecoveryCodeHashes).To(HaveLen(len(recovery) - i - 1))
	}
	g.Expect(f.record(t, anaKey).TOTP).NotTo(BeNil(), "the authenticator app stays enrolled")
	g.Expect(f.a.VerifyRecoveryCode(ctx, anaKey, "not a code")).To(MatchError(totp.ErrInvalidCode))
}

func TestResetAllowsEnrollingAgain(t *testing.T) {
	g := NewWithT(t)
	f := newFileFixture(t)
	ctx := context.Background()
	first, _ := f.enrol(t, anaKey, params)
	g.Expect(f.a.Reset(ctx, anaKey)).To(Succeed())
	enrolled, err := f.a.Status(ctx, anaKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(enrolled).To(BeFalse())
	g.Expect(f.record(t, anaKey).RecoveryCodeHashes).To(BeEmpty())
	f.clock.Add(30 * time.Second)
	second, _ := f.enrol(t, anaKey, params)
	g.Expect(second).NotTo(Equal(first))
}

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

// wrong returns another code of the same length.
func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}
