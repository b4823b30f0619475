package webhook

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzExtAuthz sends arbitrary request-targets, hosts and forwarded
// headers to the ext-authz dialect through the real handler: the answer
// is always a decision (200, 302, 401 or 403, never a 5xx), a 302 always
// goes to the challenge page of the policy with the original URL as rd,
// and a 200 is only ever given for the policy's own host.
func FuzzExtAuthz(f *testing.F) {
	fx := newCoreServer(f, coreAdminPolicyYAML, func(o *Options) { o.Logger = discardLogger() })
	for _, s := range [][3]string{
		{"/ext-authz/apps/admin/public/x", "admin.example.com", "https"},
		{"/ext-authz/apps/admin/billing?id=1", "admin.example.com:8443", "http"},
		{"/ext-authz/apps/admin//evil.example/x", "admin.example.com", ""},
		{"/ext-authz/apps/admin/a%2F..%2Fb", "ADMIN.example.com.", "https"},
		{"/ext-authz/apps/admin?x=%00", "evil@admin.example.com", "javascript"},
		{"/ext-authz/../admin/x", "[::1]:80", "https"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, target, host, proto string) {
		if !strings.HasPrefix(target, extAuthzPrefix) || strings.ContainsAny(target, " \r\n\x00") {
			return // not a request-target an HTTP server hands on
		}
		r := extAuthzRequest(http.MethodGet, target, map[string]string{"X-Forwarded-Proto": proto})
		r.Host = host
		w := fx.serve(r)
		switch w.Code {
		case http.StatusOK:
			if h := strings.ToLower(strings.TrimSuffix(strings.Split(host, ":")[0], ".")); h != "admin.example.com" {
				t.Fatalf("%q with Host %q: 200 for another host", target, host)
			}
		case http.StatusFound:
			if loc := w.Header().Get("Location"); !strings.HasPrefix(loc, challengeOf+"http") {
				t.Fatalf("%q with Host %q: redirected to %q", target, host, loc)
			}
		case http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("%q with Host %q: status %d", target, host, w.Code)
		}
	})
}

// FuzzOriginalPartsAgree: an original request read in parts (the Envoy
// dialects and forward-auth) is judged exactly as the same request sent
// whole in X-Original-URL: the same error or none, the same fields, and
// the URL the parts make is that URL.
func FuzzOriginalPartsAgree(f *testing.F) {
	for _, seed := range [][2]string{
		{"admin.example.com", "/a/b?q=1"}, {"Admin.Example.COM:8443", "/"}, {"a.example.com.", "/x/../y"},
		{"a.example.com", "/a%2Fb?c=%41"}, {"a_b.example.com", "/x"}, {"[::1]:8443", "/x"}, {"a.example.com:", "/x"},
		{"a.example.com:99999", "/x"}, {"xn--caf-dma.example", "/%2e%2e/x"}, {"a.example.com", "/a b#f"},
		{"a.example.com", "/?"}, {"1.2.3.4", "/x;y?z"}, {"a.example.com", "/a\\b"},
	} {
		f.Add("https", seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, scheme, authority, target string) {
		if scheme != "http" && scheme != "https" || authority == "" || notHost(authority) ||
			target == "" || target[0] != '/' || strings.HasPrefix(target, "//") {
			return // refused before either is asked
		}
		for _, mode := range []pathMode{pathsStrict, pathsAmbiguousAllowed} {
			var parts, whole originalRequest
			errParts := parseOriginalParts(scheme, authority, target, http.MethodGet, mode, &parts)
			raw := scheme + "://" + authority + target
			errWhole := parseOriginalURL(raw, http.MethodGet, mode, &whole)
			if (errParts == nil) != (errWhole == nil) || errParts != nil && errParts.Error() != errWhole.Error() {
				t.Fatalf("%q: in parts %v, whole %v", raw, errParts, errWhole)
			}
			if errParts != nil {
				continue
			}
			if parts.url() != raw {
				t.Fatalf("%q: the parts make %q", raw, parts.url())
			}
			parts.raw, parts.authority, parts.target = "", "", ""
			whole.raw, whole.authority, whole.target = "", "", ""
			if parts != whole {
				t.Fatalf("%q: in parts %+v, whole %+v", raw, parts, whole)
			}
		}
	})
}
