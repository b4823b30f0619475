package webhook

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// The tenant boundary, through the server's own handlers: a policy answers
// only for its hosts and says so in the assertion; a provider of another
// namespace serves a policy only when it admits the policy's namespace;
// enrolments, pending secrets and lockouts belong to one provider.

// tenancyHostsYAML: apps/admin lists admin.example.com, apps/wild a
// wildcard, apps/anyhost no host at all.
const tenancyHostsYAML = coreAdminPolicyYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: wild, namespace: apps }
spec:
  hosts: ["*.apps.example.com"]
  identity: { header: {} }
  rules:
  - { name: everyone, when: 'true', action: Allow }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: anyhost, namespace: apps }
spec:
  identity: { header: {} }
  rules:
  - { name: everyone, when: 'true', action: Allow }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: anyhost-too, namespace: apps }
spec:
  identity: { header: {} }
  rules:
  - { name: everyone, when: 'true', action: Allow }
`

func TestTenancyAuthAnswersOnlyForThePolicyHosts(t *testing.T) {
	f := newCoreServer(t, tenancyHostsYAML)
	user := map[string]string{"X-Auth-Request-Email": ana}
	tests := []struct {
		name     string
		path     string
		original string
		wantCode int
		wantBody string
	}{
		{name: "a host the policy does not list", path: "/auth/apps/admin", original: "https://other.example.com/public/",
			wantCode: http.StatusForbidden, wantBody: "MFAPolicy apps/admin does not list the host other.example.com in spec.hosts"},
		{name: "another tenant's host with the listed one as a prefix", path: "/auth/apps/admin", original: "https://admin.example.com.evil.example.net/public/",
			wantCode: http.StatusForbidden, wantBody: "does not list the host admin.example.com.evil.example.net"},
		{name: "the listed host", path: "/auth/apps/admin", original: "https://admin.example.com/public/", wantCode: http.StatusOK},
		{name: "the listed host in upper case, with a port and a trailing dot", path: "/auth/apps/admin", original: "https://ADMIN.Example.com.:8443/public/",
			wantCode: http.StatusOK},
		{name: "a host under the listed wildcard", path: "/auth/apps/wild", original: "https://billing.apps.example.com/", wantCode: http.StatusOK},
		{name: "a host two labels under the listed wildcard", path: "/auth/apps/wild", original: "https://eu.billing.apps.example.com/", wantCode: http.StatusOK},
		{name: "the wildcard's own domain is not under it", path: "/auth/apps/wild", original: "https://apps.example.com/",
			wantCode: http.StatusForbidden, wantBody: "MFAPolicy apps/wild does not list the host apps.example.com"},
		{name: "a host that only ends like the wildcard", path: "/auth/apps/wild", original: "https://evilapps.example.com/",
			wantCode: http.StatusForbidden, wantBody: "does not list the host evilapps.example.com"},
		{name: "a policy listing no host answers for the host it is asked about", path: "/auth/apps/anyhost", original: "https://anything.example.net/",
			wantCode: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			w := f.serve(authRequest(tt.path, tt.original, user))
			g.Expect(w.Code).To(Equal(tt.wantCode), w.Body.String())
			g.Expect(w.Body.String()).To(ContainSubstring(tt.wantBody))
			if tt.wantCode != http.StatusOK {
				g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
				g.Expect(w.Header().Get(headerAssertion)).To(BeEmpty())
			}
		})
	}

	t.Run("forward-auth refuses a host the policy does not list", func(t *testing.T) {
		g := NewWithT(t)
		w := f.serve(forwardAuthRequest("/forward-auth/apps/admin", map[string]string{
			"X-Auth-Request-Email": ana, "X-Forwarded-Host": "other.example.com", "X-Forwarded-Uri": "/public/"}))
		g.Expect(w.Code).To(Equal(http.StatusForbidden), w.Body.String())
		g.Expect(w.Body.String()).To(ContainSubstring("does not list the host other.example.com"))
	})
}

func TestTenancyAssertionNamesTheDecidingPolicy(t *testing.T) {
	f := newCoreServer(t, tenancyHostsYAML)
	claimsOf := func(g Gomega, r *http.Request) map[string]any {
		w := f.serve(r)
		g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
		return f.verifyAssertion(w.Header().Get(headerAssertion))
	}

	t.Run("after a second factor", func(t *testing.T) {
		g := NewWithT(t)
		cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
		c := claimsOf(g, withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), cookies...))
		g.Expect(c["policy"]).To(Equal("apps/admin"))
		g.Expect(c["aud"]).To(Equal("admin.example.com"))
		g.Expect(c["sub"]).To(Equal(ana))
	})

	t.Run("the same user and host through two policies get two assertions", func(t *testing.T) {
		g := NewWithT(t)
		headers := map[string]string{"X-Auth-Request-Email": ana}
		a := claimsOf(g, authRequest("/auth/apps/anyhost", "https://shared.example.net/", headers))
		b := claimsOf(g, authRequest("/auth/apps/anyhost-too", "https://shared.example.net/", headers))
		g.Expect(a["policy"]).To(Equal("apps/anyhost"))
		g.Expect(b["policy"]).To(Equal("apps/anyhost-too"), "the assertion cache is keyed by the policy too")
		g.Expect(a["aud"]).To(Equal("shared.example.net"))
		g.Expect(b["aud"]).To(Equal("shared.example.net"))
	})
}

// tenancyConfigYAML: platform/totp admits team-b by name and the
// namespaces labelled shared-providers=true (team-c); team-b also has a
// provider of its own; team-d is neither listed nor labelled.
const tenancyConfigYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: team-c
  labels: { mfa.operator.dev/shared-providers: "true" }
---
apiVersion: v1
kind: Namespace
metadata: { name: team-d }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: totp, namespace: platform }
spec:
  type: totp
  totp: { issuer: Platform }
  allowedNamespaces: [team-b]
  allowedNamespaceSelector:
    matchLabels: { mfa.operator.dev/shared-providers: "true" }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: own-totp, namespace: team-b }
spec:
  type: totp
  totp: { issuer: Team B }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: portal, namespace: platform }
spec:
  hosts: [portal.example.com]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [totp] }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: team-b }
spec:
  hosts: [app.team-b.example.com]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: shared
    when: 'request.path.startsWith("/shared")'
    action: RequireMFA
    multifactor: { providers: [platform/totp] }
  - name: own
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [own-totp] }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: team-c }
spec:
  hosts: [app.team-c.example.com]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [platform/totp] }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: team-d }
spec:
  hosts: [app.team-d.example.com]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: everyone
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [platform/totp] }
`

// The challenge pages of the tenancy fixture and where they return to.
const (
	portalPage = "/challenge/platform/portal"
	teamBPage  = "/challenge/team-b/app"
	teamCPage  = "/challenge/team-c/app"
	portalRD   = "https://portal.example.com/"
	sharedRD   = "https://app.team-b.example.com/shared/report"
	ownRD      = "https://app.team-b.example.com/own/report"
	teamCRD    = "https://app.team-c.example.com/"
)

// newTenancyFixture is newChallengeFixture with the tenancy objects, in
// standalone mode (the build reads the Namespaces' labels), logging JSON.
func newTenancyFixture(t *testing.T) *challengeFixture {
	t.Helper()
	g := NewWithT(t)
	configDir, dataDir := t.TempDir(), t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(configDir, "objects.yaml"), []byte(tenancyConfigYAML), 0o600)).To(Succeed())
	st, err := store.NewFileStore(filepath.Join(dataDir, "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = st.Close() })
	clock := &challengeClock{t: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(&syncWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewServer(Options{
		PublicURL:      "https://auth.example.com",
		CookieDomain:   "example.com",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		Source:         &source.Dir{ConfigDir: configDir, DataDir: dataDir, Now: clock.Now, Log: log},
		Store:          st,
		Now:            clock.Now,
		Logger:         log,
	})
	g.Expect(err).NotTo(HaveOccurred())
	reloadConfigDir(s)
	for _, key := range [][2]string{{"platform", "portal"}, {"team-b", "app"}, {"team-c", "app"}} {
		g.Expect(s.config.snapshot().Policy(key[0], key[1])).NotTo(BeNil(), "%s/%s is in force; logs:\n%s", key[0], key[1], logs)
	}
	return &challengeFixture{t: t, s: s, st: st, clock: clock, logs: logs, clientIP: "198.51.100.20"}
}

func pageWithRD(page, rd string, extra ...string) string {
	q := url.Values{"rd": {rd}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return page + "?" + q.Encode()
}

// submitTo posts the last page's form whose action ends with suffix to
// page+suffix, with its hidden fields and the given ones.
func (b *browser) submitTo(page, suffix string, fields url.Values) *httptest.ResponseRecorder {
	b.f.t.Helper()
	form := b.form(suffix)
	for k, v := range fields {
		form[k] = v
	}
	return b.post(page+suffix, form)
}

// enrolAt walks the user through enrolment on page for rd and returns the
// QR code's content.
func (b *browser) enrolAt(page, rd string) otpauth {
	b.f.t.Helper()
	g := NewWithT(b.f.t)
	w := b.get(pageWithRD(page, rd))
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Set up your authenticator app"))
	o := b.scanQR()
	w = b.submitTo(page, "/enroll", url.Values{"code": {b.f.code(o, b.f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Save your recovery codes"))
	return o
}

// authWith asks /auth/{policy} about original with the browser's cookies
// for the original's host.
func (b *browser) authWith(policyPath, original string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "http://mfa-challenge/auth/"+policyPath, nil)
	r.RemoteAddr = challengeProxyAddr
	r.Header.Set("X-Original-URL", original)
	r.Header.Set("X-Original-Method", http.MethodGet)
	r.Header.Set("X-Real-IP", b.f.clientIP)
	r.Header.Set("X-Auth-Request-Email", b.user)
	u, err := url.Parse(original)
	NewWithT(b.f.t).Expect(err).NotTo(HaveOccurred())
	for _, c := range b.jar.Cookies(u) {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	b.f.s.handler.ServeHTTP(w, r)
	return w
}

// TestTenancyProviderNotAdmittedIsNotInForce: a policy naming a provider
// of another namespace that admits it neither by name nor by label is not
// loaded at all; its pages and /auth say it is not in force.
func TestTenancyProviderNotAdmittedIsNotInForce(t *testing.T) {
	g := NewWithT(t)
	f := newTenancyFixture(t)
	g.Expect(f.s.config.snapshot().Policy("team-d", "app")).To(BeNil())
	g.Expect(f.logs.String()).To(ContainSubstring(`MFAProvider platform/totp does not admit policies of namespace \"team-d\"`))

	b := f.browser(challengeUser)
	w := b.authWith("team-d/app", "https://app.team-d.example.com/")
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Body.String()).To(ContainSubstring("no MFAPolicy team-d/app is in force"))
	w = b.get(pageWithRD("/challenge/team-d/app", "https://app.team-d.example.com/"))
	g.Expect(w.Code).To(Equal(http.StatusNotFound))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("<form"))
}
