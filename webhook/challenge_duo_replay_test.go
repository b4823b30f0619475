package webhook

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/version"
)

// newDuoReplica starts another challenge server next to f's, as a second
// replica: the same configuration, keyring, enrolment store and clock,
// its own memory.
func newDuoReplica(f *duoFixture) *challengeFixture {
	t := f.t
	t.Helper()
	g := NewWithT(t)
	logs := &syncWriter{w: new(bytes.Buffer)}
	o := f.s.opts
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := *o.Source.(*source.Dir)
	dir.Log = o.Logger
	o.Source = &dir
	s, err := NewServer(o)
	g.Expect(err).NotTo(HaveOccurred())
	reloadConfigDir(s)
	g.Expect(s.config.snapshot().Provider("apps", "duo")).NotTo(BeNil(), "the Duo provider loads; logs:\n%s", logs.w.String())
	replica := *f.challengeFixture
	replica.s, replica.logs = s, logs.w
	return &replica
}

// approvedPush opens the Duo page for b, sends a push and returns the
// waiting page's check form once Duo says the push is approved.
func approvedPush(t *testing.T, b *browser) url.Values {
	t.Helper()
	g := NewWithT(t)
	g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(b.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
	for range duotest.ApprovePolls {
		_, a := b.pollStatus()
		g.Expect(a.State).To(Equal("waiting"))
	}
	_, a := b.pollStatus()
	g.Expect(a.State).To(Equal("done"))
	return b.form(duoPathCheck)
}

// sameBrowserOn is b as it was before it signed in (its CSRF cookie, so
// its sealed push opens) talking to the replica f.
func sameBrowserOn(f *challengeFixture, b *browser, cookies []*http.Cookie) *browser {
	other := f.browser(b.user)
	other.jar.SetCookies(authServerURL, cookies)
	return other
}

func TestDuoApprovedPushIssuesOneSessionAcrossReplicas(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	replicaB := newDuoReplica(f)
	b := f.browser(duotest.UserApprove)
	form := approvedPush(t, b)
	signedOut := b.jar.Cookies(authServerURL)

	// Completed on replica A.
	w := b.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
	g.Expect(cookieNames(w)).To(ContainElement(session.CookieName))

	// The same sealed form, from the same browser signed out, to replica
	// B, which has never seen the push: Duo still says approved, the store
	// says used.
	statusCalls := len(f.duo.RequestsTo("/auth/v2/auth_status"))
	replay := sameBrowserOn(replicaB, b, signedOut)
	w = replay.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusForbidden), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("This push was already used to sign in."))
	g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
	g.Expect(cookieNames(w)).NotTo(ContainElement(session.RememberCookieName))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth_status")).To(HaveLen(statusCalls+1), "replica B asked Duo: only the store knew")
	g.Expect(replicaB.logs.String()).To(ContainSubstring(`"reason":"the push was already used"`))

	fb := &duoFixture{challengeFixture: replicaB, duo: f.duo}
	g.Expect(fb.authFor(replay, duoRD).Code).To(Equal(http.StatusUnauthorized), "no session on B")
	g.Expect(f.authFor(sameBrowserOn(f.challengeFixture, b, signedOut), duoRD).Code).To(Equal(http.StatusUnauthorized))

	// Sent again to B, B refuses it from memory without asking Duo; A
	// refuses it too.
	w = replay.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth_status")).To(HaveLen(statusCalls + 1))
	w = sameBrowserOn(f.challengeFixture, b, signedOut).post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Body.String()).To(ContainSubstring("This push was already used to sign in."))

	// What the store keeps: a hash of the transaction, until the form has
	// expired (and the slack for slower clocks).
	e, err := f.st.Get(t.Context(), store.Key{Provider: "apps/duo", User: duotest.UserApprove})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.DuoPushesUsed).To(HaveLen(1))
	txid := f.duo.RequestsTo("/auth/v2/auth_status")[0].Params.Get("txid")
	g.Expect(e.DuoPushesUsed[0].TxHash).To(Equal(duoTxHash(txid)))
	g.Expect(e.DuoPushesUsed[0].TxHash).NotTo(ContainSubstring(txid))
	g.Expect(e.DuoPushesUsed[0].Until).To(BeTemporally("==", f.clock.Now().Add(duoTxTTL+usedPushSlack)))
}

func TestDuoApprovedPushRacedToTwoReplicasIssuesOneSession(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	replicas := []*challengeFixture{f.challengeFixture, newDuoReplica(f)}
	b := f.browser(duotest.UserApprove)
	form := approvedPush(t, b)
	signedOut := b.jar.Cookies(authServerURL)

	const perReplica = 4
	browsers := make([]*browser, perReplica*len(replicas))
	for i := range browsers {
		browsers[i] = sameBrowserOn(replicas[i%len(replicas)], b, signedOut)
	}
	codes := make([]int, len(browsers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, rb := range browsers {
		wg.Go(func() {
			<-start
			codes[i] = rb.post(challengePath+duoPathCheck, form).Code
		})
	}
	close(start)
	wg.Wait()

	counts := map[int]int{}
	for _, c := range codes {
		counts[c]++
	}
	g.Expect(counts).To(Equal(map[int]int{http.StatusSeeOther: 1, http.StatusForbidden: len(browsers) - 1}), "%v", codes)
	in := 0
	for i, rb := range browsers {
		fr := &duoFixture{challengeFixture: replicas[i%len(replicas)], duo: f.duo}
		if fr.authFor(rb, duoRD).Code == http.StatusOK {
			in++
		}
	}
	g.Expect(in).To(Equal(1), "one session in all")
}

func TestDuoPushFailsClosedWhenTheStoreIsUnavailable(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	b := f.browser(duotest.UserApprove)
	form := approvedPush(t, b)
	g.Expect(f.st.Close()).To(Succeed())

	w := b.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Please try again"))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("5"))
	g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
	g.Expect(f.authFor(b, duoRD).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(f.logs.String()).To(ContainSubstring(store.ErrUnavailable.Error()))
}

func TestDuoPushRefusedWhileTheUsersUsedPushesAreAtTheirBound(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	k := store.Key{Provider: "apps/duo", User: duotest.UserApprove}
	until := f.clock.Now().Add(3 * time.Minute)
	_, err := f.st.Update(t.Context(), k, func(e *store.Enrollment) error {
		for i := range maxUsedPushes {
			e.DuoPushesUsed = append(e.DuoPushesUsed, store.UsedDuoPush{TxHash: strconv.Itoa(i), Until: until})
		}
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	b := f.browser(duotest.UserApprove)
	form := approvedPush(t, b)

	w := b.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Wait a few minutes, then send a new push."))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("180"))
	g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
	g.Expect(f.authFor(b, duoRD).Code).To(Equal(http.StatusUnauthorized))
	e, err := f.st.Get(t.Context(), k)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.DuoPushesUsed).To(HaveLen(maxUsedPushes), "nothing written")
}

func TestDuoUsedPushesAreRecordedOncePrunedAndBounded(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	use := func(h string, until time.Duration) store.UsedDuoPush {
		return store.UsedDuoPush{TxHash: h, Until: now.Add(until)}
	}
	full := func(first time.Duration) []store.UsedDuoPush {
		var out []store.UsedDuoPush
		for i := range maxUsedPushes {
			out = append(out, use(string(rune('A'+i)), first+time.Duration(i)*time.Second))
		}
		return out
	}
	tests := []struct {
		name     string
		recorded []store.UsedDuoPush
		wantErr  error
		want     []store.UsedDuoPush
		wantFull time.Time
	}{
		{name: "a first push is recorded",
			want: []store.UsedDuoPush{use("new", 10*time.Minute)}},
		{name: "a recorded push is refused", recorded: []store.UsedDuoPush{use("x", time.Minute), use("new", 5*time.Minute)},
			wantErr: errDuoTxUsed},
		{name: "a recorded push past its time is still refused", recorded: []store.UsedDuoPush{use("new", -time.Minute)},
			wantErr: errDuoTxUsed},
		{name: "records past their time are dropped", recorded: []store.UsedDuoPush{use("old", -time.Second), use("live", 0)},
			want: []store.UsedDuoPush{use("live", 0), use("new", 10*time.Minute)}},
		{name: "a full list of live records refuses until the first can go", recorded: full(time.Minute),
			wantFull: now.Add(time.Minute)},
		{name: "a full list with one past its time makes room", recorded: full(-time.Second),
			want: append(full(-time.Second)[1:], use("new", 10*time.Minute))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e := &store.Enrollment{DuoPushesUsed: tt.recorded}
			err := recordUsedPush(e, use("new", 10*time.Minute), now)
			switch {
			case !tt.wantFull.IsZero():
				var full *usedPushesFull
				g.Expect(err).To(BeAssignableToTypeOf(full))
				g.Expect(err.(*usedPushesFull).until).To(Equal(tt.wantFull))
			case tt.wantErr != nil:
				g.Expect(err).To(MatchError(tt.wantErr))
			default:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(e.DuoPushesUsed).To(Equal(tt.want))
			}
		})
	}
}

// TestDuoRequestsCarryTheChallengeServersUserAgent: the Duo test server
// sees the challenge server's product token and the client library's
// version (see internal/duo).
func TestDuoRequestsCarryTheChallengeServersUserAgent(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	approvedPush(t, f.browser(duotest.UserApprove))
	reqs := f.duo.Requests()
	g.Expect(reqs).NotTo(BeEmpty())
	for _, r := range reqs {
		g.Expect(r.UserAgent).To(Equal("mfa-operator-webhook/"+version.Version+" duo_api_golang/0.3.0 ca_bundle/1.0 (ca_pinning=disabled)"), "%s %s", r.Method, r.Path)
	}
}
