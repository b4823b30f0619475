//go:build e2e

package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// recordingAuthServer stands where the challenge server listens, so that
// this test checks nginx's rendering of auth-url/auth-signin on its own:
// it answers /auth like the challenge server (401, 403 or 200 with the
// X-MFA-* headers) and records what nginx sent.
type recordingAuthServer struct {
	mu       sync.Mutex
	requests []*http.Request
}

func (s *recordingAuthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(r.Context()))
	s.mu.Unlock()
	switch {
	case r.URL.Path == "/.well-known/jwks.json":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	case r.URL.Path != "/auth/apps/admin":
		// The challenge pages: echo who nginx says the user is.
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("challenge for " + r.Header.Get("X-Auth-Request-Email") + " authorization=" + strconv.FormatBool(r.Header.Get("Authorization") != "")))
	case func() bool { u, _ := url.Parse(r.Header.Get("X-Original-URL")); return u != nil && u.Path == "/denied" }():
		w.WriteHeader(http.StatusForbidden)
	case hasCookie(r, "mfa", "ok"):
		w.Header().Set("X-MFA-User", r.Header.Get("X-Auth-Request-Email"))
		w.Header().Set("X-MFA-Multifactor", "google-authenticator")
		w.Header().Set("X-MFA-Assertion", "header.payload.signature")
		w.WriteHeader(http.StatusOK)
	default:
		http.SetCookie(w, &http.Cookie{Name: "mfa_csrf", Value: "x", Path: "/", HttpOnly: true})
		w.WriteHeader(http.StatusUnauthorized)
	}
}

func (s *recordingAuthServer) reset() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

func (s *recordingAuthServer) seen() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

func hasCookie(r *http.Request, name, value string) bool {
	c, err := r.Cookie(name)
	return err == nil && c.Value == value
}

// TestNginxRendersIngressNginxExternalAuth checks that the nginx in front
// of the sample app behaves as ingress-nginx does with auth-url,
// auth-signin and auth-response-headers, with basic authentication as the
// first factor.
func TestNginxRendersIngressNginxExternalAuth(t *testing.T) {
	g := NewWithT(t)
	auth := &recordingAuthServer{}
	port := harness.FreePort(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	g.Expect(err).NotTo(HaveOccurred())
	srv := &http.Server{Handler: auth}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	env := harness.Start(t, harness.Options{
		Components:  []string{harness.SampleApp, harness.Nginx},
		WebhookPort: port,
	})
	signin := env.URL + "/challenge/apps/admin"

	t.Run("no first-factor login is asked for, and /auth is not asked", func(t *testing.T) {
		g := NewWithT(t)
		auth.reset()
		p := env.NewClient("", "").GetNoRedirect(t, "/private")
		g.Expect(p.Status).To(Equal(http.StatusUnauthorized))
		g.Expect(p.Header.Get("WWW-Authenticate")).To(HavePrefix("Basic "))
		g.Expect(auth.seen()).To(BeEmpty())
	})

	t.Run("a wrong password is refused, and /auth is not asked", func(t *testing.T) {
		g := NewWithT(t)
		auth.reset()
		p := env.NewClient(env.User, "wrong").GetNoRedirect(t, "/private")
		g.Expect(p.Status).To(Equal(http.StatusUnauthorized))
		g.Expect(auth.seen()).To(BeEmpty())
	})

	t.Run("a 401 from /auth redirects to auth-signin with rd escaped as ingress-nginx does", func(t *testing.T) {
		g := NewWithT(t)
		auth.reset()
		c := env.NewClient(env.User, env.Password)
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/private/page?a=1&b=x%20y", nil)
		req.Header.Set("X-Auth-Request-Email", "mallory@example.com")
		p := c.Do(t, req, false)
		g.Expect(p.Status).To(Equal(http.StatusFound))
		g.Expect(p.Header.Get("Location")).To(Equal(signin + "?rd=http://" + env.Host + "%2Fprivate%2Fpage%3Fa%3D1%26b%3Dx%2520y"))
		loc, err := url.Parse(p.Header.Get("Location"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc.Query().Get("rd")).To(Equal(env.URL + "/private/page?a=1&b=x%20y"))
		g.Expect(p.Header.Values("Set-Cookie")).To(ContainElement(HavePrefix("mfa_csrf=x")))

		seen := auth.seen()
		g.Expect(seen).To(HaveLen(1))
		r := seen[0]
		g.Expect(r.URL.Path).To(Equal("/auth/apps/admin"))
		g.Expect(r.Method).To(Equal(http.MethodGet))
		g.Expect(r.Header.Get("X-Original-URL")).To(Equal(env.URL + "/private/page?a=1&b=x%20y"))
		g.Expect(r.Header.Get("X-Original-Method")).To(Equal(http.MethodGet))
		g.Expect(r.Header.Get("X-Sent-From")).To(Equal("nginx-ingress-controller"))
		g.Expect(r.Header.Get("X-Real-IP")).To(Equal("127.0.0.1"))
		g.Expect(r.Header.Get("X-Forwarded-For")).To(Equal("127.0.0.1"))
		g.Expect(r.Header.Get("X-Auth-Request-Email")).To(Equal(env.User), "the client's header must be overwritten")
		g.Expect(r.Header.Get("Authorization")).To(BeEmpty(), "the basic credentials stay in nginx")
		g.Expect(r.ContentLength).To(BeZero())
	})

	t.Run("a POST body is not sent to /auth", func(t *testing.T) {
		g := NewWithT(t)
		auth.reset()
		c := env.NewClient(env.User, env.Password)
		c.Jar.Put(harness.JarCookie{Name: "mfa", Value: "ok", Domain: "app.localhost", HostOnly: true, Path: "/"})
		p := c.PostForm(t, env.URL+"/form", url.Values{"secret": {"body"}})
		g.Expect(p.Status).To(Equal(http.StatusOK))
		seen := auth.seen()
		g.Expect(seen).To(HaveLen(1))
		g.Expect(seen[0].Header.Get("X-Original-Method")).To(Equal(http.MethodPost))
		g.Expect(seen[0].ContentLength).To(BeZero())
	})

	t.Run("a 200 from /auth reaches the app with the auth-response-headers, overwriting the client's", func(t *testing.T) {
		g := NewWithT(t)
		c := env.NewClient(env.User, env.Password)
		c.Jar.Put(harness.JarCookie{Name: "mfa", Value: "ok", Domain: "app.localhost", HostOnly: true, Path: "/"})
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/hello", nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-MFA-User", "mallory@example.com")
		req.Header.Set("X-MFA-Multifactor", "forged")
		p := c.Do(t, req, false)
		g.Expect(p.Status).To(Equal(http.StatusOK))
		var app map[string]any
		g.Expect(json.Unmarshal([]byte(p.Body), &app)).To(Succeed())
		g.Expect(app["assertionError"]).NotTo(BeEmpty(), "the app refuses an assertion no published key signed")
		delete(app, "assertionError")
		g.Expect(app).To(Equal(map[string]any{
			"user": env.User, "multifactor": "google-authenticator",
			"hasAssertion": true, "assertion": "header.payload.signature", "assertionVerified": false,
			"method": "GET", "host": env.Host, "uri": "/hello",
			"firstFactorUser": env.User, "authorization": false,
		}))
	})

	t.Run("a 403 from /auth is a 403", func(t *testing.T) {
		g := NewWithT(t)
		p := env.NewClient(env.User, env.Password).GetNoRedirect(t, "/denied")
		g.Expect(p.Status).To(Equal(http.StatusForbidden))
	})

	t.Run("the challenge pages get the first-factor user, not the credentials", func(t *testing.T) {
		g := NewWithT(t)
		req, _ := http.NewRequest(http.MethodGet, signin+"?rd=x", nil)
		req.Header.Set("X-Auth-Request-Email", "mallory@example.com")
		p := env.NewClient(env.User2, env.Password2).Do(t, req, false)
		g.Expect(p.Status).To(Equal(http.StatusOK))
		g.Expect(p.Body).To(Equal("challenge for " + env.User2 + " authorization=false"))
	})

	t.Run("the challenge pages need the first factor", func(t *testing.T) {
		g := NewWithT(t)
		p := env.NewClient("", "").GetNoRedirect(t, signin)
		g.Expect(p.Status).To(Equal(http.StatusUnauthorized))
	})

	t.Run("the JWKS is public", func(t *testing.T) {
		g := NewWithT(t)
		p := env.NewClient("", "").GetNoRedirect(t, "/.well-known/jwks.json")
		g.Expect(p.Status).To(Equal(http.StatusOK))
		g.Expect(p.Body).To(MatchJSON(`{"keys":[]}`))
	})
}

// TestControlPlaneServesTheCRDs checks the local control plane: the CRDs
// from config/ are established and their validation rules reject a bad
// object at `kubectl apply`.
func TestControlPlaneServesTheCRDs(t *testing.T) {
	g := NewWithT(t)
	env := harness.Start(t, harness.Options{Components: []string{}})

	out := env.MustKubectl(t, "", "get", "crd", "-o", "name")
	g.Expect(out).To(ContainSubstring("customresourcedefinition.apiextensions.k8s.io/mfapolicies.mfa.operator.dev"))
	g.Expect(out).To(ContainSubstring("customresourcedefinition.apiextensions.k8s.io/mfaproviders.mfa.operator.dev"))

	env.Apply(t, `apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: google-authenticator, namespace: apps}
spec: {type: totp}
`)
	g.Expect(env.MustKubectl(t, "", "-n", "apps", "get", "mfaprovider", "google-authenticator", "-o", "jsonpath={.spec.totp}")).To(BeEmpty())

	_, err := env.Kubectl(`apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: broken, namespace: apps}
spec: {type: duo}
`, "apply", "-f", "-")
	g.Expect(err).To(MatchError(ContainSubstring("spec.duo is required when type is duo")))
}
