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
