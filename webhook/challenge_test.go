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
