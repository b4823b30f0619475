package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
)

// The router answers plain auth paths itself and leaves every other path
// to the ServeMux: for any path, the answer must be the one the ServeMux
// alone gives.
func TestRouterAnswersAsTheServeMux(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	rt, ok := f.s.handler.(*router)
	NewWithT(t).Expect(ok).To(BeTrue(), "the server's handler is the router")

	paths := []string{
		"/auth",
		"/auth/",
		"/auth/apps/admin",
		"/auth/apps/admin/",
		"/auth/apps/admin/x",
		"/auth/apps/missing",
		"/auth/apps",
		"/auth//admin",
		"/auth/apps//admin",
		"/auth/./admin",
		"/auth/apps/..",
		"/auth/apps/../admin",
		"/auth/apps%2Fadmin/x",
		"/auth/ap%70s/admin",
		"/authx",
		"/auth/apps/admin?x=1",
		"/forward-auth",
		"/forward-auth/apps/admin",
		"/forward-auth/apps/admin/",
		"/forward-auth/./admin",
		"/forward-authx",
		"/healthz",
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions}
	for _, p := range paths {
		for _, m := range methods {
			t.Run(m+" "+p, func(t *testing.T) {
				g := NewWithT(t)
				mk := func() *http.Request {
					r := authRequest(p, "https://admin.example.com/billing", map[string]string{
						"X-Auth-Request-Email": ana,
						"X-Forwarded-Proto":    "https",
						"X-Forwarded-Host":     "admin.example.com",
						"X-Forwarded-Uri":      "/billing",
						"X-Forwarded-Method":   http.MethodGet,
					})
					r.Method = m
					return r
				}
				viaRouter, viaMux := httptest.NewRecorder(), httptest.NewRecorder()
				rt.ServeHTTP(viaRouter, mk())
				rt.mux.ServeHTTP(viaMux, mk())
				g.Expect(viaRouter.Code).To(Equal(viaMux.Code))
				g.Expect(viaRouter.Header().Get("Location")).To(Equal(viaMux.Header().Get("Location")))
				g.Expect(viaRouter.Body.String()).To(Equal(viaMux.Body.String()))
				switch p {
				case "/auth/apps/admin", "/auth":
					g.Expect(viaRouter.Code).To(Equal(http.StatusUnauthorized), "a decision: the second factor is missing")
				case "/forward-auth/apps/admin", "/forward-auth":
					g.Expect(viaRouter.Code).To(Equal(http.StatusFound), "a decision: sent to the challenge")
				}
			})
		}
	}
}

func TestPolicyPath(t *testing.T) {
	cases := []struct {
		rest, ns, name string
		ok             bool
	}{
		{"", "", "", true},
		{"/apps/admin", "apps", "admin", true},
		{"/", "", "", false},
		{"/apps", "", "", false},
		{"/apps/", "", "", false},
		{"//admin", "", "", false},
		{"/apps/admin/", "", "", false},
		{"/apps/admin/x", "", "", false},
		{"/./admin", "", "", false},
		{"/apps/..", "", "", false},
		{"x", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.rest, func(t *testing.T) {
			ns, name, ok := policyPath(c.rest)
			NewWithT(t).Expect([]any{ns, name, ok}).To(Equal([]any{c.ns, c.name, c.ok}))
		})
	}
}
