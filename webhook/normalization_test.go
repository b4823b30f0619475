package webhook

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// One normalisation for what the outside world sends (host, path, client
// address), tried through the real handler in both dialects: /auth
// (X-Original-URL) and /forward-auth (X-Forwarded-Proto/Host/Uri).

// normPolicy is an MFAPolicy with one Allow rule and a default.
func normPolicy(ns, name, hosts, when, dflt string) string {
	return `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: ` + name + `, namespace: ` + ns + ` }
spec:
  hosts: ` + hosts + `
  identity: { header: {} }
  rules: [{ name: rule, when: '` + when + `', action: Allow }]
  default: ` + dflt + `
`
}

// normHostsYAML: policies whose rules allow only when request.host is the
// one form of the host, and pairs of policies whose hosts overlap.
var normHostsYAML = coreProvidersYAML +
	normPolicy("apps", "admin", "[admin.example.com]", `request.host == "admin.example.com"`, "Deny") +
	normPolicy("apps", "legacy", `["legacy.example.com:443"]`, `request.host == "legacy.example.com"`, "Deny") +
	normPolicy("apps", "ported", `["ported.example.com:8443"]`, `request.host == "ported.example.com"`, "Deny") +
	normPolicy("apps", "idn", `["bücher.example.com"]`, `request.host == "xn--bcher-kva.example.com"`, "Deny") +
	// A host inside another namespace's wildcard: a conflict.
	normPolicy("corp", "corp", `["*.corp.example.com"]`, "true", "Deny") +
	normPolicy("payroll", "payroll", `["payroll.corp.example.com"]`, "true", "Deny") +
	// Overlapping hosts within one namespace: the most specific wins.
	normPolicy("apps", "wide", `["*.apps.example.com"]`, "false", "Deny") +
	normPolicy("apps", "exact", `["admin2.apps.example.com"]`, "true", "Deny") +
	normPolicy("apps", "eu", `["*.eu.apps.example.com"]`, "true", "Deny") +
	// Nested wildcards of two namespaces: a conflict under the inner one.
	normPolicy("platform", "platform", `["*.example.net"]`, "true", "Deny") +
	normPolicy("team", "team", `["*.team.example.net"]`, "true", "Deny") +
	// The same host twice in one namespace, and with and without its
	// default port in two: conflicts.
	normPolicy("apps", "dup1", `["dup.example.com"]`, "true", "Deny") +
	normPolicy("apps", "dup2", `["dup.example.com"]`, "true", "Deny") +
	normPolicy("shop", "shop", `["shop.example.com"]`, "true", "Deny") +
	normPolicy("shop2", "shop", `["shop.example.com:443"]`, "true", "Deny")

// normAnswer is what a case expects: "allow", "deny" (a rule or the
// default), or "refused: <part of the reason>".
type normAnswer string

// askBothDialects sends a GET of scheme://host+uri to /auth{byName} and
// /forward-auth{byName} and checks both answers against want.
func askBothDialects(t *testing.T, f *coreFixture, byName, scheme, host, uri string, headers map[string]string, want normAnswer) {
	t.Helper()
	with := map[string]string{"X-Auth-Request-Email": ana}
	for k, v := range headers {
		with[k] = v
	}
	auth := authRequest("/auth"+byName, scheme+"://"+host+uri, with)
	fa := with
	fa["X-Forwarded-Proto"], fa["X-Forwarded-Host"], fa["X-Forwarded-Uri"] = scheme, host, uri
	forward := forwardAuthRequest("/forward-auth"+byName, fa)
	for _, r := range []*http.Request{auth, forward} {
		w := f.serve(r)
		g := NewWithT(t)
		body := w.Body.String()
		switch {
		case want == "allow":
			g.Expect(w.Code).To(Equal(http.StatusOK), "%s %s://%s%s: %s", r.URL.Path, scheme, host, uri, body)
			g.Expect(w.Header().Get(headerUser)).To(Equal(ana))
		case want == "deny":
			g.Expect(w.Code).To(Equal(http.StatusForbidden), "%s %s://%s%s", r.URL.Path, scheme, host, uri)
			g.Expect(body).To(Equal("forbidden\n"), "%s %s://%s%s: a rule denies, the request is not refused", r.URL.Path, scheme, host, uri)
		default:
			reason, _ := strings.CutPrefix(string(want), "refused: ")
			g.Expect(w.Code).To(Equal(http.StatusForbidden), "%s %s://%s%s: %s", r.URL.Path, scheme, host, uri, body)
			g.Expect(body).To(HavePrefix("forbidden: "), "%s %s://%s%s", r.URL.Path, scheme, host, uri)
			g.Expect(body).To(ContainSubstring(reason), "%s %s://%s%s", r.URL.Path, scheme, host, uri)
		}
		if want != "allow" {
			g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
		}
	}
}

func TestHostSpellingsFindOnePolicyAndRulesSeeTheOneForm(t *testing.T) {
	f := newCoreServer(t, normHostsYAML)
	for _, tc := range []struct {
		name, scheme, host string
		want               normAnswer
	}{
		{"as listed", "https", "admin.example.com", "allow"},
		{"upper case", "https", "ADMIN.Example.COM", "allow"},
		{"trailing dot", "https", "admin.example.com.", "allow"},
		{"default port of https", "https", "admin.example.com:443", "allow"},
		{"default port of http", "http", "admin.example.com:80", "allow"},
		{"trailing dot, upper case and default port", "https", "Admin.Example.com.:443", "allow"},
		{"a port the client chose does not change the policy", "https", "admin.example.com:8443", "allow"},
		{"443 over http is another port, still the same policy", "http", "admin.example.com:443", "allow"},
		{"a policy host listing :443 is the host", "https", "legacy.example.com", "allow"},
		{"a policy host listing :443, asked with it", "https", "legacy.example.com:443", "allow"},
		{"a policy host listing another port is the host, whatever the port", "https", "ported.example.com", "allow"},
		{"IDN in Unicode", "https", "bücher.example.com", "allow"},
		{"IDN in punycode", "https", "xn--bcher-kva.example.com", "allow"},
		{"IDN in upper-case punycode with a trailing dot", "https", "XN--BCHER-KVA.example.com.", "allow"},
		{"IDN in upper-case Unicode is not in the one form", "https", "BÜCHER.example.com", "refused: not a valid internationalised name"},
		{"full-width letters are not in the one form", "https", "ａdmin.example.com", "refused: not a valid internationalised name"},
		{"two trailing dots", "https", "admin.example.com..", "refused: empty label"},
		{"a bad port", "https", "admin.example.com:08443", "refused: port"},
		{"no policy", "https", "nobody.example.com", "refused: no MFAPolicy lists the host nobody.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			askBothDialects(t, f, "", tc.scheme, tc.host, "/x", nil, tc.want)
		})
	}
}

func TestHostConflictsFailClosedOnHostLookup(t *testing.T) {
	f := newCoreServer(t, normHostsYAML)
	for _, tc := range []struct {
		name, byName, host string
		want               normAnswer
	}{
		{"a host inside another namespace's wildcard", "", "payroll.corp.example.com", "refused: MFAPolicies corp/corp, payroll/payroll in conflict"},
		{"the same, spelled otherwise", "", "PAYROLL.corp.example.com.:443", "refused: MFAPolicies corp/corp, payroll/payroll in conflict"},
		{"the rest of the wildcard is its namespace's", "", "wiki.corp.example.com", "allow"},
		{"by name, the later claim yields the host to the earlier one", "/payroll/payroll", "payroll.corp.example.com", "refused: MFAPolicy corp/corp of another namespace claimed it first"},
		{"by name, the earlier claim keeps answering for it", "/corp/corp", "payroll.corp.example.com", "allow"},
		{"by name, the later claim keeps its hosts nobody else claims", "/corp/corp", "wiki.corp.example.com", "allow"},
		{"one namespace: a host beats a wildcard", "", "admin2.apps.example.com", "allow"},
		{"one namespace: the wildcard serves the rest", "", "other.apps.example.com", "deny"},
		{"one namespace: a longer wildcard beats a shorter", "", "x.eu.apps.example.com", "allow"},
		{"nested wildcards of two namespaces", "", "x.team.example.net", "refused: MFAPolicies platform/platform, team/team in conflict"},
		{"the outer wildcard serves what only it names", "", "www.example.net", "allow"},
		{"the same host twice in one namespace", "", "dup.example.com", "refused: MFAPolicies apps/dup1, apps/dup2 in conflict"},
		{"a host with and without its default port", "", "shop.example.com", "refused: MFAPolicies shop/shop, shop2/shop in conflict"},
		{"a host with and without its default port, by name, the later claim", "/shop2/shop", "shop.example.com", "refused: MFAPolicy shop/shop of another namespace claimed it first"},
		{"a host with and without its default port, by name, the earlier claim", "/shop/shop", "shop.example.com", "allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			askBothDialects(t, f, tc.byName, "https", tc.host, "/x", nil, tc.want)
		})
	}
}

// normPathsYAML: a policy allowing /public/ and one exact decoded path.
var normPathsYAML = coreProvidersYAML +
	normPolicy("apps", "paths", "[paths.example.com]", `request.path == "/exact/café d" || request.path.startsWith("/public/")`, "Deny")

func TestAuthPathViews(t *testing.T) {
	strict := newCoreServer(t, normPathsYAML)
	lenient := newCoreServer(t, normPathsYAML, func(o *Options) { o.AllowAmbiguousPaths = true })
	for _, tc := range []struct {
		name, uri string
		// want is the strict answer (the default), lenient the answer with
		// --allow-ambiguous-paths.
		want, lenient normAnswer
	}{
		{"a plain path", "/public/x", "allow", "allow"},
		{"escapes of plain characters are decoded for the rules", "/exact/caf%C3%A9%20d", "allow", "allow"},
		{"lower-case escapes too", "/exact/caf%c3%a9%20d", "allow", "allow"},
		{"an encoded slash", "/admin/..%2Fpublic/x", "refused: encoded slash", "allow"},
		{"an encoded slash, lower case", "/admin/..%2fpublic/x", "refused: encoded slash", "allow"},
		{"encoded dots", "/admin/%2e%2e/public/x", "refused: encoded slash, backslash, dot", "allow"},
		{"encoded dots, upper case", "/public/%2E%2E/admin", "refused: encoded slash, backslash, dot", "deny"},
		{"an encoded backslash", "/public%5C..%5Cadmin", "refused: encoded slash, backslash", "refused: backslash"},
		{"an encoded backslash, lower case", "/public/%5cadmin", "refused: encoded slash, backslash", "refused: backslash"},
		{"a dot-dot segment", "/public/../admin", "refused: dot segment", "deny"},
		{"a dot-dot segment into the open part", "/admin/../public/x", "refused: dot segment", "allow"},
		{"a dot segment", "/public/./x", "refused: dot segment", "allow"},
		{"a trailing dot-dot segment", "/public/x/..", "refused: dot segment", "deny"},
		{"an empty segment", "/public//x", "refused: dot segment", "allow"},
		{"a path parameter", "/public;x=y/x", "refused: path parameter", "allow"},
		{"a path parameter hiding a dot-dot", "/public/..;/admin", "refused: path parameter", "deny"},
		{"an encoded semicolon", "/public/%3Bx", "refused: encoded slash, backslash, dot or semicolon", "allow"},
		{"double encoding", "/public/%252e%252e/admin", "refused: encoded twice", "allow"},
		{"an encoded NUL", "/public/%00", "refused: control character", "refused: control character"},
		{"an encoded line feed", "/public/%0a", "refused: control character", "refused: control character"},
		{"a malformed escape", "/public/%zz", "refused: ", "refused: "},
		{"an overlong dot (not UTF-8)", "/public/%C0%AE%C0%AE/admin", "refused: not UTF-8", "refused: not UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			askBothDialects(t, strict, "", "https", "paths.example.com", tc.uri, nil, tc.want)
			askBothDialects(t, lenient, "", "https", "paths.example.com", tc.uri, nil, tc.lenient)
		})
	}
}

func TestAuthBackslashInTheRawPathIsRefused(t *testing.T) {
	f := newCoreServer(t, normPathsYAML)
	w := f.serve(authRequest("/auth", "https://paths.example.com/public\\..\\admin", map[string]string{"X-Auth-Request-Email": ana}))
	NewWithT(t).Expect(w.Code).To(Equal(http.StatusForbidden))
}

func TestClientAddressThroughBothDialects(t *testing.T) {
	// The vpn rule of the admin policy allows 10.0.0.0/8 without a second
	// factor; the front door is 10.9.0.0/16.
	byDefault := newCoreServer(t, coreAdminPolicyYAML)
	trustRealIP := newCoreServer(t, coreAdminPolicyYAML, func(o *Options) { o.TrustXRealIP = true })
	vpn, challenge := normAnswer("allow"), normAnswer("challenge")
	for _, tc := range []struct {
		name    string
		headers map[string]string
		// want by default and with --trust-x-real-ip.
		want, withFlag normAnswer
	}{
		{"X-Real-IP is the client's own with Caddy and Traefik: ignored by default",
			map[string]string{"X-Real-IP": "10.1.2.3", "X-Forwarded-For": "198.51.100.20"}, challenge, vpn},
		{"X-Forwarded-For: the right-most entry is the client",
			map[string]string{"X-Forwarded-For": "10.1.2.3, 198.51.100.20"}, challenge, challenge},
		{"X-Forwarded-For: trusted proxies on the right are skipped",
			map[string]string{"X-Forwarded-For": "198.51.100.20, 10.1.2.3, 10.9.0.5"}, vpn, vpn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				f    *coreFixture
				want normAnswer
			}{{byDefault, tc.want}, {trustRealIP, tc.withFlag}} {
				if c.want == "allow" {
					askBothDialects(t, c.f, "/apps/admin", "https", "admin.example.com", "/billing", tc.headers, "allow")
					continue
				}
				g := NewWithT(t)
				h := map[string]string{"X-Auth-Request-Email": ana}
				for k, v := range tc.headers {
					h[k] = v
				}
				g.Expect(c.f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/billing", h)).Code).To(Equal(http.StatusUnauthorized))
				h["X-Forwarded-Uri"] = "/billing"
				w := c.f.serve(forwardAuthRequest("/forward-auth/apps/admin", h))
				g.Expect(w.Code).To(Equal(http.StatusFound))
				g.Expect(w.Header().Get("Location")).To(HavePrefix("https://auth.example.com/challenge/apps/admin?rd=" + url.QueryEscape("https://admin.example.com/billing")))
			}
		})
	}
}

func TestPlainPathsCostNoAllocation(t *testing.T) {
	for _, p := range []string{"/", "/public/x", "/a/b/c.png", "/x/"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = pathsStrict.view(p) }); n != 0 {
			t.Errorf("view(%q): %v allocations", p, n)
		}
	}
}

// FuzzPathView checks that the rules' view of a path and the app's cannot
// disagree: for every raw path the strict mode accepts, the ways servers
// read a path (decode then resolve dot segments, as net/url and path.Clean
// do; resolve on the raw text then decode each segment; drop servlet path
// parameters; decode twice) all give request.path, up to a trailing slash.
// With --allow-ambiguous-paths, request.path is always clean.
func FuzzPathView(f *testing.F) {
	for _, seed := range []string{
		"/public/x", "/admin/..%2Fpublic", "/admin/%2e%2e/x", "/a/./b", "/a/../b", "/a/..", "//a", "/a;x=y/b", "/..;/a",
		"/%252e%252e/", "/%00", "/a\\b", "/caf%C3%A9", "/%C0%AE", "/a%20b/", "/%25zz", "/%3B", "", "/a/.../b", "/.a/..b/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if lenient, err := pathsAmbiguousAllowed.view(raw); err == nil {
			if cleanPath(lenient) != lenient || !strings.HasPrefix(lenient, "/") || strings.ContainsAny(lenient, "\\\x00") {
				t.Fatalf("lenient view(%q) = %q, not clean", raw, lenient)
			}
		}
		view, err := pathsStrict.view(raw)
		if err != nil {
			return
		}
		if raw == "" {
			raw = "/"
		}
		same := func(how, got string) {
			t.Helper()
			if strings.TrimSuffix(got, "/") != strings.TrimSuffix(view, "/") {
				t.Fatalf("view(%q) = %q, but %s gives %q", raw, view, how, got)
			}
		}
		decoded, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("view(%q) = %q, but the path does not decode: %v", raw, view, err)
		}
		same("decoding", decoded)
		same("decoding, then resolving", path.Clean(decoded))
		var segs []string
		for _, s := range strings.Split(path.Clean(raw), "/") {
			d, err := url.PathUnescape(s)
			if err != nil {
				t.Fatalf("segment %q of %q does not decode", s, raw)
			}
			segs = append(segs, d)
		}
		same("resolving, then decoding each segment", strings.Join(segs, "/"))
		same("dropping path parameters", dropPathParams(view))
		if twice, err := url.PathUnescape(view); err == nil {
			same("decoding twice", twice)
		}
		if !utf8.ValidString(view) || strings.ContainsAny(view, "\\;") {
			t.Fatalf("view(%q) = %q", raw, view)
		}
		for _, c := range []byte(view) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("view(%q) = %q: control character", raw, view)
			}
		}
	})
}

// FuzzHostLookup: for any host the server accepts, every spelling of it
// (case, a trailing dot, the default port) finds the same policy, or the
// same conflict, and rules see the same request.host.
func FuzzHostLookup(f *testing.F) {
	fx := newCoreServer(f, normHostsYAML, func(o *Options) { o.Logger = discardLogger() })
	hosts := fx.s.config.snapshot().hosts
	for _, seed := range []string{
		"admin.example.com", "payroll.corp.example.com", "x.eu.apps.example.com", "bücher.example.com", "legacy.example.com:443",
		"www.example.net", "a.team.example.net", "nobody.example.com", "10.0.0.1", "[::1]:8443", "ported.example.com:8443",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, host string) {
		var o originalRequest
		if parseOriginalURL("https://"+host+"/x", http.MethodGet, pathsStrict, &o) != nil {
			return
		}
		want := hosts.lookup(o.host)
		name := o.host
		variants := []string{strings.ToUpper(name), name + ":443", name + ":8443"}
		if !strings.HasPrefix(name, "[") {
			variants = append(variants, name+".", strings.ToUpper(name)+".:443")
		}
		for _, v := range variants {
			var ov originalRequest
			if err := parseOriginalURL("https://"+v+"/x", http.MethodGet, pathsStrict, &ov); err != nil {
				t.Fatalf("%q is accepted, its spelling %q is not: %v", host, v, err)
			}
			if ov.host != o.host || hosts.lookup(ov.host) != want {
				t.Fatalf("%q finds %v (request.host %q), its spelling %q finds %v (request.host %q)", host, want, o.host, v, hosts.lookup(ov.host), ov.host)
			}
		}
	})
}

// FuzzHostConflictViewsAgree checks that the controller's view of host
// conflicts (hostname.Claims.Conflicts, written to status) and the
// server's (hostRoutes, which fails hosts closed) agree on any set of
// claims: every conflict a policy reports makes a host fail closed, every
// host that fails closed is reported by the policy that would serve it,
// and a host served is served by a claim nothing conflicts with.
func FuzzHostConflictViewsAgree(f *testing.F) {
	fx := newCoreServer(f, "", func(o *Options) { o.Logger = discardLogger() })
	patterns := []string{"x.com", "a.x.com", "*.x.com", "y.x.com", "*.y.x.com", "a.y.x.com", "*.z.y.x.com", "b.z.y.x.com", "other.org", "*.other.org"}
	for _, seed := range [][]byte{
		{2, 0, 0, 1, 1, 0}, {2, 0, 0, 1, 0, 1}, {2, 0, 0, 2, 0, 1}, {4, 1, 0, 2, 0, 0}, {1, 0, 0, 1, 0, 1}, {1, 0, 0, 1, 1, 0},
		{2, 0, 0, 2, 0, 1, 5, 0, 2}, {6, 0, 0, 4, 1, 0, 2, 2, 0, 9, 2, 1},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		var claims []hostClaim
		entries := map[string]*policyEntry{}
		for i := 0; i+2 < len(spec) && i < 3*12; i += 3 {
			ns := string('a' + rune(spec[i+1]%3))
			key := ns + "/p" + string('0'+rune(spec[i+2]%3))
			if entries[key] == nil {
				entries[key] = &policyEntry{key: key}
			}
			claims = append(claims, hostClaim{Claim: hostnameClaim(patterns[int(spec[i])%len(patterns)], ns, key), entry: entries[key]})
		}
		routes := fx.s.config.builder.routeHosts(claims)
		plain := make([]hostname.Claim, len(claims))
		for i := range claims {
			plain[i] = claims[i].Claim
		}
		index := hostname.NewClaims(plain)
		probe := func(p string) string { return strings.Replace(p, "*", "fresh", 1) }

		for _, p := range patterns {
			h := probe(p)
			r := routes.lookup(h)
			var matching []hostname.Claim
			for _, c := range plain {
				if hostname.Match(c.Pattern, h) {
					matching = append(matching, c)
				}
			}
			switch {
			case r == nil:
				if len(matching) > 0 {
					t.Fatalf("%s: no route, but %v name it", h, matching)
				}
			case r.conflict != "":
				reported := false
				for _, c := range matching {
					reported = reported || c.Pattern == r.pattern && len(index.Conflicts(c)) > 0
				}
				if !reported {
					t.Fatalf("%s fails closed, but no policy at %s reports a conflict (claims %v)", h, r.pattern, plain)
				}
			default:
				winner := hostname.Claim{Pattern: r.pattern, Namespace: strings.Split(r.entry.key, "/")[0], Policy: r.entry.key}
				for _, c := range matching {
					if hostname.Conflict(winner, c) {
						t.Fatalf("%s is served by %s although %v conflicts with it", h, r.entry.key, c)
					}
				}
			}
		}
		for _, x := range plain {
			for _, y := range index.Conflicts(x) {
				narrow := x.Pattern
				if hostname.Contains(x.Pattern, y.Pattern) {
					narrow = y.Pattern
				}
				if r := routes.lookup(probe(narrow)); r == nil || r.conflict == "" {
					t.Fatalf("%v reports a conflict with %v, but %s does not fail closed (claims %v)", x, y, probe(narrow), plain)
				}
			}
		}
	})
}

func hostnameClaim(pattern, ns, policy string) hostname.Claim {
	return hostname.Claim{Pattern: pattern, Namespace: ns, Policy: policy}
}
