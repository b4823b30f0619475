package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

const ana = "ana@example.com"

// issue answers a second factor for user as the challenge pages do and
// returns the cookies set.
func (f *coreFixture) issue(id *identity, ns, name, ruleName, providerKey string, mode session.Mode, existing ...*http.Cookie) []*http.Cookie {
	f.t.Helper()
	sn := f.s.config.snapshot()
	e := sn.entry(ns, name)
	NewWithT(f.t).Expect(e).NotTo(BeNil())
	var rule *policy.CompiledRule
	for i := range e.compiled.Rules {
		if e.compiled.Rules[i].Name == ruleName {
			rule = &e.compiled.Rules[i]
		}
	}
	NewWithT(f.t).Expect(rule).NotTo(BeNil(), "rule %s", ruleName)
	prov := sn.Providers[providerKey]
	NewWithT(f.t).Expect(prov).NotTo(BeNil(), "provider %s", providerKey)
	r := httptest.NewRequest(http.MethodPost, "https://auth.example.com/challenge/"+ns+"/"+name, nil)
	for _, c := range existing {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	cr := &challengeRequest{snap: sn, entry: e, policy: e.compiled, id: id, rule: rule, provider: prov}
	f.s.pages.issueSession(w, r, cr, mode)
	return w.Result().Cookies()
}

func headerIdentity(user string) *identity {
	return &identity{User: policy.User{ID: user, Email: user}, Source: sourceHeader}
}

func withCookies(r *http.Request, cookies ...*http.Cookie) *http.Request {
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

func TestAuthDecidesByFirstMatchingRule(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	tests := []struct {
		name       string
		original   string
		headers    map[string]string
		wantCode   int
		wantRule   string
		wantHeader map[string]string
	}{
		{name: "allow from the VPN", original: "https://admin.example.com/billing",
			headers:  map[string]string{"X-Auth-Request-Email": ana, "X-Forwarded-For": "10.1.2.3"},
			wantCode: http.StatusOK, wantHeader: map[string]string{headerUser: ana, headerMultifactor: ""}},
		{name: "deny by group", original: "https://admin.example.com/billing",
			headers:  map[string]string{"X-Auth-Request-Email": ana, "X-Auth-Request-Groups": "staff, blocked"},
			wantCode: http.StatusForbidden},
		{name: "require MFA without a cookie", original: "https://admin.example.com/billing/invoices?id=1",
			headers:  map[string]string{"X-Auth-Request-Email": ana},
			wantCode: http.StatusUnauthorized,
			wantHeader: map[string]string{"Location": "https://auth.example.com/challenge/apps/admin?rd=" +
				url.QueryEscape("https://admin.example.com/billing/invoices?id=1")}},
		{name: "allow a later rule", original: "https://admin.example.com/public/logo.png",
			headers:  map[string]string{"X-Auth-Request-Email": ana},
			wantCode: http.StatusOK, wantHeader: map[string]string{headerUser: ana, headerMultifactor: ""}},
		// Paths servers read differently are refused (pathsStrict);
		// TestAuthPathViews has every class, and what
		// --allow-ambiguous-paths does with them.
		{name: "a dot segment is refused", original: "https://admin.example.com/public/../billing",
			headers:  map[string]string{"X-Auth-Request-Email": ana},
			wantCode: http.StatusForbidden},
		{name: "a path parameter is refused", original: "https://admin.example.com/public;x/logo.png",
			headers:  map[string]string{"X-Auth-Request-Email": ana},
			wantCode: http.StatusForbidden},
		{name: "an encoded path parameter is refused", original: "https://admin.example.com/public%3B/..%3B/billing",
			headers:  map[string]string{"X-Auth-Request-Email": ana},
			wantCode: http.StatusForbidden},
		{name: "a backslash in the path is refused", original: "https://admin.example.com/public/..%5Cbilling",
			headers:  map[string]string{"X-Auth-Request-Email": ana},
			wantCode: http.StatusForbidden},
		{name: "no identity", original: "https://admin.example.com/public/logo.png",
			wantCode: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			w := f.serve(authRequest("/auth/apps/admin", tt.original, tt.headers))
			g.Expect(w.Code).To(Equal(tt.wantCode), w.Body.String())
			for k, v := range tt.wantHeader {
				g.Expect(w.Header().Values(k)).To(Equal([]string{v}), k)
			}
			if tt.wantCode == http.StatusOK {
				g.Expect(w.Header().Get(headerAssertion)).NotTo(BeEmpty())
			} else {
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
				g.Expect(w.Header().Get(headerAssertion)).To(BeEmpty())
			}
		})
	}
}

func TestAuthDefaultAppliesWhenNoRuleMatches(t *testing.T) {
	policyYAML := func(def string) string {
		return coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: apps }
spec:
  identity: { header: {} }
  rules:
  - { name: never, when: 'false', action: Deny }
` + def
	}
	tests := []struct {
		name     string
		def      string
		wantCode int
	}{
		{"default is Allow when unset", "", http.StatusOK},
		{"default Allow", "  default: Allow\n", http.StatusOK},
		{"default Deny", "  default: Deny\n", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newCoreServer(t, policyYAML(tt.def))
			w := f.serve(authRequest("/auth/apps/app", "https://app.example.com/", map[string]string{"X-Auth-Request-Email": ana}))
			g.Expect(w.Code).To(Equal(tt.wantCode))
		})
	}
}

func TestAuthRefusesWhatItCannotJudge(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	tests := []struct {
		name     string
		req      func() *http.Request
		wantBody string
	}{
		{"unknown policy names it", func() *http.Request {
			return authRequest("/auth/apps/nope", "https://admin.example.com/", map[string]string{"X-Auth-Request-Email": ana})
		}, "no MFAPolicy apps/nope is in force"},
		{"missing X-Original-URL", func() *http.Request {
			r := authRequest("/auth/apps/admin", "", map[string]string{"X-Auth-Request-Email": ana})
			r.Header.Del("X-Original-URL")
			return r
		}, "X-Original-URL is missing"},
		{"relative X-Original-URL", func() *http.Request {
			return authRequest("/auth/apps/admin", "/billing", map[string]string{"X-Auth-Request-Email": ana})
		}, "not an absolute http(s) URL"},
		{"missing X-Original-Method", func() *http.Request {
			r := authRequest("/auth/apps/admin", "https://admin.example.com/", map[string]string{"X-Auth-Request-Email": ana})
			r.Header.Del("X-Original-Method")
			return r
		}, "X-Original-Method is missing"},
		{"untrusted peer", func() *http.Request {
			r := authRequest("/auth/apps/admin", "https://admin.example.com/public/", map[string]string{"X-Auth-Request-Email": ana})
			r.RemoteAddr = coreClientAddr
			return r
		}, "not in --trusted-proxies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			w := f.serve(tt.req())
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring(tt.wantBody))
		})
	}
}

func TestAuthChoosesPolicyByHost(t *testing.T) {
	objs := coreProvidersYAML
	for _, p := range []struct{ name, hosts, action string }{
		{"exact", "[app.example.com]", "Allow"},
		{"wildcard", `["*.example.com"]`, "Deny"},
		{"deeper", `["*.internal.example.com"]`, "Allow"},
		{"ported", `["app.example.org:8443"]`, "Allow"},
	} {
		objs += `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: ` + p.name + `, namespace: apps }
spec:
  hosts: ` + p.hosts + `
  identity: { header: {} }
  rules: [{ name: all, when: 'true', action: ` + p.action + ` }]
`
	}
	f := newCoreServer(t, objs)
	tests := []struct {
		original string
		wantCode int
	}{
		{"https://app.example.com/x", http.StatusOK},          // exact wins over the wildcard
		{"https://APP.Example.com/x", http.StatusOK},          // case-insensitive
		{"https://other.example.com/x", http.StatusForbidden}, // wildcard
		{"https://a.b.example.com/x", http.StatusForbidden},   // wildcard, two labels deep
		{"https://db.internal.example.com/x", http.StatusOK},  // longest wildcard wins
		{"https://app.example.org:8443/x", http.StatusOK},     // host with port
		{"https://example.com/x", http.StatusForbidden},       // no policy: refused
		{"https://app.example.org/x", http.StatusOK},          // a port never chooses the policy: the client writes it
	}
	for _, tt := range tests {
		t.Run(tt.original, func(t *testing.T) {
			g := NewWithT(t)
			w := f.serve(authRequest("/auth", tt.original, map[string]string{"X-Auth-Request-Email": ana}))
			g.Expect(w.Code).To(Equal(tt.wantCode), w.Body.String())
		})
	}
}

func TestAuthFailsClosedOnRuleError(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: apps }
spec:
  identity: { header: {} }
  rules:
  - { name: needs-x, when: 'request.query["x"][0] == "1"', action: Deny }
  default: Allow
`)
	// No x in the query: the index fails at runtime; the default Allow
	// must not apply.
	w := f.serve(authRequest("/auth/apps/app", "https://app.example.com/?y=2", map[string]string{"X-Auth-Request-Email": ana}))
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	g.Expect(f.logs.String()).To(And(ContainSubstring(`"decision":"error"`), ContainSubstring(`"rule":"needs-x"`)))

	w = f.serve(authRequest("/auth/apps/app", "https://app.example.com/?x=1", map[string]string{"X-Auth-Request-Email": ana}))
	g.Expect(w.Code).To(Equal(http.StatusForbidden)) // the rule itself denies
	w = f.serve(authRequest("/auth/apps/app", "https://app.example.com/?x=2", map[string]string{"X-Auth-Request-Email": ana}))
	g.Expect(w.Code).To(Equal(http.StatusOK))
}

func TestAuthRulesSeeTheOriginalRequest(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: apps }
spec:
  identity: { header: { user: X-User, groups: X-Groups, name: X-Name } }
  rules:
  - name: all
    when: >-
      request.host == "app.example.com" && request.path == "/a/b" && request.method == "DELETE" &&
      request.scheme == "https" && request.query["q"] == ["1", "2"] && request.headers["x-custom"] == "v" &&
      request.ip == "198.51.100.20" && request.url == "https://app.example.com/a/b?q=1&q=2" &&
      user.id == "ana" && user.email == "" && user.name == "Ana" && user.groups == ["g1", "g2"] &&
      request.time == timestamp("2026-11-27T09:30:00Z")
    action: Allow
  default: Deny
`)
	r := authRequest("/auth/apps/app", "https://app.example.com/a/b?q=1&q=2",
		map[string]string{"X-User": "ana", "X-Groups": "g1,g2", "X-Name": "Ana", "X-Custom": "v", "X-Original-Method": "DELETE"})
	w := f.serve(r)
	g.Expect(w.Code).To(Equal(http.StatusOK), f.logs.String())
}

func TestRequiredRuleForTheReturnURL(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	e := f.s.config.snapshot().entry("apps", "admin")
	tests := []struct {
		rd       string
		groups   []string
		wantRule string
		wantErr  error
	}{
		{rd: "https://admin.example.com/billing", wantRule: "billing"},
		{rd: "https://admin.example.com/public/", wantRule: ""},
		{rd: "https://admin.example.com/x", groups: []string{"blocked"}, wantErr: errDenied},
	}
	for _, tt := range tests {
		t.Run(tt.rd, func(t *testing.T) {
			g := NewWithT(t)
			r := httptest.NewRequest(http.MethodGet, "https://auth.example.com/challenge/apps/admin", nil)
			r.RemoteAddr = coreProxyAddr
			r.Header.Set("X-Forwarded-For", "198.51.100.20")
			id := headerIdentity(ana)
			id.User.Groups = tt.groups
			u, _ := url.Parse(tt.rd)
			ri, err := f.s.pages.requiredRule(r, e, id, u)
			if tt.wantErr != nil {
				g.Expect(err).To(MatchError(tt.wantErr))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			if tt.wantRule == "" {
				g.Expect(ri).To(BeNil())
			} else {
				g.Expect(ri).NotTo(BeNil())
				g.Expect(ri.rule.Name).To(Equal(tt.wantRule))
			}
		})
	}
}

func TestAuthLogsNeverHoldCookies(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "billing", "apps/google-authenticator", session.Verified)
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana}), cookies...))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	for _, c := range cookies {
		g.Expect(strings.Contains(f.logs.String(), c.Value)).To(BeFalse())
	}
	g.Expect(strings.Contains(f.logs.String(), w.Header().Get(headerAssertion))).To(BeFalse())
}

func TestAuthPanicFailsClosed(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	// Corrupt the snapshot in force so that deciding panics.
	sn := *f.s.config.snapshot()
	sn.byName = map[policyName]*policyEntry{{"apps", "admin"}: {header: newHeaderSource(&v1alpha1.HeaderIdentity{})}}
	f.s.config.snap.Store(&sn)
	w := f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/", map[string]string{"X-Auth-Request-Email": ana}))
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	g.Expect(f.logs.String()).To(ContainSubstring("auth decision panicked"))
}
