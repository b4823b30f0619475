package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// The Duo challenge is tested against a Duo Auth API test server on
// 127.0.0.1 (HTTPS with its own CA, signatures checked, scripted users),
// trusted through the providers' caBundleRef, with the challenge server in
// standalone mode as in challenge_test.go. The scripted users' names are
// the users' ids (the identity header), which is the Duo username.

// duoConfigYAML is the configuration of the Duo tests for a Duo server at
// apiHost with these credentials:
//
//	duo        push and passcode, failMode closed
//	duo-open   failMode open
//	duo-push   push only
//	duo-nohost the test server's address without caBundleRef, failMode open
//
// and a policy whose rules pick them by path (everything else: duo).
func duoConfigYAML(apiHost, ikey, skey, ca string) string {
	provider := func(name, extra string) string {
		return `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: ` + name + `, namespace: apps }
spec:
  type: duo
  duo:
    apiHost: "` + apiHost + `"
    integrationKeyRef: { name: duo-credentials, key: ikey }
    secretKeyRef: { name: duo-credentials, key: skey }
` + extra
	}
	ca4 := "    caBundleRef: { name: duo-credentials, key: ca.crt }\n"
	return `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp }
` + provider("duo", ca4) +
		provider("duo-open", ca4+"    failMode: open\n") +
		provider("duo-push", ca4+"    factors: [push]\n") +
		provider("duo-nohost", "    failMode: open\n") + `---
apiVersion: v1
kind: Secret
metadata: { name: duo-credentials, namespace: apps }
stringData:
  ikey: ` + strconv.Quote(ikey) + `
  skey: ` + strconv.Quote(skey) + `
  ca.crt: ` + strconv.Quote(ca) + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: admin, namespace: apps }
spec:
  hosts: [admin.example.com]
  identity:
    header: { user: X-Auth-Request-Email }
  rules:
  - name: choose
    when: 'request.path.startsWith("/choose")'
    action: RequireMFA
    multifactor: { providers: [google-authenticator, duo] }
  - name: open
    when: 'request.path.startsWith("/open")'
    action: RequireMFA
    multifactor: { providers: [duo-open] }
  - name: push-only
    when: 'request.path.startsWith("/push-only")'
    action: RequireMFA
    multifactor: { providers: [duo-push] }
  - name: nohost
    when: 'request.path.startsWith("/nohost")'
    action: RequireMFA
    multifactor: { providers: [duo-nohost] }
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [duo] }
`
}

// Where each provider is asked for.
const (
	duoRD       = "https://admin.example.com/reports?year=2026"
	duoOpenRD   = "https://admin.example.com/open/reports"
	duoPushRD   = "https://admin.example.com/push-only/reports"
	duoNoHostRD = "https://admin.example.com/nohost/reports"
)

type duoFixture struct {
	*challengeFixture
	duo *duotest.Server
}

// newDuoFixture starts a Duo test server and a challenge server configured
// for it; opts change the challenge server's options.
func newDuoFixture(t *testing.T, opts ...func(*Options)) *duoFixture {
	t.Helper()
	g := NewWithT(t)
	ds := duotest.NewServer(t)
	configDir, dataDir := t.TempDir(), t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(configDir, "objects.yaml"),
		[]byte(duoConfigYAML(ds.APIHost(), ds.IKey(), ds.SKey(), ds.CAPEM())), 0o600)).To(Succeed())
	st, err := store.NewFileStore(filepath.Join(dataDir, "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = st.Close() })
	clock := &challengeClock{t: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
	logs := &syncWriter{w: new(bytes.Buffer)}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := Options{
		PublicURL:      "https://auth.example.com",
		CookieDomain:   "example.com",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		Source:         &source.Dir{ConfigDir: configDir, DataDir: dataDir, Now: clock.Now, Log: log},
		Store:          st,
		Now:            clock.Now,
		Logger:         log,
	}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := NewServer(o)
	g.Expect(err).NotTo(HaveOccurred())
	reloadConfigDir(s)
	g.Expect(s.config.snapshot().Provider("apps", "duo")).NotTo(BeNil(), "the Duo provider loads; logs:\n%s", logs.w.String())
	g.Expect(s.config.snapshot().Policy("apps", "admin")).NotTo(BeNil(), "the policy loads; logs:\n%s", logs.w.String())
	return &duoFixture{
		challengeFixture: &challengeFixture{t: t, s: s, st: st, clock: clock, logs: logs.w, clientIP: "198.51.100.20"},
		duo:              ds,
	}
}

// authFor asks /auth about rd for b's user, with b's cookies, as the front
// door does.
func (f *duoFixture) authFor(b *browser, rd string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "http://mfa-challenge/auth/apps/admin", nil)
	r.RemoteAddr = challengeProxyAddr
	r.Header.Set("X-Original-URL", rd)
	r.Header.Set("X-Original-Method", http.MethodGet)
	r.Header.Set("X-Forwarded-For", f.clientIP)
	r.Header.Set("X-Auth-Request-Email", b.user)
	u, _ := url.Parse(rd)
	for _, c := range b.jar.Cookies(u) {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.s.handler.ServeHTTP(w, r)
	return w
}

// assertionClaims decodes the claims of the X-MFA-Assertion JWT.
func assertionClaims(g Gomega, w *httptest.ResponseRecorder) map[string]any {
	jwt := w.Header().Get(headerAssertion)
	parts := strings.Split(jwt, ".")
	g.Expect(parts).To(HaveLen(3), "an assertion JWT")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	g.Expect(err).NotTo(HaveOccurred())
	claims := map[string]any{}
	g.Expect(json.Unmarshal(raw, &claims)).To(Succeed())
	return claims
}

func cookieNames(w *httptest.ResponseRecorder) []string {
	var names []string
	for _, c := range w.Result().Cookies() {
		if c.MaxAge >= 0 {
			names = append(names, c.Name)
		}
	}
	return names
}

// pollStatus posts the waiting page's form to the status endpoint, as its
// script does.
func (b *browser) pollStatus() (int, duoStatusAnswer) {
	b.f.t.Helper()
	form := b.form(duoPathCheck)
	r := httptest.NewRequest(http.MethodPost, "https://auth.example.com"+challengePath+duoPathStatus, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://auth.example.com")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Accept", "application/json")
	last := b.last
	w := b.do(r)
	b.last = last // the page stays; the script only reads JSON
	var a duoStatusAnswer
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		NewWithT(b.f.t).Expect(json.Unmarshal(w.Body.Bytes(), &a)).To(Succeed())
	}
	return w.Code, a
}

// logDuoRequests logs what the Duo test server received: the shape of
// the calls, with the passcode masked.
func logDuoRequests(t *testing.T, s *duotest.Server) {
	for _, r := range s.Requests() {
		p := r.Params
		if p.Has("passcode") {
			p.Set("passcode", "******")
		}
		t.Logf("Duo received: %s %s %s (HTTP %d)", r.Method, r.Path, p.Encode(), r.HTTPStatus)
	}
}

func TestDuoPreauthDecidesWhatThePageOffers(t *testing.T) {
	f := newDuoFixture(t)
	tests := []struct {
		name       string
		user, rd   string
		status     int
		want, not  []string
		wantFields []string
	}{
		{
			name: "push to each device and a passcode", user: duotest.UserApprove, rd: duoRD, status: http.StatusOK,
			want:       []string{"Verify with Duo", "Send a push to iOS (XXX-XXX-0100)", `name="passcode"`, "Verify passcode"},
			wantFields: []string{duoPathPush, duoPathPasscode},
		},
		{
			name: "no push device: a passcode only", user: duotest.UserNoPush, rd: duoRD, status: http.StatusOK,
			want: []string{`name="passcode"`, "autofocus"},
			not:  []string{"Send a push"},
		},
		{
			name: "push only provider: no passcode", user: duotest.UserApprove, rd: duoPushRD, status: http.StatusOK,
			want: []string{"Send a push to iOS (XXX-XXX-0100)"},
			not:  []string{`name="passcode"`},
		},
		{
			name: "push only provider, no push device", user: duotest.UserNoPush, rd: duoPushRD, status: http.StatusForbidden,
			want: []string{"No Duo device can answer"},
		},
		{
			name: "denied user gets Duo's message", user: duotest.UserLockedOut, rd: duoRD, status: http.StatusForbidden,
			want: []string{"Access denied by Duo", "Your account is disabled."},
			not:  []string{"Send a push", `name="passcode"`},
		},
		{
			name: "user without a device is sent to Duo's enrolment portal", user: duotest.UserEnroll, rd: duoRD, status: http.StatusOK,
			want: []string{"Set up Duo", "Enroll an authentication device to proceed",
				`href="https://` + f.duo.APIHost() + `/portal?code=enroll"`, "I have set up Duo, continue"},
			not: []string{"Send a push", `name="passcode"`},
		},
		{
			name: "two providers: Duo is one of the choices", user: duotest.UserApprove, rd: "https://admin.example.com/choose/x", status: http.StatusOK,
			want: []string{"Choose how to verify", "Duo", "provider=duo"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b := f.browser(tt.user)
			w := b.get(challengeURL(tt.rd))
			g.Expect(w.Code).To(Equal(tt.status), w.Body.String())
			for _, s := range tt.want {
				g.Expect(w.Body.String()).To(ContainSubstring(s))
			}
			for _, s := range tt.not {
				g.Expect(w.Body.String()).NotTo(ContainSubstring(s))
			}
			for _, suffix := range tt.wantFields {
				g.Expect(b.form(suffix)).To(HaveKey("csrf"))
			}
			g.Expect(w.Body.String()).NotTo(ContainSubstring("<script"), "only the waiting page has a script")
		})
	}
	// Every preauth named the user and the client's address.
	g := NewWithT(t)
	preauths := f.duo.RequestsTo("/auth/v2/preauth")
	g.Expect(preauths).NotTo(BeEmpty())
	for _, r := range preauths {
		g.Expect(r.Method).To(Equal(http.MethodPost))
		g.Expect(r.Params.Get("username")).NotTo(BeEmpty())
		g.Expect(r.Params.Get("ipaddr")).To(Equal("198.51.100.20"))
		g.Expect(r.HTTPStatus).To(Equal(http.StatusOK))
	}
}

func TestDuoPushApprovedIssuesTheSessionClaimingDuo(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	b := f.browser(duotest.UserApprove)
	g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))

	// The push: the waiting page, with its script allowed by nonce.
	w := b.submit(duoPathPush, nil)
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	body := w.Body.String()
	g.Expect(body).To(ContainSubstring("Approve the push"))
	g.Expect(body).To(ContainSubstring("iOS (XXX-XXX-0100)"))
	g.Expect(body).To(ContainSubstring(`data-poll="/challenge/apps/admin/duo/status"`))
	nonce := regexp.MustCompile(`<script nonce="([^"]+)">`).FindStringSubmatch(body)
	g.Expect(nonce).NotTo(BeNil(), "the page polls with a script")
	csp := w.Header().Get("Content-Security-Policy")
	g.Expect(csp).To(ContainSubstring("script-src 'nonce-" + nonce[1] + "'"))
	g.Expect(csp).To(ContainSubstring("connect-src 'self'"))
	g.Expect(csp).To(ContainSubstring("default-src 'none'"))
	form := b.form(duoPathCheck)
	g.Expect(form.Get(paramTx)).NotTo(BeEmpty())

	// The push as Duo received it.
	pushes := f.duo.RequestsTo("/auth/v2/auth")
	g.Expect(pushes).To(HaveLen(1))
	p := pushes[0].Params
	g.Expect(p.Get("factor")).To(Equal("push"))
	g.Expect(p.Get("async")).To(Equal("1"))
	g.Expect(p.Get("username")).To(Equal(duotest.UserApprove))
	g.Expect(p.Get("device")).To(Equal("DPFZRS9FB0D46QFTM891"))
	g.Expect(p.Get("ipaddr")).To(Equal("198.51.100.20"))
	info, err := url.ParseQuery(p.Get("pushinfo"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info).To(Equal(url.Values{"app": {"admin.example.com"}, "policy": {"apps/admin"}}))
	g.Expect(p.Get("pushinfo")).To(Equal("app=admin.example.com&policy=apps%2Fadmin"))

	// The script's polls: waiting while Duo waits, then done.
	for i := 0; i < duotest.ApprovePolls; i++ {
		code, a := b.pollStatus()
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(a.State).To(Equal("waiting"))
	}
	code, a := b.pollStatus()
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(a).To(Equal(duoStatusAnswer{State: "done"}))
	statuses := f.duo.RequestsTo("/auth/v2/auth_status")
	g.Expect(statuses).To(HaveLen(duotest.ApprovePolls + 1))
	g.Expect(statuses[0].Method).To(Equal(http.MethodGet))
	g.Expect(statuses[0].Params).To(HaveKey("txid"))
	g.Expect(body).NotTo(ContainSubstring(statuses[0].Params.Get("txid")), "the txid is never in the page")

	// The form then posted by the script (or by the user without one).
	w = b.submit(duoPathCheck, nil)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
	g.Expect(w.Header().Get("Location")).To(Equal(duoRD))
	g.Expect(cookieNames(w)).To(ContainElements(session.CookieName, session.RememberCookieName))

	aw := f.authFor(b, duoRD)
	g.Expect(aw.Code).To(Equal(http.StatusOK), aw.Body.String())
	g.Expect(aw.Header().Get(headerUser)).To(Equal(duotest.UserApprove))
	g.Expect(aw.Header().Get(headerMultifactor)).To(Equal("duo"))
	claims := assertionClaims(g, aw)
	g.Expect(claims["multifactor"]).To(Equal([]any{"duo"}))
	g.Expect(claims["amr"]).To(ContainElement("mfa"))
	g.Expect(f.logs.String()).To(ContainSubstring("second factor accepted"))

	// The same form sent again (the back button after a sign-out): the
	// push issued its session already.
	w = b.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Body.String()).To(ContainSubstring("This push was already used to sign in."))
	g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
	logDuoRequests(t, f.duo)
}

func TestDuoPushRefusalsSayWhyAndOfferAnotherTry(t *testing.T) {
	tests := []struct {
		user       string
		title, msg string
	}{
		{duotest.UserDeny, "Request denied", "Login request denied."},
		{duotest.UserTimeout, "Request timed out", "Login request timed out."},
		{duotest.UserFraud, "Request reported as fraud", "Login request reported as fraudulent."},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			g := NewWithT(t)
			f := newDuoFixture(t)
			b := f.browser(tt.user)
			g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
			g.Expect(b.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))

			// Without a script: "Continue" before the answer shows the
			// waiting page again.
			w := b.submit(duoPathCheck, nil)
			g.Expect(w.Code).To(Equal(http.StatusOK))
			g.Expect(w.Body.String()).To(ContainSubstring("Duo has no answer from your device yet"))

			w = b.submit(duoPathCheck, nil)
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring(tt.title))
			g.Expect(w.Body.String()).To(ContainSubstring("Duo says: " + tt.msg))
			g.Expect(w.Body.String()).To(ContainSubstring(`>Try again</a>`))
			g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
			g.Expect(f.authFor(b, duoRD).Code).To(Equal(http.StatusUnauthorized))

			// Trying again offers the push again.
			w = b.get(challengeURL(duoRD))
			g.Expect(w.Code).To(Equal(http.StatusOK))
			g.Expect(w.Body.String()).To(ContainSubstring("Send a push"))
			if tt.user == duotest.UserFraud {
				g.Expect(f.logs.String()).To(MatchRegexp(`"level":"WARN","msg":"Duo push reported as fraud by the user".*"user":"fraud"`))
			}
		})
	}
}

func TestDuoBypassPassesWithoutClaimingDuo(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	b := f.browser(duotest.UserBypass)
	w := b.get(challengeURL(duoRD))
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
	g.Expect(w.Header().Get("Location")).To(Equal(duoRD))
	g.Expect(cookieNames(w)).To(ConsistOf(session.CookieName), "a session for this browser session only, never remembered")

	aw := f.authFor(b, duoRD)
	g.Expect(aw.Code).To(Equal(http.StatusOK))
	g.Expect(aw.Header().Get(headerMultifactor)).To(BeEmpty(), "no factor was answered")
	claims := assertionClaims(g, aw)
	g.Expect(claims["multifactor"]).To(BeEmpty())
	g.Expect(claims["amr"]).To(BeEmpty())
	g.Expect(f.logs.String()).To(MatchRegexp(`"msg":"second factor bypassed by Duo; the session does not claim duo".*"rule":"everyone".*"user":"bypass"`))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(BeEmpty(), "no push or passcode")
}

func TestDuoPasscode(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	b := f.browser(duotest.UserApprove)
	g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))

	// Not digits: not sent to Duo.
	w := b.submit(duoPathPasscode, url.Values{"passcode": {"abc"}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(w.Body.String()).To(ContainSubstring("digits only"))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(BeEmpty())

	// A wrong passcode: Duo's message and the form again.
	w = b.submit(duoPathPasscode, url.Values{"passcode": {"271828"}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(w.Body.String()).To(ContainSubstring("Incorrect passcode. Please try again."))
	g.Expect(w.Body.String()).To(ContainSubstring(`aria-invalid="true"`))
	g.Expect(f.authFor(b, duoRD).Code).To(Equal(http.StatusUnauthorized))

	// The right one.
	w = b.submit(duoPathPasscode, url.Values{"passcode": {"314 159"}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
	g.Expect(w.Header().Get("Location")).To(Equal(duoRD))
	aw := f.authFor(b, duoRD)
	g.Expect(aw.Code).To(Equal(http.StatusOK))
	g.Expect(aw.Header().Get(headerMultifactor)).To(Equal("duo"))

	auths := f.duo.RequestsTo("/auth/v2/auth")
	g.Expect(auths).To(HaveLen(2))
	for _, r := range auths {
		g.Expect(r.Params.Get("factor")).To(Equal("passcode"))
		g.Expect(r.Params.Get("username")).To(Equal(duotest.UserApprove))
		g.Expect(r.Params.Get("ipaddr")).To(Equal("198.51.100.20"))
	}
	g.Expect(auths[1].Params.Get("passcode")).To(Equal(duotest.ValidPasscode), "spaces removed")

	// Used once: Duo refuses it the second time. (Ten seconds later: the
	// user has used up the burst of calls to Duo, one more comes every ten
	// seconds.)
	f.clock.Advance(10 * time.Second)
	b2 := f.browser(duotest.UserApprove)
	g.Expect(b2.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(b2.submit(duoPathPasscode, url.Values{"passcode": {duotest.ValidPasscode}}).Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(f.logs.String()).NotTo(ContainSubstring(duotest.ValidPasscode))
	logDuoRequests(t, f.duo)
}

func TestDuoPushesAreLimitedPerUser(t *testing.T) {
	g := NewWithT(t)
	// The push limit alone: the limits of calls to Duo are out of its way.
	f := newDuoFixture(t, func(o *Options) {
		o.duoCallLimits = duoCallLimits{PerUser: ratelimit.Limit{PerMinute: 600, Burst: 100}}
	})
	b := f.browser(duotest.UserApprove)
	push := func(b *browser) *httptest.ResponseRecorder {
		g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
		return b.submit(duoPathPush, nil)
	}
	for i := 0; i < int(duoPushRateLimit.Burst); i++ {
		g.Expect(push(b).Code).To(Equal(http.StatusOK), "push %d", i+1)
	}
	w := push(b)
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("Too many pushes"))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("20"))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(HaveLen(duoPushRateLimit.Burst), "the refused push never reached Duo")

	// Another browser of the same user, from another address: still limited.
	other := f.browser(duotest.UserApprove)
	f.clientIP = "198.51.100.99"
	g.Expect(push(other).Code).To(Equal(http.StatusTooManyRequests))
	// Another user is not.
	g.Expect(push(f.browser(duotest.UserDeny)).Code).To(Equal(http.StatusOK))
	// A push a minute is back after 20 seconds.
	f.clock.Advance(20 * time.Second)
	g.Expect(push(b).Code).To(Equal(http.StatusOK))
}

// TestDuoPushIsBoundToTheUserAndTheBrowser: the sealed transaction of one
// user's push cannot be polled or completed by another user or another
// browser, nor after it expires, nor once tampered with.
func TestDuoPushIsBoundToTheUserAndTheBrowser(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	alice := f.browser(duotest.UserApprove)
	g.Expect(alice.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(alice.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
	stolen := alice.form(duoPathCheck).Get(paramTx)

	// mallory: her own page and token, alice's transaction.
	mallory := f.browser(duotest.UserDeny)
	g.Expect(mallory.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(mallory.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
	// alice in another browser: her CSRF token there, the transaction of
	// the first browser.
	aliceElsewhere := f.browser(duotest.UserApprove)
	g.Expect(aliceElsewhere.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(aliceElsewhere.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))

	statusBefore := len(f.duo.RequestsTo("/auth/v2/auth_status"))
	tampered := []byte(stolen)
	tampered[len(tampered)/2] ^= 1
	for name, tc := range map[string]struct {
		b  *browser
		tx string
	}{
		"another user":            {mallory, stolen},
		"the same user elsewhere": {aliceElsewhere, stolen},
		"a tampered transaction":  {alice, string(tampered)},
		"a made-up transaction":   {alice, base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))},
		"no transaction":          {alice, ""},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			form := tc.b.form(duoPathCheck)
			form.Set(paramTx, tc.tx)
			last := tc.b.last
			w := tc.b.post(challengePath+duoPathStatus, form)
			tc.b.last = last
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Header().Get("Content-Type")).To(Equal("application/json"))
			g.Expect(w.Body.String()).To(ContainSubstring(`"error":"invalid or expired push"`))
			w = tc.b.post(challengePath+duoPathCheck, form)
			tc.b.last = last
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring("Push expired or invalid"))
			g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
		})
	}
	g.Expect(f.duo.RequestsTo("/auth/v2/auth_status")).To(HaveLen(statusBefore), "no refused transaction reached Duo")

	t.Run("a status request without the form token", func(t *testing.T) {
		g := NewWithT(t)
		form := alice.form(duoPathCheck)
		form.Del(csrfField)
		last := alice.last
		w := alice.post(challengePath+duoPathStatus, form)
		alice.last = last
		g.Expect(w.Code).To(Equal(http.StatusForbidden))
		g.Expect(w.Body.String()).To(ContainSubstring(`"error":"invalid form token"`))
	})
	t.Run("an expired push", func(t *testing.T) {
		g := NewWithT(t)
		f.clock.Advance(duoTxTTL + time.Second)
		w := alice.submit(duoPathCheck, nil)
		g.Expect(w.Code).To(Equal(http.StatusForbidden))
		g.Expect(w.Body.String()).To(ContainSubstring("This push has expired."))
	})
}

func TestDuoFormsNeedTheirCSRFTokenAndADuoProvider(t *testing.T) {
	f := newDuoFixture(t)
	tests := []struct {
		name   string
		change func(url.Values)
		status int
		text   string
	}{
		{"no CSRF token", func(v url.Values) { v.Del(csrfField) }, http.StatusForbidden, "Form expired or invalid"},
		{"a TOTP provider", func(v url.Values) { v.Set(paramProvider, "google-authenticator") }, http.StatusBadRequest, "Unknown verification method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b := f.browser(duotest.UserApprove)
			g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
			form := b.form(duoPathPush)
			tt.change(form)
			w := b.post(challengePath+duoPathPush, form)
			g.Expect(w.Code).To(Equal(tt.status), w.Body.String())
			g.Expect(w.Body.String()).To(ContainSubstring(tt.text))
		})
	}
	g := NewWithT(t)
	g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(BeEmpty())

	// A TOTP provider the rule offers, on a Duo form.
	b := f.browser(duotest.UserApprove)
	rd := "https://admin.example.com/choose/x"
	g.Expect(b.get(challengeURL(rd, "provider", "duo")).Code).To(Equal(http.StatusOK))
	form := b.form(duoPathPush)
	form.Set(paramProvider, "google-authenticator")
	w := b.post(challengePath+duoPathPush, form)
	g.Expect(w.Code).To(Equal(http.StatusBadRequest))
	g.Expect(w.Body.String()).To(ContainSubstring("This form is for Duo"))

	// A Duo form's address opened directly leads back to the page.
	w = b.get(challengePath + duoPathCheck + "?rd=x")
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengePath + "?rd=x"))
	g.Expect(b.get(challengePath + "/duo/other").Code).To(Equal(http.StatusNotFound))
}
