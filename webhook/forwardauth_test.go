package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	. "github.com/onsi/gomega"
)

// forwardAuthRequest is a Traefik/Caddy forward-auth request for a GET of
// https://host+uri by the user, from the trusted proxy.
func forwardAuthRequest(path string, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = coreProxyAddr
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "admin.example.com")
	r.Header.Set("X-Forwarded-Method", http.MethodGet)
	r.Header.Set("X-Forwarded-For", "198.51.100.20")
	for k, v := range headers {
		if v == "" {
			r.Header.Del(k)
			continue
		}
		r.Header.Set(k, v)
	}
	return r
}

func TestForwardAuth(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"X-Auth-Request-Email": ana}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name         string
		path         string
		headers      map[string]string
		remote       string
		wantCode     int
		wantLocation string
	}{
		{name: "allowed by a rule", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/public/logo.png"}), wantCode: http.StatusOK},
		{name: "a second factor is missing: redirect to the challenge", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/billing?id=1"}), wantCode: http.StatusFound,
			wantLocation: "https://auth.example.com/challenge/apps/admin?rd=" + url.QueryEscape("https://admin.example.com/billing?id=1")},
		{name: "policy chosen by host", path: "/forward-auth",
			headers: with(map[string]string{"X-Forwarded-Uri": "/public/"}), wantCode: http.StatusOK},
		{name: "denied by a rule", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/billing", "X-Auth-Request-Groups": "blocked"}), wantCode: http.StatusForbidden},
		{name: "the client address comes from X-Forwarded-For of a trusted proxy", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/billing", "X-Forwarded-For": "10.1.2.3"}), wantCode: http.StatusOK},
		{name: "untrusted peer", path: "/forward-auth/apps/admin", remote: coreClientAddr,
			headers: with(map[string]string{"X-Forwarded-Uri": "/public/"}), wantCode: http.StatusForbidden},
		{name: "no identity", path: "/forward-auth/apps/admin",
			headers: map[string]string{"X-Forwarded-Uri": "/public/"}, wantCode: http.StatusFound},
		{name: "missing method", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/public/", "X-Forwarded-Method": ""}), wantCode: http.StatusForbidden},
		{name: "bad scheme", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/public/", "X-Forwarded-Proto": "javascript"}), wantCode: http.StatusForbidden},
		{name: "host with userinfo", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "/public/", "X-Forwarded-Host": "evil@admin.example.com"}), wantCode: http.StatusForbidden},
		{name: "uri that is not a path", path: "/forward-auth/apps/admin",
			headers: with(map[string]string{"X-Forwarded-Uri": "//evil.example/public/"}), wantCode: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := forwardAuthRequest(tt.path, tt.headers)
			if tt.remote != "" {
				r.RemoteAddr = tt.remote
			}
			w := f.serve(r)
			g.Expect(w.Code).To(Equal(tt.wantCode), w.Body.String())
			if tt.wantLocation != "" {
				g.Expect(w.Header().Get("Location")).To(Equal(tt.wantLocation))
			}
			if tt.wantCode == http.StatusOK {
				g.Expect(w.Header().Get(headerUser)).To(Equal(ana))
			} else {
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
			}
		})
	}
}
