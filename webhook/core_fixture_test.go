package webhook

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// coreClock is an injected clock tests move by hand.
type coreClock struct {
	mu sync.Mutex
	t  time.Time
}

func newCoreClock() *coreClock {
	return &coreClock{t: time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)}
}

func (c *coreClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *coreClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// The front door's address in tests, and a client's.
const (
	coreProxyAddr  = "10.9.0.2:41000"
	coreClientAddr = "203.0.113.7:52000"
)

type coreFixture struct {
	t     testing.TB
	s     *Server
	clock *coreClock
	kr    *keyring.Data
	logs  *bytes.Buffer
}

type coreOption func(*Options)

// newCoreServer builds a server with a fixed clock, a file store in a
// temporary directory, a fresh keyring, trusting 10.9.0.0/16 as proxies,
// and the objects of yamlDocs loaded as its bundle.
func newCoreServer(t testing.TB, yamlDocs string, opts ...coreOption) *coreFixture {
	t.Helper()
	g := NewWithT(t)
	clock := newCoreClock()
	st, err := store.NewFileStore(filepath.Join(t.TempDir(), "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = st.Close() })
	logs := &bytes.Buffer{}
	o := Options{
		PublicURL:      "https://auth.example.com",
		CookieDomain:   "example.com",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		Store:          st,
		Now:            clock.Now,
		Logger:         slog.New(slog.NewJSONHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := NewServer(o)
	g.Expect(err).NotTo(HaveOccurred())
	f := &coreFixture{t: t, s: s, clock: clock, logs: logs}
	kd, err := keyring.Generate(clock.Now())
	g.Expect(err).NotTo(HaveOccurred())
	f.setKeyring(kd)
	if yamlDocs != "" {
		f.load(yamlDocs)
	}
	return f
}

// lockedWriter lets background goroutines log while a test reads.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *coreFixture) setKeyring(kd *keyring.Data) {
	f.t.Helper()
	raw, err := kd.Marshal()
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred())
	NewWithT(f.t).Expect(f.s.config.ApplyKeyring(raw, "test")).To(Succeed())
	f.kr = kd
}

// load builds a bundle from YAML objects as the standalone server does and
// puts it in force.
func (f *coreFixture) load(yamlDocs string) {
	f.t.Helper()
	g := NewWithT(f.t)
	b := bundleFromYAML(f.t, yamlDocs)
	_, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.s.config.ApplyBundle(b, hash, "test")).To(Succeed())
}

func bundleFromYAML(t testing.TB, yamlDocs string) *policy.Bundle {
	t.Helper()
	g := NewWithT(t)
	objs := source.NewObjects()
	g.Expect(objs.AddFile("test.yaml", []byte(yamlDocs))).To(Succeed())
	b, verdicts := objs.Build(nil, nil)
	for k, err := range verdicts.Policies {
		g.Expect(err).NotTo(HaveOccurred(), "MFAPolicy %s", k)
	}
	for k, err := range verdicts.Providers {
		g.Expect(err).NotTo(HaveOccurred(), "MFAProvider %s", k)
	}
	return b
}

// authRequest is the front door's auth sub-request for a GET of original
// by a user (header identity), from the trusted proxy.
func authRequest(path, original string, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = coreProxyAddr
	r.Header.Set("X-Original-URL", original)
	r.Header.Set("X-Original-Method", http.MethodGet)
	r.Header.Set("X-Forwarded-For", "198.51.100.20")
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func (f *coreFixture) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.s.handler.ServeHTTP(w, r)
	return w
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	NewWithT(t).Expect(os.WriteFile(path, []byte(content), 0o600)).To(Succeed())
}

// A TOTP provider and a policy for admin.example.com with header identity.
const coreProvidersYAML = `
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: duo, namespace: apps }
spec:
  type: duo
  duo:
    apiHost: api-test.duosecurity.com
    integrationKeyRef: { name: duo-credentials, key: ikey }
    secretKeyRef: { name: duo-credentials, key: skey }
    failMode: open
---
apiVersion: v1
kind: Secret
metadata: { name: duo-credentials, namespace: apps }
stringData: { ikey: DIXXXXXXXXXXXXXXXXXX, skey: not-a-real-secret-key }
`

const coreAdminPolicyYAML = coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: admin, namespace: apps }
spec:
  hosts: [admin.example.com]
  identity:
    header: { user: X-Auth-Request-Email, groups: X-Auth-Request-Groups, name: X-Auth-Request-User }
  rules:
  - name: vpn
    when: 'cidr("10.0.0.0/8").containsIP(ip(request.ip))'
    action: Allow
  - name: blocked
    when: '"blocked" in user.groups'
    action: Deny
  - name: billing
    when: 'request.path.startsWith("/billing")'
    action: RequireMFA
    multifactor: { providers: [google-authenticator], rememberFor: 1h }
  - name: strict
    when: 'request.path.startsWith("/strict")'
    action: RequireMFA
    multifactor: { providers: [google-authenticator, duo], ignoreCookie: true }
  - name: public
    when: 'request.path.startsWith("/public")'
    action: Allow
  - name: everyone-else
    when: 'request.method != "OPTIONS"'
    action: RequireMFA
    multifactor: { providers: [google-authenticator, duo] }
`

func discardLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// reloadConfigDir loads the server's config directory (its Source) once.
func reloadConfigDir(s *Server) { s.opts.Source.(*source.Dir).Reload(s.config) }

// identifyAt identifies the user of r through e as the challenge pages do.
func identifyAt(s *Server, r *http.Request, e *policyEntry) (*identity, error) {
	return e.identify(r.Context(), r, nil, s.pages.proxies.fromTrustedProxy(r), nil)
}
