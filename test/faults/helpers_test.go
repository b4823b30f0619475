//go:build e2e

// Package faults holds the tests that prove nothing is lost and no door is
// left open when parts fail or misbehave: several challenge server
// replicas racing on one store, the API server going away, corrupted
// Secrets, killed processes, load while the configuration changes, and
// objects the API server or the controller must refuse. Every server runs
// as a real process on 127.0.0.1 (hack/demo.sh through test/e2e/harness,
// or `mfa-operator webhook` started here); every wait is bounded. They
// build only with `-tags e2e` (make test).
package faults

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

const (
	// userHeader is the header the first-factor proxy sets.
	userHeader = "X-Auth-Request-Email"
	// appHost is the protected app's host in every policy here.
	appHost = "app.localhost"
	// policyPath is the challenge page of the policy apps/admin.
	policyPath = "/challenge/apps/admin"
	authPath   = "/auth/apps/admin"
)

// objectsYAML is a TOTP provider and the policy apps/admin: /public is
// open, everything else needs a second factor, remembered for a month.
// extraRules go first.
func objectsYAML(extraRules string) string {
	return `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: google-authenticator, namespace: apps}
spec:
  type: totp
  totp: {issuer: Fault Tests}
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: admin, namespace: apps}
spec:
  hosts: [` + appHost + `]
  identity:
    header: {user: ` + userHeader + `}
  rules:
` + extraRules + `  - name: public
    when: request.path.startsWith("/public")
    action: Allow
  - name: everyone
    when: "true"
    action: RequireMFA
    multifactor: {providers: [google-authenticator], rememberFor: 720h}
`
}

const namespaceYAML = "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n---\n"

// rdFor is the app URL the browser returns to.
func rdFor(path string) string { return "http://" + appHost + path }

// browser is one browser of one user, talking to challenge servers the
// way the front door forwards it: the first-factor proxy's user header,
// the client address in X-Forwarded-For. Cookies are kept per host, not per
// port, so one browser carries its cookies to every replica on 127.0.0.1,
// as behind a load balancer.
type browser struct {
	user string
	ip   string
	jar  *cookiejar.Jar
	hc   *http.Client
}

var ipCounter struct {
	sync.Mutex
	n int
}

// newBrowser returns a browser of user with an address of its own, so
// that the per-address limit of challenge forms does not couple tests.
func newBrowser(user string) *browser {
	ipCounter.Lock()
	ipCounter.n++
	n := ipCounter.n
	ipCounter.Unlock()
	jar, _ := cookiejar.New(nil)
	return &browser{
		user: user,
		ip:   fmt.Sprintf("198.51.%d.%d", 100+n/250, 1+n%250),
		jar:  jar,
		hc: &http.Client{
			Jar:           jar,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (b *browser) do(t testing.TB, req *http.Request) *harness.Page {
	t.Helper()
	p, err := b.try(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return p
}

// try sends req and reads the answer; the error is a transport error.
func (b *browser) try(req *http.Request) (*harness.Page, error) {
	if b.user != "" {
		req.Header.Set(userHeader, b.user)
	}
	req.Header.Set("X-Forwarded-For", b.ip)
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return &harness.Page{Status: resp.StatusCode, URL: req.URL, Header: resp.Header, Body: string(body)}, nil
}

// challenge opens the challenge page of apps/admin on server base for rd.
func (b *browser) challenge(t testing.TB, base, rd string) *harness.Page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+policyPath+"?rd="+url.QueryEscape(rd), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

// submit posts a form of a page to server base (whichever replica showed
// it), with its fields overridden by values.
func (b *browser) submit(t testing.TB, base string, f harness.Form, values map[string]string) *harness.Page {
	t.Helper()
	req := b.formRequest(t, base, f, values)
	return b.do(t, req)
}

func (b *browser) formRequest(t testing.TB, base string, f harness.Form, values map[string]string) *http.Request {
	t.Helper()
	v := f.Values(values)
	action, err := url.Parse(f.Action)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	action.Scheme, action.Host = target.Scheme, target.Host
	req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// auth asks server base about a GET of the app's path, as nginx does, with
// this browser's cookies.
func (b *browser) auth(t testing.TB, base, path string) *harness.Page {
	t.Helper()
	p, err := b.tryAuth(base, path)
	if err != nil {
		t.Fatalf("auth %s: %v", path, err)
	}
	return p
}

func (b *browser) tryAuth(base, path string) (*harness.Page, error) {
	req, err := http.NewRequest(http.MethodGet, base+authPath, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Original-URL", rdFor(path))
	req.Header.Set("X-Original-Method", http.MethodGet)
	// The jar adds the browser's cookies (those of 127.0.0.1; nginx would
	// pass the app host's, the same ones with a cookie domain).
	return b.try(req)
}

// cookie returns the value of this browser's cookie called name.
func (b *browser) cookie(base, name string) string {
	u, _ := url.Parse(base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// enrol walks the user through enrolment on server base: the QR code is
// read with zbarimg, the first code comes from oathtool. It returns the
// authenticator app's account and the recovery codes.
func (b *browser) enrol(t testing.TB, base string) (*harness.OTP, []string) {
	t.Helper()
	g := NewWithT(t)
	p := b.challenge(t, base, rdFor("/reports"))
	g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
	otp := scanEnrolment(t, p)
	code, _ := otp.NextCode(t)
	p = b.submit(t, base, p.FormWith(t, "code"), map[string]string{"code": code})
	g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
	codes := p.Texts("ol", "codes", "li")
	g.Expect(codes).To(HaveLen(10), "%s", p.Body)
	return otp, codes
}

// scanEnrolment reads the enrolment page's QR code as a phone would.
func scanEnrolment(t testing.TB, p *harness.Page) *harness.OTP {
	t.Helper()
	src := p.Find("img", "qr", "src")
	meta, data, ok := strings.Cut(strings.TrimPrefix(src, "data:"), ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		t.Fatalf("no QR code on the page (status %d):\n%s", p.Status, p.Body)
	}
	png, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	return harness.ParseOTPAuth(t, harness.DecodeQR(t, png))
}

// verifyForm opens the code form of an enrolled user on server base.
func (b *browser) verifyForm(t testing.TB, base string) harness.Form {
	t.Helper()
	p := b.challenge(t, base, rdFor("/reports"))
	NewWithT(t).Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
	NewWithT(t).Expect(p.Has("img", "qr")).To(BeFalse(), "an enrolled user gets the code form, not an enrolment")
	return p.FormWith(t, "code")
}

// outcome names what a code submission got, for counting.
func outcome(p *harness.Page) string {
	switch {
	case p.Status == http.StatusSeeOther && p.Header.Get("Location") == rdFor("/reports"):
		return "accepted"
	case p.Status == http.StatusUnprocessableEntity && strings.Contains(p.Body, "already used"):
		return "reused"
	case p.Status == http.StatusUnprocessableEntity && strings.Contains(p.Body, "not right"):
		return "invalid"
	case p.Status == http.StatusTooManyRequests && strings.Contains(p.Body, "Too many attempts. For your security"):
		return "locked"
	case p.Status == http.StatusServiceUnavailable && strings.Contains(p.Body, "Please try again"):
		return "try-again"
	}
	return fmt.Sprintf("status %d", p.Status)
}

// wrongCode returns another code of the same length.
func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// race runs f(0..n-1) at once and waits for all.
func race(n int, f func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// eventually polls f every 100ms until it returns true or d passes.
func eventually(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustParseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
