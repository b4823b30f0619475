package webhook

import (
	"bufio"
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/source"
)

// Known bypass classes of auth proxies, tried against the real handler
// (and, for what only a socket shows, a real listener). Redirect
// encodings are tested on the sanitizer in redirect_test.go; here they go
// through the pages, to check every place rd comes out. JWT attacks (alg
// none, HS256 with the public key, wrong audience or issuer, expired, a
// key not in the JWKS) are in jwt_test.go (TestJWTIdentity).

// redirectTricks are rd values that try to leave the declared hosts.
var redirectTricks = []string{
	"https://evil.com/", "//evil.com/", "///evil.com", "/\\evil.com", "\\/evil.com", "/%2f%2fevil.com", "/%252f%252fevil.com",
	"https://admin.example.com@evil.com/", "https://admin.example.com%40evil.com/",
	"https://evil.com#@admin.example.com", "https://evil.com?@admin.example.com", "https://evil.com#.admin.example.com",
	"https://evil.com%23@admin.example.com", "https://evil.com\\@admin.example.com", "https://evil.com/%2e%2e/admin.example.com",
	"HTTPS://EVIL.COM/", "hTtPs:evil.com", "https:/evil.com", " https://evil.com", "https://evil.com\t", "/\t/evil.com", "/%09/evil.com",
	"https://аdmin.example.com/", "https://admin.example.com.evil.com/", "https://evil.com／admin.example.com", "https://evil．com/",
	"javascript:alert(document.domain)//admin.example.com", "data:text/html,<script>alert(1)</script>", "https://evil.com%2eadmin.example.com",
	"/https://evil.com", "https://admin.example.com:443\\@evil.com", "https://admin.example.com\r\nLocation: https://evil.com",
}

var (
	urlAttrRE = regexp.MustCompile(`(?:href|action)="([^"]*)"`)
	rdFieldRE = regexp.MustCompile(`<input type="hidden" name="rd" value="([^"]*)">`)
)

// allowedTarget says whether u (resolved against the challenge server)
// stays on the challenge server, the policy's host or the cookie domain,
// and so does its rd parameter when it has one.
func allowedTarget(raw string) error {
	base, _ := url.Parse("https://auth.example.com/challenge/apps/admin")
	u, err := base.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q does not parse: %v", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme %q", raw, u.Scheme)
	}
	h := u.Hostname()
	if u.User != nil || (h != "example.com" && !strings.HasSuffix(h, ".example.com")) {
		return fmt.Errorf("%q leads to host %q", raw, u.Host)
	}
	if rd := u.Query().Get("rd"); rd != "" {
		return allowedTarget(rd)
	}
	return nil
}

func TestHostileRedirectsThroughThePagesNeverLeaveTheDeclaredHosts(t *testing.T) {
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	for _, rd := range redirectTricks {
		t.Run(rd, func(t *testing.T) {
			g := NewWithT(t)
			f.clock.Advance(2 * time.Minute) // a fresh code, and the form limit refilled
			b := f.browser(challengeUser)
			w := b.get(challengeURL(rd))
			g.Expect(w.Code).To(Equal(http.StatusOK))
			body := w.Body.String()
			targets := urlAttrRE.FindAllStringSubmatch(body, -1)
			g.Expect(targets).NotTo(BeEmpty())
			for _, m := range append(targets, rdFieldRE.FindAllStringSubmatch(body, -1)...) {
				if m[1] == "data:," { // the empty favicon of the layout
					continue
				}
				g.Expect(allowedTarget(html.UnescapeString(m[1]))).To(Succeed())
			}
			for _, src := range strings.Fields(w.Header().Get("Content-Security-Policy")) {
				if strings.Contains(src, "://") {
					g.Expect(allowedTarget(strings.TrimSuffix(src, ";"))).To(Succeed(), "CSP source %s", src)
				}
			}
			// The form as shown, then as edited to carry the trick.
			for _, formRD := range []string{b.form("/verify").Get("rd"), rd} {
				f.clock.Advance(2 * time.Minute)
				w = b.get(challengeURL(rd))
				w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}, "rd": {formRD}})
				g.Expect(w.Code).To(Equal(http.StatusSeeOther), "%s", w.Body.String())
				g.Expect(allowedTarget(w.Header().Get("Location"))).To(Succeed())
			}
		})
	}
}

// Redirect classes redirect_test.go does not list: a foreign host hidden
// in front of a fragment or a query, and dots other than the ASCII one.
func TestSanitizeRedirectRefusesHostsHiddenBeforeFragmentsAndQueries(t *testing.T) {
	g := NewWithT(t)
	for _, rd := range []string{
		"https://evil.com#@admin.example.com", "https://evil.com#.admin.example.com", "https://evil.com/#admin.example.com",
		"https://evil.com?@admin.example.com", "https://evil.com?.admin.example.com/", "https://evil.com%23@admin.example.com",
		"https://evil.com%3F.admin.example.com", "https://evil．com/", "https://evil｡com/", "https://admin.example.com．evil.com/",
	} {
		g.Expect(testRedirectTargets.sanitize(rd)).To(Equal(redirectFallback), "rd %q", rd)
	}
	// A fragment or query after a declared host is the app's business.
	g.Expect(testRedirectTargets.sanitize("https://admin.example.com/#@evil.com")).To(Equal("https://admin.example.com/#@evil.com"))
	g.Expect(testRedirectTargets.sanitize("https://admin.example.com/?next=@evil.com")).To(Equal("https://admin.example.com/?next=@evil.com"))
}

// spoofHeaders are what a client may send to look like someone else,
// somewhere else, or a request it is not.
var spoofHeaders = map[string]string{
	"X-Real-IP":            "10.1.2.3",
	"X-Forwarded-For":      "10.1.2.3",
	"Forwarded":            "for=10.1.2.3;host=admin.example.com;proto=https",
	"X-Forwarded-Host":     "admin.example.com",
	"X-Forwarded-Proto":    "https",
	"X-Forwarded-Uri":      "/public/x",
	"X-Forwarded-Method":   "GET",
	"True-Client-IP":       "10.1.2.3",
	"X-Client-IP":          "10.1.2.3",
	"CF-Connecting-IP":     "10.1.2.3",
	"X-Original-URL":       "https://admin.example.com/public/x",
	"X-Rewrite-URL":        "/public/x",
	"X-Auth-Request-Email": ana,
}

func TestHostileForwardedHeadersFromAnUntrustedPeerAreRefused(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	for name := range spoofHeaders {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			// Everything a trusted front door would send, and a valid cookie:
			// from an untrusted peer none of it counts.
			r := withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/public/x", map[string]string{"X-Auth-Request-Email": ana}), cookies...)
			r.Header.Set(name, spoofHeaders[name])
			r.RemoteAddr = coreClientAddr
			for _, path := range []string{"/auth/apps/admin", "/auth"} {
				r.URL.Path = path
				w := f.serve(r)
				g.Expect(w.Code).To(Equal(http.StatusForbidden), path)
				g.Expect(w.Body.String()).To(ContainSubstring("not in --trusted-proxies"))
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
				g.Expect(w.Header().Get(headerAssertion)).To(BeEmpty())
			}
		})
	}
}

func TestHostileClientAddressHeadersTheServerDoesNotRead(t *testing.T) {
	// The vpn rule allows 10.0.0.0/8 without a second factor; the front
	// door itself lives in 10.9.0.0/16.
	f := newCoreServer(t, coreAdminPolicyYAML)
	for _, name := range []string{"Forwarded", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP", "X-Cluster-Client-IP"} {
		t.Run(name+" is not believed, even from the trusted proxy", func(t *testing.T) {
			g := NewWithT(t)
			r := authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana, name: spoofHeaders["True-Client-IP"]})
			w := f.serve(r) // X-Forwarded-For: 198.51.100.20, set by the proxy
			g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		})
	}
	t.Run("a trusted proxy that names no client does not make the client look like the proxy", func(t *testing.T) {
		g := NewWithT(t)
		r := authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana})
		r.Header.Del("X-Forwarded-For")
		w := f.serve(r)
		g.Expect(w.Code).NotTo(Equal(http.StatusOK), "the proxy's own 10.9.0.2 must not match the vpn rule")
		g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	})
	t.Run("left-most X-Forwarded-For hops written by the client are not believed", func(t *testing.T) {
		g := NewWithT(t)
		r := authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana})
		r.Header.Del("X-Forwarded-For")
		r.Header["X-Forwarded-For"] = []string{"10.1.2.3", "10.1.2.3, 198.51.100.20"}
		g.Expect(f.serve(r).Code).To(Equal(http.StatusUnauthorized))
	})
}

func TestHostileSpoofedAddressesDoNotDodgeTheFormRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer string
		vary func(r *http.Request, i int)
	}{
		{"an untrusted peer rotating X-Real-IP and X-Forwarded-For", "203.0.113.9:5000", func(r *http.Request, i int) {
			r.Header.Set("X-Real-IP", fmt.Sprintf("198.51.100.%d", i))
			r.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
		}},
		{"a client rotating the left-most X-Forwarded-For hop through the trusted proxy", challengeProxyAddr, func(r *http.Request, i int) {
			r.Header.Del("X-Forwarded-For")
			r.Header["X-Forwarded-For"] = []string{fmt.Sprintf("192.0.2.%d, 198.51.100.20", i)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newChallengeFixture(t)
			b := f.browser(challengeUser)
			b.get(challengeURL(challengeRD))
			form := b.form("/enroll")
			form.Set("code", "x")
			var last *httptest.ResponseRecorder
			for i := range ratelimit.Default.Burst + 1 {
				r := httptest.NewRequest(http.MethodPost, "https://auth.example.com"+challengePath+"/enroll", strings.NewReader(form.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("X-Auth-Request-Email", challengeUser)
				tc.vary(r, i)
				r.RemoteAddr = tc.peer
				last = httptest.NewRecorder()
				f.s.handler.ServeHTTP(last, r)
				if i < ratelimit.Default.Burst {
					g.Expect(last.Code).NotTo(Equal(http.StatusTooManyRequests), "submission %d", i+1)
				}
			}
			g.Expect(last.Code).To(Equal(http.StatusTooManyRequests))
		})
	}
}

func TestHostileDuplicatedHeadersAreNotPickedFrom(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	tests := []struct {
		name   string
		header string
		values []string
		// want: the answer; body, when set, a part of a 403's body.
		want int
		body string
		// noCookie: ana's cookies are not sent.
		noCookie bool
	}{
		{"X-Original-URL twice, denied path first", "X-Original-Url", []string{"https://admin.example.com/blocked", "https://admin.example.com/public/x"}, http.StatusForbidden, "X-Original-URL is sent more than once", false},
		{"X-Original-URL twice, open path first", "X-Original-Url", []string{"https://admin.example.com/public/x", "https://admin.example.com/billing"}, http.StatusForbidden, "X-Original-URL is sent more than once", false},
		{"X-Original-Method twice", "X-Original-Method", []string{"OPTIONS", "GET"}, http.StatusForbidden, "X-Original-Method is sent more than once", false},
		{"the user header twice, another user first", "X-Auth-Request-Email", []string{"mallory@example.com", ana}, http.StatusUnauthorized, "", false},
		{"the user header twice, the cookie's user first", "X-Auth-Request-Email", []string{ana, "mallory@example.com"}, http.StatusUnauthorized, "", false},
		{"X-Real-IP twice, a VPN address first (not believed anyway by default)", "X-Real-Ip", []string{"10.1.2.3", "198.51.100.20"}, http.StatusUnauthorized, "", true},
		{"the same X-Original-URL twice is one", "X-Original-Url", []string{"https://admin.example.com/billing", "https://admin.example.com/billing"}, http.StatusOK, "", false},
		{"the same user header twice is one", "X-Auth-Request-Email", []string{ana, " " + ana}, http.StatusOK, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana})
			r.Header.Set("X-Forwarded-For", "198.51.100.20")
			r.Header[tt.header] = tt.values
			if !tt.noCookie {
				r = withCookies(r, cookies...)
			}
			w := f.serve(r)
			g.Expect(w.Code).To(Equal(tt.want), w.Body.String())
			g.Expect(w.Body.String()).To(ContainSubstring(tt.body))
			if tt.want != http.StatusOK {
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
			}
		})
	}
	t.Run("two bearer tokens of different users", func(t *testing.T) {
		g := NewWithT(t)
		idp := newCoreIssuer(t)
		f := newCoreServer(t, coreProvidersYAML+idp.policyYAML(coreJWTRules))
		idp.clock = f.clock
		ops := func(sub string) string {
			return idp.sign(t, jwt.MapClaims{"sub": sub, "email": ana, "groups": []string{"ops"}, "amr": []string{"pwd"}})
		}
		r := authRequest("/auth/apps/jwt-app", "https://app.example.com/", nil)
		r.Header["Authorization"] = []string{"Bearer " + ops("ana")}
		g.Expect(f.serve(r).Code).To(Equal(http.StatusOK), "one token")
		r.Header["Authorization"] = []string{"Bearer " + ops("mallory"), "Bearer " + ops("ana")}
		w := f.serve(r)
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	})
}

func TestHostileCELRuntimeCostLimitFailsClosed(t *testing.T) {
	g := NewWithT(t)
	// Seven comparisons per group: cheap for the cost estimate, which
	// assumes at most 256 groups, too expensive at run time for 16000.
	f := newCoreServer(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: groups, namespace: apps }
spec:
  identity: { header: { groups: X-Auth-Request-Groups } }
  rules:
  - name: short-groups
    when: 'user.groups.all(g, g.size() < 10 && g.size() < 11 && g.size() < 12 && g.size() < 13 && g.size() < 14 && g.size() < 15 && g.size() < 16)'
    action: Allow
  default: Allow
`)
	few := authRequest("/auth/apps/groups", "https://app.example.com/", map[string]string{"X-Auth-Request-Email": ana, "X-Auth-Request-Groups": "a,b,c"})
	g.Expect(f.serve(few).Code).To(Equal(http.StatusOK))

	many := authRequest("/auth/apps/groups", "https://app.example.com/", map[string]string{"X-Auth-Request-Email": ana,
		"X-Auth-Request-Groups": strings.TrimSuffix(strings.Repeat("g,", 16000), ",")})
	w := f.serve(many)
	g.Expect(w.Code).To(Equal(http.StatusForbidden), "the default Allow must not apply when the rule cannot be evaluated")
	g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	g.Expect(f.logs.String()).To(And(ContainSubstring(`"rule":"short-groups"`), ContainSubstring("cost limit exceeded")))
}

// hostileListener serves a standalone server with the admin policy on
// 127.0.0.1, trusting 127.0.0.1 as its proxy, as Serve runs it (header
// limits, timeouts). It returns the address and the fixture.
func hostileListener(t *testing.T) (string, *coreFixture) {
	t.Helper()
	g := NewWithT(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	g.Expect(os.Mkdir(cfg, 0o755)).To(Succeed())
	writeFile(t, filepath.Join(cfg, "objects.yaml"), coreAdminPolicyYAML)
	f := newCoreServer(t, "", func(o *Options) {
		o.Source = &source.Dir{ConfigDir: cfg, DataDir: filepath.Join(dir, "data"), Log: o.Logger}
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		o.Now = nil
	})
	s, err := NewServer(f.s.opts)
	g.Expect(err).NotTo(HaveOccurred())
	f.s = s
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()
	g.Eventually(func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(http.StatusOK))
	return addr, f
}

// exchange writes raw bytes to the server and reads every answer until
// the server closes the connection or stays silent.
func exchange(t *testing.T, addr, raw string) []int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	// Nothing more will come: the server answers what it has and closes.
	_ = c.(*net.TCPConn).CloseWrite()
	var codes []int
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

const authHead = "GET /auth/apps/admin HTTP/1.1\r\nHost: auth.example.com\r\nX-Original-Method: GET\r\nX-Forwarded-For: 198.51.100.20\r\n"

func TestHostileRequestsOnTheWireNeverGet5xx(t *testing.T) {
	addr, _ := hostileListener(t)
	big := strings.Repeat("a", 40<<10)
	tests := []struct {
		name string
		raw  string
		// want are the acceptable answers, in order; nil: no answer at all.
		want [][]int
	}{
		{"a header over the limit", authHead + "X-Original-URL: https://admin.example.com/public/" + big + "\r\n\r\n", [][]int{{431}}},
		{"a cookie over the limit", authHead + "X-Original-URL: https://admin.example.com/billing\r\nCookie: mfa_session=" + big + "\r\n\r\n", [][]int{{431}}},
		{"many headers over the limit", authHead + strings.Repeat("X-Pad: "+strings.Repeat("p", 100)+"\r\n", 400) + "\r\n", [][]int{{431}}},
		{"fifty same-named cookies: looked at up to the limit, then a challenge", authHead + "X-Original-URL: https://admin.example.com/billing\r\nX-Auth-Request-Email: " + ana + "\r\nCookie: " + strings.Repeat("mfa_session=CAECAwQFBgcIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; ", 50) + "\r\n\r\n", [][]int{{401}}},
		{"a request line over the limit", "GET /auth/apps/admin?" + big + " HTTP/1.1\r\nHost: a\r\n\r\n", [][]int{{431}, {414}}},
		{"a long URL under the limit: judged", authHead + "X-Original-URL: https://admin.example.com/public/" + strings.Repeat("a", 20<<10) + "\r\n\r\n", [][]int{{401}}},
		// Transfer-Encoding wins (RFC 9112): the smuggled request is judged
		// on its own, without the front door's headers.
		{"Content-Length and Transfer-Encoding both", "POST /auth/apps/admin HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nX-Original-URL: https://admin.example.com/public/x\r\nX-Original-Method: GET\r\n\r\n0\r\n\r\nGET /auth/apps/admin HTTP/1.1\r\nHost: a\r\nX-Auth-Request-Email: " + ana + "\r\n\r\n", [][]int{{400}, {401, 403}}},
		{"two different Content-Lengths", "POST /auth/apps/admin HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 30\r\n\r\nx", [][]int{{400}}},
		{"an unknown transfer coding", "POST /auth/apps/admin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", [][]int{{400}, {501}}},
		// Folded lines are joined with a space (obs-fold); only the front
		// door sets X-Original-URL.
		{"a folded header line", authHead + "X-Original-URL: https://admin.example.com/billing\r\n /x\r\n\r\n", [][]int{{400}, {401}}},
		{"a NUL in a header value", authHead + "X-Original-URL: https://admin.example.com/public/x\x00/../../billing\r\n\r\n", [][]int{{400}}},
		{"a space before the colon", authHead + "X-Original-URL : https://admin.example.com/public/x\r\n\r\n", [][]int{{400}}},
		{"underscores instead of dashes", authHead + "X_Original_URL: https://admin.example.com/public/x\r\n\r\n", [][]int{{403}}},
		{"an identity header with underscores", authHead + "X-Original-URL: https://admin.example.com/billing\r\nX_Auth_Request_Email: " + ana + "\r\n\r\n", [][]int{{401}}},
		{"lower-case names are the same headers", "GET /auth/apps/admin HTTP/1.1\r\nhost: a\r\nx-original-url: https://admin.example.com/public/x\r\nx-original-method: GET\r\nx-forwarded-for: 198.51.100.20\r\nx-auth-request-email: " + ana + "\r\n\r\n", [][]int{{200}}},
		{"an absolute-form target for another host", "GET http://evil.com/auth/apps/admin HTTP/1.1\r\nHost: evil.com\r\nX-Original-URL: https://admin.example.com/billing\r\nX-Original-Method: GET\r\n\r\n", [][]int{{401}}},
		{"pipelined requests are answered one by one", authHead + "X-Original-URL: https://admin.example.com/billing\r\n\r\n" + authHead + "X-Original-URL: https://admin.example.com/public/x\r\nX-Auth-Request-Email: " + ana + "\r\n\r\n", [][]int{{401, 200}}},
		{"HTTP/1.0 without Host", "GET /auth/apps/admin HTTP/1.0\r\nX-Original-URL: https://admin.example.com/billing\r\nX-Original-Method: GET\r\n\r\n", [][]int{{401}}},
		{"a bad request line", "GET /auth/apps/admin\r\n\r\n", [][]int{{400}, nil}},
		{"not HTTP at all", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", [][]int{{400}, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			codes := exchange(t, addr, tt.raw)
			for _, c := range codes {
				g.Expect(c).NotTo(BeElementOf(500, 502, 503, 504), "answers %v", codes)
			}
			g.Expect(tt.want).To(ContainElement(Equal(codes)))
		})
	}
}
