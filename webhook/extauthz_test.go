package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc/codes"

	"github.com/mfa-operator/mfa-operator/internal/session"
)

// extAuthzRequest is what Envoy's http_service (path_prefix
// /ext-authz/apps/admin) sends for a request of a browser to
// https://admin.example.com: the original method, the original path and
// query after the prefix, the original Host, the headers it is told to
// pass (cookie, accept, x-forwarded-for, x-forwarded-proto, the identity
// header), from the trusted proxy. A header given as "" is left out.
func extAuthzRequest(method, target string, headers map[string]string) *http.Request {
	r := httptest.NewRequest(method, "/", nil)
	r.RequestURI = target // as sent: httptest would parse and keep it, but not every form
	r.URL, _ = url.ParseRequestURI(target)
	if r.URL == nil {
		r.URL = &url.URL{Path: "/"}
	}
	r.RemoteAddr = coreProxyAddr
	r.Host = "admin.example.com"
	r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-For", "198.51.100.20")
	r.Header.Set("X-Auth-Request-Email", ana)
	for k, v := range headers {
		if k == "Host" {
			r.Host = v
			continue
		}
		if v == "" {
			r.Header.Del(k)
			continue
		}
		// "a\x00b": the header sent twice.
		r.Header[http.CanonicalHeaderKey(k)] = strings.Split(v, "\x00")
	}
	return r
}

const challengeOf = "https://auth.example.com/challenge/apps/admin?rd="

func TestExtAuthzHTTP(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	remembered := cookieNamed(f.issue(headerIdentity(ana), "apps", "admin", "billing", "apps/google-authenticator", session.Verified), session.RememberCookieName)
	tests := []struct {
		name     string
		method   string
		target   string
		headers  map[string]string
		remote   string
		cookie   *http.Cookie
		wantCode int
		// wantLocation is the whole Location of a 302.
		wantLocation string
		// wantBody is a part of a 403's body.
		wantBody string
	}{
		{name: "allowed by a rule: 200 (never 202) with the user", target: "/ext-authz/apps/admin/public/logo.png", wantCode: http.StatusOK},
		{name: "a remembered browser: 200 with the factor", target: "/ext-authz/apps/admin/billing?id=1", cookie: remembered, wantCode: http.StatusOK},
		{name: "a second factor is missing: 302 to the challenge, rd the original URL with its query", target: "/ext-authz/apps/admin/billing?id=1&x=%2F",
			wantCode: http.StatusFound, wantLocation: challengeOf + url.QueryEscape("https://admin.example.com/billing?id=1&x=%2F")},
		{name: "no path after the policy: the original path is /", target: "/ext-authz/apps/admin",
			wantCode: http.StatusFound, wantLocation: challengeOf + url.QueryEscape("https://admin.example.com/")},
		{name: "only a query after the policy", target: "/ext-authz/apps/admin?a=1",
			wantCode: http.StatusFound, wantLocation: challengeOf + url.QueryEscape("https://admin.example.com/?a=1")},
		{name: "the scheme from X-Forwarded-Proto", target: "/ext-authz/apps/admin/billing", headers: map[string]string{"X-Forwarded-Proto": "http"},
			wantCode: http.StatusFound, wantLocation: challengeOf + url.QueryEscape("http://admin.example.com/billing")},
		{name: "no identity: 302 to the challenge", target: "/ext-authz/apps/admin/billing", headers: map[string]string{"X-Auth-Request-Email": ""},
			wantCode: http.StatusFound, wantLocation: challengeOf + url.QueryEscape("https://admin.example.com/billing")},
		{name: "denied by a rule: 403", target: "/ext-authz/apps/admin/billing", headers: map[string]string{"X-Auth-Request-Groups": "blocked"},
			wantCode: http.StatusForbidden, wantBody: "forbidden"},
		{name: "the original method is the request's own", method: http.MethodOptions, target: "/ext-authz/apps/admin/anything", wantCode: http.StatusOK},

		// The client address.
		{name: "X-Forwarded-For of a trusted proxy names the client", target: "/ext-authz/apps/admin/billing",
			headers: map[string]string{"X-Forwarded-For": "10.1.2.3"}, wantCode: http.StatusOK},
		{name: "X-Forwarded-For: the right-most untrusted address, not one the client wrote", target: "/ext-authz/apps/admin/billing",
			headers: map[string]string{"X-Forwarded-For": "10.1.2.3, 198.51.100.20"}, wantCode: http.StatusFound,
			wantLocation: challengeOf + url.QueryEscape("https://admin.example.com/billing")},
		// Without a client address the network rule cannot be evaluated: closed.
		{name: "X-Envoy-External-Address is not read over HTTP: a gateway may pass on the client's own", target: "/ext-authz/apps/admin/billing",
			headers: map[string]string{"X-Forwarded-For": "", "X-Envoy-External-Address": "10.1.2.3"}, wantCode: http.StatusForbidden},
		{name: "X-Forwarded-For wins over X-Envoy-External-Address", target: "/ext-authz/apps/admin/billing",
			headers: map[string]string{"X-Envoy-External-Address": "10.1.2.3"}, wantCode: http.StatusFound,
			wantLocation: challengeOf + url.QueryEscape("https://admin.example.com/billing")},
		{name: "an untrusted peer's spoofed X-Forwarded-For: refused", target: "/ext-authz/apps/admin/billing", remote: coreClientAddr,
			headers: map[string]string{"X-Forwarded-For": "10.1.2.3"}, wantCode: http.StatusForbidden, wantBody: "--trusted-proxies"},
		{name: "an untrusted peer's X-Envoy-External-Address: refused", target: "/ext-authz/apps/admin/public/", remote: coreClientAddr,
			headers: map[string]string{"X-Forwarded-For": "", "X-Envoy-External-Address": "10.1.2.3"}, wantCode: http.StatusForbidden},

		// Paths servers read differently.
		{name: "an encoded slash", target: "/ext-authz/apps/admin/public%2F..%2Fbilling", wantCode: http.StatusForbidden, wantBody: "encoded slash"},
		{name: "a dot segment, not cleaned by the mux", target: "/ext-authz/apps/admin/public/../billing", wantCode: http.StatusForbidden, wantBody: "dot segment"},
		{name: "an encoded dot segment", target: "/ext-authz/apps/admin/public/%2e%2e/billing", wantCode: http.StatusForbidden},
		{name: "a path parameter", target: "/ext-authz/apps/admin/public;x=1/../billing", wantCode: http.StatusForbidden},
		{name: "a backslash", target: "/ext-authz/apps/admin/public\\..\\billing", wantCode: http.StatusForbidden},
		{name: "double encoding", target: "/ext-authz/apps/admin/public/%252e%252e/billing", wantCode: http.StatusForbidden},
		{name: "a percent-encoded path that reads plainly is judged decoded", target: "/ext-authz/apps/admin/%70ublic/x", wantCode: http.StatusOK},

		// Hosts.
		{name: "a host with a port is judged by its name", target: "/ext-authz/apps/admin/public/", headers: map[string]string{"Host": "admin.example.com:8443"}, wantCode: http.StatusOK},
		{name: "a host with a trailing dot is the same host", target: "/ext-authz/apps/admin/public/", headers: map[string]string{"Host": "ADMIN.example.com."}, wantCode: http.StatusOK},
		{name: "a host the policy does not list", target: "/ext-authz/apps/admin/public/", headers: map[string]string{"Host": "evil.example"}, wantCode: http.StatusForbidden},
		{name: "a host with userinfo", target: "/ext-authz/apps/admin/public/", headers: map[string]string{"Host": "evil.example@admin.example.com"}, wantCode: http.StatusForbidden},
		{name: "no host", target: "/ext-authz/apps/admin/public/", headers: map[string]string{"Host": ""}, wantCode: http.StatusForbidden},

		// Attempts at an open redirect through rd.
		{name: "a path that is a network-path reference", target: "/ext-authz/apps/admin//evil.example/x", wantCode: http.StatusForbidden},
		{name: "a host naming another site after a slash", target: "/ext-authz/apps/admin/x", headers: map[string]string{"Host": "admin.example.com/evil.example"}, wantCode: http.StatusForbidden},
		{name: "a scheme that is not http(s)", target: "/ext-authz/apps/admin/x", headers: map[string]string{"X-Forwarded-Proto": "javascript"}, wantCode: http.StatusForbidden},
		{name: "X-Forwarded-Proto twice, different", target: "/ext-authz/apps/admin/x", headers: map[string]string{"X-Forwarded-Proto": "http\x00https"},
			wantCode: http.StatusForbidden, wantBody: "more than once"},

		// The policy in the path.
		{name: "an unknown policy", target: "/ext-authz/apps/nope/public/", wantCode: http.StatusForbidden, wantBody: "no MFAPolicy apps/nope"},
		{name: "a path without a policy", target: "/ext-authz/apps", wantCode: http.StatusForbidden, wantBody: "/ext-authz/{namespace}/{policy}"},
		{name: "a policy segment with escapes", target: "/ext-authz/apps/%61dmin/public/", wantCode: http.StatusForbidden},
		{name: "a policy segment that is a dot segment", target: "/ext-authz/apps/../admin/public/", wantCode: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := extAuthzRequest(method, tt.target, tt.headers)
			if tt.remote != "" {
				r.RemoteAddr = tt.remote
			}
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			w := f.serve(r)
			g.Expect(w.Code).To(Equal(tt.wantCode), w.Body.String())
			switch tt.wantCode {
			case http.StatusOK:
				g.Expect(w.Header().Get(headerUser)).To(Equal(ana))
				if tt.cookie != nil {
					g.Expect(w.Header().Get(headerMultifactor)).To(Equal("google-authenticator"))
				}
			case http.StatusFound:
				g.Expect(w.Header().Get("Location")).To(Equal(tt.wantLocation))
				g.Expect(w.Header().Get("Cache-Control")).To(Equal("no-store"))
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
			default:
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
				g.Expect(w.Header().Get("Location")).To(BeEmpty())
				g.Expect(w.Body.String()).To(ContainSubstring(tt.wantBody))
			}
		})
	}
}

// An API client (not a browser navigation) gets a 401 it can act on from
// the dialects that otherwise redirect: never a 302 to an HTML page.
func TestAPIClientsGetAProblemDocument(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	remembered := cookieNamed(f.issue(headerIdentity(ana), "apps", "admin", "billing", "apps/google-authenticator", session.Verified), session.RememberCookieName)
	wantChallenge := challengeOf + url.QueryEscape("https://admin.example.com/billing?id=1")
	forwardAuth := func(h map[string]string) *http.Request {
		m := map[string]string{"X-Auth-Request-Email": ana, "X-Forwarded-Uri": "/billing?id=1"}
		for k, v := range h {
			m[k] = v
		}
		return forwardAuthRequest("/forward-auth/apps/admin", m)
	}
	extAuthz := func(h map[string]string) *http.Request {
		return extAuthzRequest(http.MethodGet, "/ext-authz/apps/admin/billing?id=1", h)
	}
	for _, dl := range []struct {
		name    string
		request func(map[string]string) *http.Request
	}{{"forward-auth", forwardAuth}, {"ext-authz", extAuthz}} {
		for _, tt := range []struct {
			name    string
			headers map[string]string
			api     bool
		}{
			{"Accept without text/html", map[string]string{"Accept": "application/json"}, true},
			{"Accept */*, as curl sends", map[string]string{"Accept": "*/*"}, true},
			{"X-Requested-With", map[string]string{"X-Requested-With": "XMLHttpRequest"}, true},
			{"a bearer token without cookies", map[string]string{"Accept": "", "Authorization": "Bearer abc.def.ghi"}, true},
			{"a browser navigation", map[string]string{"Accept": "text/html,*/*;q=0.8"}, false},
			{"a bearer token with cookies and Accept text/html", map[string]string{"Accept": "TEXT/HTML", "Authorization": "bearer x", "Cookie": "theme=dark"}, false},
			{"no Accept at all", map[string]string{"Accept": ""}, false},
		} {
			t.Run(dl.name+"/"+tt.name, func(t *testing.T) {
				g := NewWithT(t)
				w := f.serve(dl.request(tt.headers))
				if !tt.api {
					g.Expect(w.Code).To(Equal(http.StatusFound), w.Body.String())
					g.Expect(w.Header().Get("Location")).To(Equal(wantChallenge))
					return
				}
				g.Expect(w.Code).To(Equal(http.StatusUnauthorized), w.Body.String())
				g.Expect(w.Header().Get("Location")).To(BeEmpty())
				g.Expect(w.Header().Get("WWW-Authenticate")).To(Equal(`MFA realm="apps/admin", uri="` + wantChallenge + `"`))
				g.Expect(w.Header().Get("Content-Type")).To(Equal("application/problem+json"))
				var p map[string]any
				g.Expect(json.Unmarshal(w.Body.Bytes(), &p)).To(Succeed(), w.Body.String())
				g.Expect(p).To(HaveKeyWithValue("type", problemSecondFactor))
				g.Expect(p).To(HaveKeyWithValue("status", BeNumerically("==", 401)))
				g.Expect(p).To(HaveKeyWithValue("challenge_url", wantChallenge))
				g.Expect(p).To(HaveKeyWithValue("policy", "apps/admin"))
				g.Expect(p["title"]).NotTo(BeEmpty())
			})
		}
		t.Run(dl.name+"/an API client that is allowed gets 200", func(t *testing.T) {
			g := NewWithT(t)
			r := dl.request(map[string]string{"Accept": "application/json"})
			r.AddCookie(remembered)
			g.Expect(f.serve(r).Code).To(Equal(http.StatusOK))
		})
		t.Run(dl.name+"/an API client without identity is told to authenticate", func(t *testing.T) {
			g := NewWithT(t)
			w := f.serve(dl.request(map[string]string{"Accept": "application/json", "X-Auth-Request-Email": ""}))
			g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
			g.Expect(w.Body.String()).To(ContainSubstring("Authentication is required"))
		})
	}
	t.Run("/auth keeps its 401 with Location, which nginx turns into its own redirect", func(t *testing.T) {
		g := NewWithT(t)
		w := f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/billing?id=1",
			map[string]string{"X-Auth-Request-Email": ana, "Accept": "application/json"}))
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(w.Header().Get("Location")).To(Equal(wantChallenge))
	})
}

// A rule reads request.interactive: here API clients are denied the API
// outright, browsers are asked for a second factor.
func TestRulesReadInteractive(t *testing.T) {
	f := newCoreServer(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: admin, namespace: apps }
spec:
  hosts: [admin.example.com]
  identity: { header: {} }
  rules:
  - name: api-clients
    when: '!request.interactive && request.path.startsWith("/api/")'
    action: Deny
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`)
	g := NewWithT(t)
	w := f.serve(extAuthzRequest(http.MethodGet, "/ext-authz/apps/admin/api/items", map[string]string{"Accept": "application/json"}))
	g.Expect(w.Code).To(Equal(http.StatusForbidden), w.Body.String())
	w = f.serve(extAuthzRequest(http.MethodGet, "/ext-authz/apps/admin/api/items", nil))
	g.Expect(w.Code).To(Equal(http.StatusFound), w.Body.String())
	g.Expect(strings.HasPrefix(w.Header().Get("Location"), challengeOf)).To(BeTrue())
}

// TestEveryDialectGivesTheRulesTheURL: request.url is the original URL
// whichever dialect asked, also when it came in parts (Host and path,
// X-Forwarded-Host and -Uri, a Check's attributes), and the challenge's
// rd is that URL.
func TestEveryDialectGivesTheRulesTheURL(t *testing.T) {
	f := newCoreServer(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: admin, namespace: apps }
spec:
  hosts: [admin.example.com]
  identity: { header: {} }
  rules:
  - name: this-url
    when: 'request.url == "https://admin.example.com/a/b?q=1&r=%2F"'
    action: Allow
  - name: plain-url
    when: 'request.url == "https://admin.example.com:8443/reports?page=2"'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
  default: Deny
`, trustLoopback)
	const escaped, plain = "/a/b?q=1&r=%2F", "/reports?page=2"
	client := authv3.NewAuthorizationClient(serveGRPC(t, f))
	for _, tt := range []struct {
		name string
		ask  func(target, host string) int
	}{
		{"auth", func(target, host string) int {
			return f.serve(authRequest("/auth/apps/admin", "https://"+host+target, map[string]string{"X-Auth-Request-Email": ana})).Code
		}},
		{"forward-auth", func(target, host string) int {
			return f.serve(forwardAuthRequest("/forward-auth/apps/admin", map[string]string{"X-Forwarded-Host": host, "X-Forwarded-Uri": target, "Accept": "text/html", "X-Auth-Request-Email": ana})).Code
		}},
		{"ext-authz", func(target, host string) int {
			return f.serve(extAuthzRequest(http.MethodGet, "/ext-authz/apps/admin"+target, map[string]string{"Host": host})).Code
		}},
		{"check", func(target, host string) int {
			resp, err := client.Check(t.Context(), envoyCheck(target, map[string]string{":authority": host}, map[string]string{policyExtension: "apps/admin"}))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStatus().GetCode() == int32(codes.OK) {
				return http.StatusOK
			}
			return int(resp.GetDeniedResponse().GetStatus().GetCode())
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.ask(escaped, "admin.example.com")).To(Equal(http.StatusOK))
			challenged := http.StatusFound
			if tt.name == "auth" {
				challenged = http.StatusUnauthorized
			}
			g.Expect(tt.ask(plain, "admin.example.com:8443")).To(Equal(challenged))
			g.Expect(tt.ask("/other", "admin.example.com")).To(Equal(http.StatusForbidden))
		})
	}
	// The challenge's rd is the URL the front door asked about.
	w := f.serve(extAuthzRequest(http.MethodGet, "/ext-authz/apps/admin"+plain, map[string]string{"Host": "admin.example.com:8443"}))
	NewWithT(t).Expect(w.Header().Get("Location")).To(Equal(challengeOf + url.QueryEscape("https://admin.example.com:8443"+plain)))
}
