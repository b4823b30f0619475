package totp_test

import (
	"context"
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

// wrong returns another code of the same length.
func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}
