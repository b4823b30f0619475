package webhook

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// benchWriter is a ResponseWriter that keeps nothing, so that benchmarks
// measure the handler, not a recorder.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

func (w *benchWriter) reset() {
	clear(w.h)
	w.code = 0
}

// benchPolicy is apps/bench with n rules, the first of which matches.
func benchPolicy(identity string, n int) string {
	var b strings.Builder
	b.WriteString(coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: bench, namespace: apps }
spec:
  hosts: [app.example.com]
  identity: ` + identity + `
  rules:
  - name: first
    when: 'request.host == "app.example.com" && !("contractors" in user.groups)'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - { name: r%d, when: 'request.path.startsWith(\"/p%d\")', action: Deny }\n", i, i)
	}
	return b.String()
}

func benchServe(b *testing.B, f *coreFixture, r *http.Request, want int) {
	b.Helper()
	h := f.s.handler
	w := &benchWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.code != want {
		b.Fatalf("status %d, want %d\n%s", w.code, want, f.logs.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, r)
	}
	if w.code != want {
		b.Fatalf("status %d, want %d", w.code, want)
	}
}

func benchFixture(b *testing.B, yaml string) *coreFixture {
	// Production logs at info: the hot path logs nothing then.
	return newCoreServer(b, yaml, func(o *Options) { o.Logger = discardLogger() })
}

func BenchmarkAuthRemembered(b *testing.B) {
	for _, kind := range []string{"header", "jwt"} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/rules=%d", kind, n), func(b *testing.B) {
				var f *coreFixture
				var r *http.Request
				id := &identity{User: policy.User{ID: ana, Email: ana, Groups: []string{"staff"}}, Source: sourceHeader}
				switch kind {
				case "header":
					f = benchFixture(b, benchPolicy("{ header: { groups: X-Auth-Request-Groups } }", n))
					r = authRequest("/auth/apps/bench", "https://app.example.com/reports/2026?page=2",
						map[string]string{"X-Auth-Request-Email": ana, "X-Auth-Request-Groups": "staff"})
				case "jwt":
					idp := newCoreIssuer(b)
					f = benchFixture(b, benchPolicy(`{ jwt: { issuer: "`+coreIssuerURL+`", audiences: [app], jwksURL: "`+idp.srv.URL+`" } }`, n))
					idp.clock = f.clock
					id.Source = sourceJWT
					tok := idp.sign(b, jwt.MapClaims{"sub": ana, "email": ana, "groups": []string{"staff"}, "exp": f.clock.Now().Add(time.Hour).Unix()})
					r = authRequest("/auth/apps/bench", "https://app.example.com/reports/2026?page=2",
						map[string]string{"Authorization": "Bearer " + tok})
					id.User.ID = ana
				}
				cookies := f.issue(id, "apps", "bench", "first", "apps/google-authenticator", session.Verified)
				withCookies(r, cookieNamed(cookies, session.RememberCookieName))
				r.Header.Add("Cookie", "_ga=GA1.2.3; theme=dark")
				benchServe(b, f, r, http.StatusOK)
			})
		}
	}
}

func BenchmarkAuthChallenge(b *testing.B) {
	f := benchFixture(b, benchPolicy("{ header: {} }", 10))
	r := authRequest("/auth/apps/bench", "https://app.example.com/reports/2026?page=2", map[string]string{"X-Auth-Request-Email": ana})
	benchServe(b, f, r, http.StatusUnauthorized)
}

func BenchmarkAuthByHost(b *testing.B) {
	f := benchFixture(b, benchPolicy("{ header: {} }", 10))
	cookies := f.issue(headerIdentity(ana), "apps", "bench", "first", "apps/google-authenticator", session.Verified)
	r := withCookies(authRequest("/auth", "https://app.example.com/reports/2026?page=2", map[string]string{"X-Auth-Request-Email": ana}),
		cookieNamed(cookies, session.RememberCookieName))
	benchServe(b, f, r, http.StatusOK)
}

func BenchmarkCELEval(b *testing.B) {
	f := benchFixture(b, benchPolicy("{ header: {} }", 1)+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: office, namespace: apps }
spec:
  identity: { header: {} }
  rules:
  - name: office-hours-from-vpn
    when: 'cidr("10.0.0.0/8").containsIP(ip(request.ip)) && request.time.getHours("Europe/Paris") in [8,9,10,11,12,13,14,15,16,17]'
    action: Allow
`)
	vars := &policy.Vars{
		User: &policy.User{ID: ana, Email: ana, Groups: []string{"staff"}},
		Request: &policy.Request{Host: "app.example.com", Path: "/reports", Method: "GET", Scheme: "https",
			URL: "https://app.example.com/reports", IP: "10.1.2.3", Time: f.clock.Now()},
	}
	for _, name := range []string{"bench", "office"} {
		p := f.s.config.snapshot().Policy("apps", name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r, err := p.Decide(vars); err != nil || r == nil {
					b.Fatal(r, err)
				}
			}
		})
	}
}

// BenchmarkEmptyHandler is the yardstick: an empty handler behind the same
// mux, called the same way.
func BenchmarkEmptyHandler(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth/{namespace}/{policy}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	r := authRequest("/auth/apps/bench", "https://app.example.com/", nil)
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		mux.ServeHTTP(w, r)
	}
}

// BenchmarkHTTP compares, over loopback HTTP/1.1 with keep-alive, an empty
// handler and the auth endpoint for a remembered user: the ratio is what a
// front door sees.
func BenchmarkHTTP(b *testing.B) {
	f := benchFixture(b, benchPolicy("{ header: { groups: X-Auth-Request-Groups } }", 10))
	cookies := f.issue(headerIdentity(ana), "apps", "bench", "first", "apps/google-authenticator", session.Verified)
	rem := cookieNamed(cookies, session.RememberCookieName)
	empty := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tt := range []struct {
		name    string
		handler http.Handler
	}{
		{"empty", limitBody(empty)},
		{"auth-remembered", limitBody(f.s.handler)},
		{"ext-authz-remembered", limitBody(f.s.handler)},
	} {
		b.Run(tt.name, func(b *testing.B) {
			srv := httptest.NewUnstartedServer(tt.handler)
			srv.Config.Addr = "127.0.0.1:0"
			srv.Start()
			defer srv.Close()
			// The proxy is the loopback peer here.
			f.s.pages.proxies.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			c := srv.Client()
			url := srv.URL + "/auth/apps/bench"
			if tt.name == "ext-authz-remembered" {
				url = srv.URL + "/ext-authz/apps/bench/reports/2026?page=2"
			}
			do := func() {
				r, _ := http.NewRequest(http.MethodGet, url, nil)
				if tt.name == "ext-authz-remembered" {
					r.Host = "app.example.com"
					r.Header.Set("X-Forwarded-Proto", "https")
				} else {
					r.Header.Set("X-Original-URL", "https://app.example.com/reports/2026?page=2")
					r.Header.Set("X-Original-Method", "GET")
				}
				r.Header.Set("X-Forwarded-For", "198.51.100.20")
				r.Header.Set("X-Auth-Request-Email", ana)
				r.Header.Set("X-Auth-Request-Groups", "staff")
				r.AddCookie(rem)
				resp, err := c.Do(r)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			do()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				do()
			}
		})
	}
}

// BenchmarkExtAuthzRemembered is BenchmarkAuthRemembered's header/rules=10
// through the Envoy ext_authz HTTP dialect: the original request is the
// auth request itself.
func BenchmarkExtAuthzRemembered(b *testing.B) {
	f := benchFixture(b, benchPolicy("{ header: { groups: X-Auth-Request-Groups } }", 10))
	cookies := f.issue(headerIdentity(ana), "apps", "bench", "first", "apps/google-authenticator", session.Verified)
	r := httptest.NewRequest(http.MethodGet, "/ext-authz/apps/bench/reports/2026?page=2", nil)
	r.RemoteAddr, r.Host = coreProxyAddr, "app.example.com"
	for k, v := range map[string]string{"X-Forwarded-For": "198.51.100.20", "X-Forwarded-Proto": "https",
		"X-Auth-Request-Email": ana, "X-Auth-Request-Groups": "staff", "Accept": "text/html"} {
		r.Header.Set(k, v)
	}
	withCookies(r, cookieNamed(cookies, session.RememberCookieName))
	r.Header.Add("Cookie", "_ga=GA1.2.3; theme=dark")
	benchServe(b, f, r, http.StatusOK)
}
