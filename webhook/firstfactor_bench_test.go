package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// BenchmarkAuthForwardAuth is /auth with identity.forwardAuth for a
// remembered user: "hit" answers the identity from the cache (the
// steady state of a user who keeps browsing), "miss" asks the first
// factor, a local HTTP server answering as oauth2-proxy does, on every
// request (cacheTTL 0). Compare with BenchmarkAuthRemembered/header and
// BenchmarkEmptyHandler.
func BenchmarkAuthForwardAuth(b *testing.B) {
	for _, tt := range []struct{ name, extra string }{{"hit", ""}, {"miss", "\n      cacheTTL: 0s"}} {
		b.Run(tt.name, func(b *testing.B) {
			ff := newTestFirstFactor()
			ff.signIn("ana-session", ssoUser{email: ana, user: "ana", groups: []string{"staff"}})
			srv := httptest.NewServer(ff)
			defer srv.Close()
			f := benchFixture(b, benchPolicy(`
    forwardAuth:
      url: `+srv.URL+`/oauth2/auth
      signinURL: https://sso.example.com/oauth2/start`+tt.extra, 10))
			id := &identity{User: policy.User{ID: ana, Email: ana}, Source: sourceForwardAuth}
			cookies := f.issue(id, "apps", "bench", "first", "apps/google-authenticator", session.Verified)
			r := authRequest("/auth/apps/bench", "https://app.example.com/reports/2026?page=2", nil)
			withCookies(r, cookieNamed(cookies, session.RememberCookieName), &http.Cookie{Name: "_oauth2_proxy", Value: "ana-session"})
			r.Header.Add("Cookie", "_ga=GA1.2.3; theme=dark")
			benchServe(b, f, r, http.StatusOK)
		})
	}
}
