package webhook

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Temporary definitions; each moves to its own file.

type loadError struct{ err error }
type metrics struct{ reg *prometheus.Registry }

func newMetrics() *metrics { return &metrics{reg: prometheus.NewRegistry()} }
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

const cookieCacheSize = 10000

type cookieCache struct{}

func newCookieCache(int) *cookieCache { return &cookieCache{} }

type assertionCache struct{}

func newAssertionCache() *assertionCache { return &assertionCache{} }

type verifierRegistry struct{}

func newVerifierRegistry(*Server) *verifierRegistry { return &verifierRegistry{} }

func (s *Server) watch(ctx context.Context) error { <-ctx.Done(); return nil }

func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusForbidden)
}
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {}
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request)  {}
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request)    {}

// identify finds the user of a request through the policy's identity
// source; nil, nil means no identity (answer 401).
func (s *Server) identify(r *http.Request, p *policy.CompiledPolicy) (*Identity, error) {
	return nil, nil
}

// clientIP is the client's address: from X-Real-IP / X-Forwarded-For when
// the peer is a trusted proxy, else the peer's own address.
func (s *Server) clientIP(r *http.Request) netip.Addr { return netip.Addr{} }

// issueSession sets the MFA session cookie (and the remembered-browser
// cookie unless rule.IgnoreCookie or the mode is SessionFailOpen) after a
// successful second factor with providerKey (namespace/name).
func (s *Server) issueSession(w http.ResponseWriter, r *http.Request, id *Identity, p *policy.CompiledPolicy, rule *policy.CompiledRule, providerKey string, mode SessionMode) {
}

// requiredRule evaluates the policy for the request the browser will be
// sent back to (original, from rd) and returns the RequireMFA rule that
// asks for a second factor. nil, nil: no second factor needed; ErrDenied:
// a rule or the default denies; any other error: fail closed.
func (s *Server) requiredRule(r *http.Request, p *policy.CompiledPolicy, id *Identity, original *url.URL) (*policy.CompiledRule, error) {
	return nil, ErrDenied
}
