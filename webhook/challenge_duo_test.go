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
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
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
