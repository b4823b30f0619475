// Package webhook is the challenge server the front door asks about every
// protected request: /auth decisions, the challenge pages, sessions and the
// keys apps verify assertions with.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// Options configure a Server.
type Options struct {
	// Namespace holds the bundle, keyring and enrolment Secrets (cluster mode).
	Namespace string
	// PublicURL is the challenge server's external URL, e.g.
	// https://auth.example.com; challenge URLs are built from it.
	PublicURL string
	// CookieDomain is the domain of the MFA cookies (empty: host-only).
	CookieDomain string
	// TrustedProxies are the peers whose X-Forwarded-*, X-Original-* and
	// identity headers are believed.
	TrustedProxies []netip.Prefix
	// TrustXRealIP believes X-Real-IP from a trusted proxy before
	// X-Forwarded-For: only for a front door that sets X-Real-IP itself,
	// replacing what the client sent (ingress-nginx does; Traefik and
	// Caddy pass the client's own on).
	TrustXRealIP bool
	// AllowAmbiguousPaths judges original paths that servers read
	// differently (encoded slashes or dots, dot segments, ";", double
	// encoding) on a cleaned form instead of refusing them; see pathMode.
	AllowAmbiguousPaths bool
	// InsecureCookies drops the Secure attribute (local http demos only).
	InsecureCookies bool
	// IdentityHeaders are the only identity headers policies may name;
	// nil allows any. A policy naming another one is refused.
	IdentityHeaders []string
	// ListenAddr is the address Run serves the auth endpoints and the
	// pages on (default :8080).
	ListenAddr string
	// MetricsAddr is the address Run serves Prometheus metrics on, a
	// listener of its own so that the front door's clients never reach
	// them ("" or "0": no metrics endpoint).
	MetricsAddr string
	// ConfigDir, when set, selects standalone mode: MFAPolicy, MFAProvider
	// and Secret objects are read from YAML/JSON files there and the
	// directory is polled for changes.
	ConfigDir string
	// DataDir holds the standalone keyring (keyring.json, generated 0600
	// when absent) and enrolment store.
	DataDir string
	// Client is the cluster client (cluster mode); nil in standalone mode.
	Client client.Client
	// Store keeps enrolments.
	Store store.Store
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Logger receives structured logs (slog.Default by default).
	Logger *slog.Logger
	// Lockout bounds failed second-factor attempts.
	Lockout totp.Lockout
	// DuoCallLimits bound the calls to Duo's preauth and auth per user and
	// per client address; zero fields take the defaults.
	DuoCallLimits DuoCallLimits
	// GCHeadroom is the heap growth allowed between garbage collections
	// while the live heap is small (see tuneGC); 0 leaves Go's default.
	GCHeadroom uint64
}

// Identity is who the first factor says the user is.
type Identity struct {
	User policy.User
	// AuthTime is when the user logged in upstream (JWT auth_time, else
	// iat); zero when the identity source does not say.
	AuthTime time.Time
	// Source is the identity source: "header" or "jwt".
	Source string
}

// ErrDenied is returned by requiredRule when the request being returned to
// is denied by a rule or by the policy's default.
var ErrDenied = errors.New("denied by policy")

// Server is the challenge server.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// realClock: now is time.Now, so the time an auth request started is
	// its decision's now too (one clock read fewer per request).
	realClock bool
	publicURL *url.URL
	// paths says which original paths are judged and how (from
	// Options.AllowAmbiguousPaths).
	paths pathMode

	snap atomic.Pointer[Snapshot]
	// loadMu serialises loads; loader is what they share; status is the
	// copy /readyz reads.
	loadMu sync.Mutex
	loader loaderState
	status atomic.Pointer[loadStatus]
	jwks   atomic.Pointer[jwksDoc]

	metrics    *metrics
	sessions   *session.Jar
	pages      *challengePages
	assertions *assertionCache
	verifiers  *verifierRegistry

	// totp verifies and enrols TOTP codes against the store.
	totp *totp.Authenticator

	handler http.Handler
}

// NewServer checks the options and builds a server. Configuration is
// loaded by Run (or Load, in tests).
func NewServer(opts Options) (*Server, error) {
	if opts.ListenAddr == "" {
		opts.ListenAddr = ":8080"
	}
	realClock := opts.Now == nil
	if realClock {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Store == nil {
		return nil, errors.New("no enrolment store configured")
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		realClock: realClock,
	}
	if opts.AllowAmbiguousPaths {
		s.paths = pathsAmbiguousAllowed
	}
	if opts.PublicURL != "" {
		u, err := url.Parse(opts.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("--public-url %q is not an absolute http(s) URL, e.g. https://auth.example.com", opts.PublicURL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		s.publicURL = u
	}
	s.metrics = newMetrics()
	s.sessions = session.NewJar(opts.CookieDomain, !opts.InsecureCookies)
	s.assertions = newAssertionCache()
	s.verifiers = newVerifierRegistry(s)
	s.snap.Store(emptySnapshot())
	s.totp = &totp.Authenticator{
		Store:   &lockoutCounter{Store: opts.Store, now: opts.Now, counted: s.lockedOut},
		Keyring: s.keyring,
		Now:     opts.Now,
		Lockout: opts.Lockout,
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler: the auth endpoints and the
// pages.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler returns the handler of the metrics listener: /metrics in
// the Prometheus text format, nothing else.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth/{namespace}/{policy}", s.handleAuth)
	mux.HandleFunc("/auth", s.handleAuth)
	mux.HandleFunc("/forward-auth/{namespace}/{policy}", s.handleForwardAuth)
	mux.HandleFunc("/forward-auth", s.handleForwardAuth)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	s.registerChallengeRoutes(mux)
	return &router{s: s, mux: mux}
}

// router answers the auth endpoints, which the front door calls on every
// protected request, without the ServeMux's pattern matching; every other
// request, and any auth path that is not plain (escapes, dot segments,
// empty segments), goes through the mux, whose routes cover the same
// paths with the same handlers.
type router struct {
	s   *Server
	mux *http.ServeMux
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect && r.URL.RawPath == "" {
		p := r.URL.Path
		if rest, ok := strings.CutPrefix(p, "/auth"); ok {
			if ns, name, ok := policyPath(rest); ok {
				rt.s.serveDecision(w, r, ns, name, parseOriginal, false)
				return
			}
		} else if rest, ok := strings.CutPrefix(p, "/forward-auth"); ok {
			if ns, name, ok := policyPath(rest); ok {
				rt.s.serveDecision(w, r, ns, name, parseForwarded, true)
				return
			}
		}
	}
	rt.mux.ServeHTTP(w, r)
}

// policyPath reads what follows /auth: nothing (the policy is chosen by
// host), or /{namespace}/{policy} with two plain segments.
func policyPath(rest string) (ns, name string, ok bool) {
	if rest == "" {
		return "", "", true
	}
	if rest[0] != '/' {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest[1:], "/")
	if !ok || !plainSegment(ns) || !plainSegment(name) {
		return "", "", false
	}
	return ns, name, true
}

func plainSegment(seg string) bool {
	return seg != "" && seg != "." && seg != ".." && strings.IndexByte(seg, '/') < 0
}

const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 32 << 10
	// maxBodyBytes bounds every request body (challenge forms are small).
	maxBodyBytes  = 64 << 10
	shutdownGrace = 10 * time.Second
)

// Run loads the configuration, keeps it up to date and serves until ctx is
// cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, metricsLn, err := s.listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln, metricsLn)
}

// listen opens the listeners of ListenAddr and MetricsAddr (nil when
// metrics are off).
func (s *Server) listen() (ln, metricsLn net.Listener, err error) {
	ln, err = net.Listen("tcp", s.opts.ListenAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s: %w", s.opts.ListenAddr, err)
	}
	if addr := s.opts.MetricsAddr; addr != "" && addr != "0" {
		if metricsLn, err = net.Listen("tcp", addr); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("listening on %s (--metrics-addr): %w", addr, err)
		}
	}
	return ln, metricsLn, nil
}

// Serve is Run on given listeners: ln for the auth endpoints and the
// pages, metricsLn (nil: none) for the metrics. Both stop together, and
// both are closed when it returns.
func (s *Server) Serve(ctx context.Context, ln, metricsLn net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loaderDone := make(chan error, 1)
	go func() { loaderDone <- s.watch(ctx) }()
	go tuneGC(ctx, s.opts.GCHeadroom, s.log)

	servers := []*http.Server{s.httpServer(ctx, limitBody(s.handler))}
	listeners := []net.Listener{ln}
	if metricsLn != nil {
		servers = append(servers, s.httpServer(ctx, s.MetricsHandler()))
		listeners = append(listeners, metricsLn)
	}
	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}
	s.log.Info("challenge server listening", "addr", ln.Addr().String())
	if metricsLn != nil {
		s.log.Info("metrics listening", "addr", metricsLn.Addr().String())
	}
	// stop shuts every server down and waits for the pending Serve calls
	// to return, so that every listener is closed.
	stop := func(pending int) {
		shutdown(servers, s.log)
		for range pending {
			<-serveErr
		}
	}

	select {
	case err := <-serveErr:
		cancel()
		stop(len(servers) - 1)
		<-loaderDone
		return err
	case err := <-loaderDone:
		stop(len(servers))
		if err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	case <-ctx.Done():
		stop(len(servers))
		<-loaderDone
		return nil
	}
}

func (s *Server) httpServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}

// limitBody bounds request bodies. Requests without a body (every auth
// request) pass untouched: http.MaxBytesHandler would copy each of them.
func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength > maxBodyBytes {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		h.ServeHTTP(w, r)
	})
}

// shutdown stops the servers gracefully, all within one shutdownGrace.
func shutdown(servers []*http.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("graceful shutdown did not finish", "error", err)
		}
	}
}
