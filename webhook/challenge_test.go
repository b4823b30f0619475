package webhook

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// The challenge pages are tested against a real server in standalone mode:
// objects from YAML files in a temporary config directory, a generated
// keyring and a file store in a temporary data directory. QR codes are
// read with zbarimg and codes computed with oathtool, as a phone would.

const challengeConfigYAML = `
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec:
  type: totp
  totp: { issuer: Example Corp, digits: 8, period: 60s, algorithm: SHA256, skew: 1 }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: duo, namespace: apps }
spec:
  type: duo
  duo:
    apiHost: api-test.duosecurity.com
    integrationKeyRef: { name: duo-credentials, key: ikey }
    secretKeyRef: { name: duo-credentials, key: skey }
---
apiVersion: v1
kind: Secret
metadata: { name: duo-credentials, namespace: apps }
stringData: { ikey: DIXXXXXXXXXXXXXXXXXX, skey: not-a-real-secret-key }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: admin, namespace: apps }
spec:
  hosts: [admin.example.com]
  identity:
    header: { user: X-Auth-Request-Email }
  rules:
  - name: public
    when: 'request.path.startsWith("/public")'
    action: Allow
  - name: blocked
    when: 'request.path.startsWith("/blocked")'
    action: Deny
  - name: choose
    when: 'request.path.startsWith("/choose")'
    action: RequireMFA
    multifactor: { providers: [google-authenticator, duo] }
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`

const (
	challengeProxyAddr = "10.9.0.2:41000"
	challengePath      = "/challenge/apps/admin"
	challengeRD        = "https://admin.example.com/reports?year=2026"
	challengeUser      = "alice@example.com"
)

type challengeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *challengeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *challengeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type challengeFixture struct {
	t     *testing.T
	s     *Server
	st    *store.FileStore
	clock *challengeClock
	logs  *bytes.Buffer
	// clientIP is the browser's address as the trusted proxy reports it.
	clientIP string
}

func newChallengeFixture(t *testing.T) *challengeFixture {
	t.Helper()
	return newChallengeFixtureWith(t, challengeConfigYAML, nil)
}

// newChallengeFixtureWith serves the objects of objectsYAML, with options
// changed by opt (nil: none).
func newChallengeFixtureWith(t *testing.T, objectsYAML string, opt func(o *Options, dataDir string)) *challengeFixture {
	t.Helper()
	g := NewWithT(t)
	configDir, dataDir := t.TempDir(), t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(configDir, "objects.yaml"), []byte(objectsYAML), 0o600)).To(Succeed())
	st, err := store.NewFileStore(filepath.Join(dataDir, "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = st.Close() })
	clock := &challengeClock{t: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&syncWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := Options{
		PublicURL:      "https://auth.example.com",
		CookieDomain:   "example.com",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		Source:         &source.Dir{ConfigDir: configDir, DataDir: dataDir, Now: clock.Now, Log: log},
		Store:          st,
		Now:            clock.Now,
		Logger:         log,
	}
	if opt != nil {
		opt(&o, dataDir)
	}
	s, err := NewServer(o)
	g.Expect(err).NotTo(HaveOccurred())
	reloadConfigDir(s)
	g.Expect(s.config.snapshot().Policy("apps", "admin")).NotTo(BeNil(), "the policy loads from the config directory; logs:\n%s", logs)
	g.Expect(s.config.snapshot().Keyring).NotTo(BeNil())
	return &challengeFixture{t: t, s: s, st: st, clock: clock, logs: logs, clientIP: "198.51.100.20"}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// browser is one browser of one user: its cookies, and the page it shows.
type browser struct {
	f    *challengeFixture
	user string
	jar  *cookiejar.Jar
	// last is the body of the last page, where forms are read from.
	last string
	// userAgent is sent as User-Agent when set.
	userAgent string
}

func (f *challengeFixture) browser(user string) *browser {
	jar, err := cookiejar.New(nil)
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred())
	return &browser{f: f, user: user, jar: jar}
}

var authServerURL = &url.URL{Scheme: "https", Host: "auth.example.com", Path: "/"}

func (b *browser) do(r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = challengeProxyAddr
	r.Header.Set("X-Forwarded-For", b.f.clientIP)
	if b.user != "" {
		r.Header.Set("X-Auth-Request-Email", b.user)
	}
	if b.userAgent != "" {
		r.Header.Set("User-Agent", b.userAgent)
	}
	for _, c := range b.jar.Cookies(r.URL) {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	b.f.s.handler.ServeHTTP(w, r)
	b.jar.SetCookies(r.URL, w.Result().Cookies())
	b.last = w.Body.String()
	return w
}

func (b *browser) get(pathAndQuery string) *httptest.ResponseRecorder {
	return b.do(httptest.NewRequest(http.MethodGet, "https://auth.example.com"+pathAndQuery, nil))
}

// submit posts the form of the last page whose action ends with suffix,
// with its hidden fields and the given ones, as the browser would.
func (b *browser) submit(suffix string, fields url.Values) *httptest.ResponseRecorder {
	b.f.t.Helper()
	form := b.form(suffix)
	for k, v := range fields {
		form[k] = v
	}
	return b.post(challengePath+suffix, form)
}

func (b *browser) post(path string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "https://auth.example.com"+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://auth.example.com")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(r)
}

var (
	formRE   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	qrRE     = regexp.MustCompile(`<img class="qr" src="data:image/png;base64,([^"]+)"`)
	keyRE    = regexp.MustCompile(`<code class="key"[^>]*>([^<]+)</code>`)
	codesRE  = regexp.MustCompile(`<li>([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{2})</li>`)
)

// form returns the hidden fields of the last page's form posting to suffix.
func (b *browser) form(suffix string) url.Values {
	b.f.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(b.last, -1) {
		if !strings.HasSuffix(html.UnescapeString(m[1]), suffix) {
			continue
		}
		v := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			v.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
		}
		return v
	}
	b.f.t.Fatalf("no form posting to …%s on the page:\n%s", suffix, b.last)
	return nil
}

func challengeURL(rd string, extra ...string) string {
	q := url.Values{"rd": {rd}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return challengePath + "?" + q.Encode()
}

// otpauth is what the enrolment QR code says.
type otpauth struct {
	uri                          string
	issuer, account, secret, alg string
	digits, period               string
}

// scanQR decodes the enrolment page's QR code with zbarimg.
func (b *browser) scanQR() otpauth {
	t := b.f.t
	t.Helper()
	g := NewWithT(t)
	zbarimg, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatalf("zbarimg is not installed; run `make deps` (hack/install-deps.sh) to install zbar-tools")
	}
	m := qrRE.FindStringSubmatch(b.last)
	g.Expect(m).NotTo(BeNil(), "the enrolment page shows a QR code:\n%s", b.last)
	png, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(png[:8]).To(Equal([]byte("\x89PNG\r\n\x1a\n")), "the QR code is a PNG")
	path := filepath.Join(t.TempDir(), "qr.png")
	g.Expect(os.WriteFile(path, png, 0o600)).To(Succeed())
	out, err := exec.Command(zbarimg, "--raw", "-q", path).Output()
	g.Expect(err).NotTo(HaveOccurred(), "zbarimg reads the QR code")
	raw := strings.TrimSpace(string(out))
	u, err := url.Parse(raw)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(u.Scheme).To(Equal("otpauth"))
	g.Expect(u.Host).To(Equal("totp"))
	label := strings.TrimPrefix(u.Path, "/")
	issuer, account, _ := strings.Cut(label, ":")
	q := u.Query()
	return otpauth{uri: raw, issuer: issuer, account: account, secret: q.Get("secret"), alg: q.Get("algorithm"), digits: q.Get("digits"), period: q.Get("period")}
}

// code computes the code at the fixture's clock with oathtool.
func (f *challengeFixture) code(o otpauth, at time.Time) string {
	f.t.Helper()
	oathtool, err := exec.LookPath("oathtool")
	if err != nil {
		f.t.Fatalf("oathtool is not installed; run `make deps` (hack/install-deps.sh)")
	}
	out, err := exec.Command(oathtool, "--totp="+o.alg, "--digits="+o.digits, "--time-step-size="+o.period+"s",
		"--base32", "-N", fmt.Sprintf("@%d", at.Unix()), o.secret).Output()
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred(), "oathtool computes a code")
	return strings.TrimSpace(string(out))
}

// wrong returns a code of the same length that is not c.
func wrong(c string) string {
	last := c[len(c)-1]
	return c[:len(c)-1] + string('0'+(last-'0'+1)%10)
}

// enrol walks a new user through enrolment and returns the QR code's
// content and the recovery codes.
func (b *browser) enrol() (otpauth, []string) {
	t := b.f.t
	t.Helper()
	g := NewWithT(t)
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	o := b.scanQR()
	w = b.submit("/enroll", url.Values{"code": {b.f.code(o, b.f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	var codes []string
	for _, m := range codesRE.FindAllStringSubmatch(w.Body.String(), -1) {
		codes = append(codes, m[1])
	}
	g.Expect(codes).To(HaveLen(10))
	return o, codes
}

func TestChallengeWithoutIdentityShowsSignInFirst(t *testing.T) {
	f := newChallengeFixture(t)
	cases := []struct {
		name string
		prep func(*http.Request)
	}{
		{"no identity header", func(r *http.Request) { r.RemoteAddr = challengeProxyAddr }},
		{"identity header from an untrusted peer", func(r *http.Request) {
			r.RemoteAddr = "203.0.113.9:5000"
			r.Header.Set("X-Auth-Request-Email", challengeUser)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := httptest.NewRequest(http.MethodGet, "https://auth.example.com"+challengeURL(challengeRD), nil)
			tc.prep(r)
			w := httptest.NewRecorder()
			f.s.handler.ServeHTTP(w, r)
			g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
			body := w.Body.String()
			g.Expect(body).To(ContainSubstring("Sign in first"))
			g.Expect(body).To(ContainSubstring("first sign-in step is missing"))
			g.Expect(body).To(ContainSubstring(`href="https://admin.example.com/reports?year=2026"`))
			g.Expect(body).NotTo(ContainSubstring("<form"))
		})
	}
}

func TestChallengeEnrolmentWalk(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)

	// First visit: the enrolment page with a QR code of the provider's
	// parameters and the same key as text, grouped in fours.
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	page := w.Body.String()
	g.Expect(page).To(ContainSubstring("Set up your authenticator app"))
	g.Expect(page).To(ContainSubstring("admin.example.com"))
	g.Expect(page).To(ContainSubstring(challengeUser))
	o := b.scanQR()
	g.Expect(o.issuer).To(Equal("Example Corp"))
	g.Expect(o.account).To(Equal(challengeUser))
	g.Expect(o.alg).To(Equal("SHA256"))
	g.Expect(o.digits).To(Equal("8"))
	g.Expect(o.period).To(Equal("60"))
	g.Expect(o.uri).To(ContainSubstring("issuer=Example%20Corp"))
	key := keyRE.FindStringSubmatch(page)
	g.Expect(key).NotTo(BeNil())
	g.Expect(strings.ReplaceAll(key[1], " ", "")).To(Equal(o.secret))
	g.Expect(key[1]).To(MatchRegexp(`^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$`))

	// A reload shows the same secret.
	b.get(challengeURL(challengeRD))
	g.Expect(b.scanQR().secret).To(Equal(o.secret))

	// The first code from the app confirms; the recovery codes are shown
	// and the MFA cookies set for the cookie domain.
	code := f.code(o, f.clock.Now())
	w = b.submit("/enroll", url.Values{"code": {code}})
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Save your recovery codes"))
	g.Expect(w.Body.String()).To(ContainSubstring("I saved them, continue"))
	var codes []string
	for _, m := range codesRE.FindAllStringSubmatch(w.Body.String(), -1) {
		codes = append(codes, m[1])
	}
	g.Expect(codes).To(HaveLen(10))
	cookies := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		cookies[c.Name] = c
	}
	g.Expect(cookies).To(HaveKey(session.CookieName))
	g.Expect(cookies).To(HaveKey(session.RememberCookieName))
	g.Expect(cookies[session.CookieName].Domain).To(Equal("example.com"))

	// "I saved them, continue" leads back to rd.
	w = b.submit("/continue", nil)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengeRD))

	// The front door now lets the user through with these cookies.
	auth := httptest.NewRequest(http.MethodGet, "http://mfa-challenge/auth/apps/admin", nil)
	auth.RemoteAddr = challengeProxyAddr
	auth.Header.Set("X-Original-URL", challengeRD)
	auth.Header.Set("X-Original-Method", http.MethodGet)
	auth.Header.Set("X-Forwarded-For", f.clientIP)
	auth.Header.Set("X-Auth-Request-Email", challengeUser)
	for _, c := range b.jar.Cookies(&url.URL{Scheme: "https", Host: "admin.example.com", Path: "/"}) {
		auth.AddCookie(c)
	}
	aw := httptest.NewRecorder()
	f.s.handler.ServeHTTP(aw, auth)
	g.Expect(aw.Code).To(Equal(http.StatusOK), aw.Body.String())

	// The recovery codes are never shown again: the page now asks for a code.
	w = b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("Enter your verification code"))
	g.Expect(w.Body.String()).To(ContainSubstring("8-digit code"))
	for _, c := range codes {
		g.Expect(w.Body.String()).NotTo(ContainSubstring(c))
	}
	// Neither the secret, the codes nor the recovery codes reach the logs.
	logs := f.logs.String()
	g.Expect(logs).NotTo(ContainSubstring(o.secret))
	g.Expect(logs).NotTo(ContainSubstring(code))
	for _, c := range codes {
		g.Expect(logs).NotTo(ContainSubstring(c))
	}
}

func TestChallengeVerifyWithACode(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()

	f.clock.Advance(2 * time.Minute)
	b := f.browser(challengeUser) // another browser: no cookies yet
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Body.String()).To(ContainSubstring("Enter your verification code"))
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengeRD))
	g.Expect(w.Header().Values("Set-Cookie")).To(ContainElement(HavePrefix(session.CookieName + "=")))
}

func TestChallengeRefusedCodesSayWhy(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute)

	cases := []struct {
		name   string
		code   func() string
		status int
		text   string
	}{
		{"wrong code", func() string { return wrong(f.code(o, f.clock.Now())) }, http.StatusUnprocessableEntity, "That code is not right, or it has expired."},
		{"expired code, outside the skew", func() string { return f.code(o, f.clock.Now().Add(-3*time.Minute)) }, http.StatusUnprocessableEntity, "That code is not right, or it has expired."},
		{"not digits", func() string { return "no!code?" }, http.StatusUnprocessableEntity, "digits only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			b := f.browser(challengeUser)
			b.get(challengeURL(challengeRD))
			code := tc.code()
			w := b.submit("/verify", url.Values{"code": {code}})
			g.Expect(w.Code).To(Equal(tc.status))
			body := w.Body.String()
			g.Expect(body).To(ContainSubstring(tc.text))
			g.Expect(body).To(MatchRegexp(`<p class="alert" role="alert" id="form-error">`))
			g.Expect(body).To(ContainSubstring(`aria-describedby="code-hint form-error"`))
			g.Expect(body).To(ContainSubstring(`aria-invalid="true"`))
			g.Expect(body).NotTo(ContainSubstring(code), "the code is never echoed")
		})
	}

	t.Run("reused code", func(t *testing.T) {
		b := f.browser(challengeUser)
		b.get(challengeURL(challengeRD))
		code := f.code(o, f.clock.Now())
		w := b.submit("/verify", url.Values{"code": {code}})
		g.Expect(w.Code).To(Equal(http.StatusSeeOther))
		b.get(challengeURL(challengeRD))
		w = b.submit("/verify", url.Values{"code": {code}})
		g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
		g.Expect(w.Body.String()).To(ContainSubstring("That code was already used."))
		g.Expect(w.Body.String()).NotTo(ContainSubstring(code))
	})
}

func TestChallengeLocksOutAfterFiveFailures(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute) // 09:32

	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	right := f.code(o, f.clock.Now())
	var w *httptest.ResponseRecorder
	for i := range 5 {
		w = b.submit("/verify", url.Values{"code": {wrong(right)}})
		if i < 4 {
			g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), "failure %d", i+1)
		}
	}
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("Too many attempts. For your security, verification is paused until 09:37 UTC (in 5 minutes). Try again then."))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("300"))

	// While locked, the right code gets the same answer: nothing is revealed.
	w = b.submit("/verify", url.Values{"code": {right}})
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("verification is paused until 09:37 UTC"))
	g.Expect(w.Header().Values("Set-Cookie")).NotTo(ContainElement(HavePrefix(session.CookieName + "=")))

	// Recovery codes are locked too.
	w = b.get(challengeURL(challengeRD, "method", "recovery"))
	w = b.submit("/recovery", url.Values{"code": {"7k3m-q9tz-4h"}})
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))

	// After the lockout, a fresh code works.
	f.clock.Advance(6 * time.Minute)
	b.get(challengeURL(challengeRD))
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
}

func TestChallengeRecoveryCodeWorksOnce(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	_, codes := f.browser(challengeUser).enrol()

	b := f.browser(challengeUser)
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Body.String()).To(ContainSubstring("Use a recovery code instead"))
	w = b.get(challengeURL(challengeRD, "provider", "google-authenticator", "method", "recovery"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("Use a recovery code"))
	g.Expect(w.Body.String()).To(ContainSubstring(`<label for="code">Recovery code</label>`))

	// Typed in upper case without dashes: still the code.
	typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", ""))
	w = b.submit("/recovery", url.Values{"code": {typed}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengeRD))

	other := f.browser(challengeUser)
	other.get(challengeURL(challengeRD, "method", "recovery"))
	w = other.submit("/recovery", url.Values{"code": {codes[3]}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(w.Body.String()).To(ContainSubstring("That recovery code is not valid, or it was already used."))
	g.Expect(w.Body.String()).NotTo(ContainSubstring(codes[3]))
}

func TestChallengeFormsNeedTheirCSRFToken(t *testing.T) {
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute)

	cases := []struct {
		name   string
		tamper func(b *browser, form url.Values, r *http.Request)
	}{
		{"no token", func(_ *browser, form url.Values, _ *http.Request) { form.Del("csrf") }},
		{"a token of another user", func(_ *browser, form url.Values, _ *http.Request) {
			other := f.browser("mallory@example.com")
			other.get(challengeURL(challengeRD))
			form.Set("csrf", other.form("/enroll").Get("csrf"))
		}},
		{"no CSRF cookie", func(b *browser, _ url.Values, _ *http.Request) {
			jar, _ := cookiejar.New(nil)
			b.jar = jar
		}},
		{"posted from another site", func(_ *browser, _ url.Values, r *http.Request) {
			r.Header.Set("Origin", "https://evil.example.net")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			b := f.browser(challengeUser)
			b.get(challengeURL(challengeRD))
			form := b.form("/verify")
			form.Set("code", f.code(o, f.clock.Now()))
			r := httptest.NewRequest(http.MethodPost, "https://auth.example.com"+challengePath+"/verify", nil)
			r.Header.Set("Origin", "https://auth.example.com")
			tc.tamper(b, form, r)
			body := strings.NewReader(form.Encode())
			r.Body = httpNopCloser{body}
			r.ContentLength = int64(body.Len())
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := b.do(r)
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring("Form expired or invalid"))
			g.Expect(w.Header().Values("Set-Cookie")).NotTo(ContainElement(HavePrefix(session.CookieName + "=")))
		})
	}
}

type httpNopCloser struct{ *strings.Reader }

func (httpNopCloser) Close() error { return nil }

func TestChallengeBadRedirectFallsBackToThePolicyHost(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute)

	b := f.browser(challengeUser)
	w := b.get(challengeURL("https://evil.example.net/steal"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("evil.example.net"))
	g.Expect(b.form("/verify").Get("rd")).To(Equal("https://admin.example.com/"))

	// Even a form edited to carry a bad rd is sent to the default.
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}, "rd": {"//evil.example.net"}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal("https://admin.example.com/"))
}

func TestChallengeRateLimitsFormsPerAddress(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	form := b.form("/enroll")
	form.Set("code", "x")
	for i := range ratelimit.Default.Burst {
		w := b.post(challengePath+"/enroll", form)
		g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), "submission %d", i+1)
	}
	w := b.post(challengePath+"/enroll", form)
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("Too many attempts came from your network."))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("6"))

	// Another address is not affected.
	f.clientIP = "198.51.100.99"
	w = b.post(challengePath+"/enroll", form)
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
}

func TestChallengeProviderChoice(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	rd := "https://admin.example.com/choose/this"

	w := b.get(challengeURL(rd))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	body := w.Body.String()
	g.Expect(body).To(ContainSubstring("Choose how to verify"))
	g.Expect(body).To(ContainSubstring("Authenticator app"))
	g.Expect(body).To(ContainSubstring("Duo"))
	g.Expect(body).To(ContainSubstring(html.EscapeString(challengeURL(rd, "provider", "duo"))))

	w = b.get(challengeURL(rd, "provider", "google-authenticator"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("Set up your authenticator app"))
	g.Expect(w.Body.String()).To(ContainSubstring("Choose another way to verify"))

	// The Duo page asks Duo (preauth): challenge_duo_test.go tests it
	// against a Duo test server.

	w = b.get(challengeURL(rd, "provider", "nope"))
	g.Expect(w.Code).To(Equal(http.StatusBadRequest))
	g.Expect(w.Body.String()).To(ContainSubstring("Unknown verification method"))
}

func TestChallengeOutcomesOtherThanAChallenge(t *testing.T) {
	f := newChallengeFixture(t)
	cases := []struct {
		name   string
		path   string
		status int
		check  func(g Gomega, w *httptest.ResponseRecorder)
	}{
		{"unknown policy", "/challenge/apps/nope?rd=" + url.QueryEscape(challengeRD), http.StatusNotFound, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Body.String()).To(ContainSubstring("No MFAPolicy apps/nope is in force"))
		}},
		{"rd needs no second factor", challengeURL("https://admin.example.com/public/x"), http.StatusOK, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Body.String()).To(ContainSubstring("No second step needed"))
			g.Expect(w.Body.String()).To(ContainSubstring(`<a class="button" href="https://admin.example.com/public/x">Continue to admin.example.com</a>`))
		}},
		{"rd is denied", challengeURL("https://admin.example.com/blocked"), http.StatusForbidden, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Body.String()).To(ContainSubstring("Access denied"))
		}},
		{"unknown form address", challengePath + "/other", http.StatusNotFound, func(Gomega, *httptest.ResponseRecorder) {}},
		{"form address opened with GET", challengePath + "/verify?rd=x", http.StatusSeeOther, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Header().Get("Location")).To(Equal(challengePath + "?rd=x"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			w := f.browser(challengeUser).get(tc.path)
			g.Expect(w.Code).To(Equal(tc.status), w.Body.String())
			tc.check(g, w)
		})
	}
}

func TestChallengeStoreUnavailableAsksToTryAgain(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	form := b.form("/enroll")
	g.Expect(f.st.Close()).To(Succeed())

	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Body.String()).To(ContainSubstring("Please try again"))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("5"))

	form.Set("code", "12345678")
	w = b.post(challengePath+"/enroll", form)
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Body.String()).To(ContainSubstring("Nothing was changed."))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("bolt"))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("12345678"))
}

func TestChallengePagesAreAccessibleAndSelfContained(t *testing.T) {
	f := newChallengeFixture(t)
	f.browser(challengeUser).enrol()
	b := f.browser(challengeUser)

	pages := map[string]string{
		"verify":   challengeURL(challengeRD),
		"recovery": challengeURL(challengeRD, "method", "recovery"),
		"choice":   challengeURL("https://admin.example.com/choose"),
	}
	enrolling := f.browser("bob@example.com")
	pages["enroll"] = challengeURL(challengeRD)
	for name, path := range pages {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			br := b
			if name == "enroll" {
				br = enrolling
			}
			w := br.get(path)
			g.Expect(w.Code).To(Equal(http.StatusOK))
			body := w.Body.String()
			g.Expect(body).To(HavePrefix("<!doctype html>\n<html lang=\"en\">"))
			g.Expect(body).To(ContainSubstring(`<meta name="viewport" content="width=device-width, initial-scale=1">`))
			g.Expect(body).To(ContainSubstring(`<h1 id="title">`))
			g.Expect(body).To(ContainSubstring("admin.example.com"))
			g.Expect(body).NotTo(ContainSubstring("<script"))
			g.Expect(body).NotTo(MatchRegexp(`(src|href)="(https?:)?//`), "no external assets")
			g.Expect(w.Header().Get("Cache-Control")).To(Equal("no-store"))
			g.Expect(w.Header().Get("X-Frame-Options")).To(Equal("DENY"))
			csp := w.Header().Get("Content-Security-Policy")
			g.Expect(csp).To(ContainSubstring("default-src 'none'"))
			g.Expect(csp).To(ContainSubstring("frame-ancestors 'none'"))
			nonce := regexp.MustCompile(`<style nonce="([^"]+)">`).FindStringSubmatch(body)
			g.Expect(nonce).NotTo(BeNil())
			g.Expect(csp).To(ContainSubstring("style-src 'nonce-" + nonce[1] + "'"))
			if name == "choice" {
				return
			}
			g.Expect(body).To(ContainSubstring(`<label for="code">`))
			if name == "enroll" {
				// The code field is step 3, below the QR code: the page
				// opens at its heading, not scrolled to the field.
				g.Expect(body).NotTo(ContainSubstring("autofocus"))
			} else {
				g.Expect(body).To(MatchRegexp(`<input [^>]*id="code"[^>]*required autofocus`))
			}
			if name != "recovery" {
				input := regexp.MustCompile(`<input class="code"[^>]*>`).FindString(body)
				g.Expect(input).To(ContainSubstring(`autocomplete="one-time-code"`))
				g.Expect(input).To(ContainSubstring(`inputmode="numeric"`))
				g.Expect(input).To(ContainSubstring(`pattern="[0-9]{8}"`))
				g.Expect(input).To(ContainSubstring(`aria-describedby="code-hint"`))
			}
		})
	}
}

func TestGroupKey(t *testing.T) {
	g := NewWithT(t)
	g.Expect(groupKey("ABCDEFGHIJ")).To(Equal("ABCD EFGH IJ"))
	g.Expect(groupKey("ABCDEFGH")).To(Equal("ABCD EFGH"))
	g.Expect(groupKey("")).To(Equal(""))
}
