// Package webhook is the challenge server the front door asks about every
// protected request: the HTTP server and its routes, /auth decisions, the
// challenge pages and the keys apps verify assertions with. The domains
// below it are packages of their own: the configuration sources
// (internal/source), sessions (internal/session), enrolments
// (internal/store), TOTP (internal/totp), Duo (internal/duo), JWKS
// (internal/jwks), rate limits (internal/ratelimit).
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
	"time"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/revocation"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// Options configure a Server.
type Options struct {
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
	// GRPCAddr is the address Run serves the Envoy ext_authz gRPC
	// dialect (envoy.service.auth.v3.Authorization/Check) and the gRPC
	// health service on ("" or "0": none).
	GRPCAddr string
	// MetricsAddr is the address Run serves Prometheus metrics on, a
	// listener of its own so that the front door's clients never reach
	// them ("" or "0": no metrics endpoint).
	MetricsAddr string
	// Source is where the configuration comes from: the bundle and keyring
	// Secrets in a cluster (source.Cluster), or a config directory in
	// standalone mode (source.Dir).
	Source source.Source
	// Store keeps enrolments.
	Store store.Store
	// Revocations is where the users' revocations are kept and followed
	// (revocation.ClusterStore or revocation.FileStore); nil: no
	// revocation is checked (tests of other concerns).
	Revocations RevocationStore
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Logger receives structured logs (slog.Default by default).
	Logger *slog.Logger
	// Lockout bounds failed second-factor attempts.
	Lockout totp.Lockout
	// GeoIP answers request.geo for the policies that read it; nil: no
	// database, and a policy reading request.geo fails closed (403).
	GeoIP *geoip.DB
	// GCHeadroom is the heap growth allowed between garbage collections
	// while the live heap is small (see tuneGC); 0 leaves Go's default.
	GCHeadroom uint64

	// duoCallLimits bound the calls to Duo's preauth and auth per user and
	// per client address; zero fields take the defaults (tests lower or
	// raise them).
	duoCallLimits duoCallLimits
}

// RevocationStore keeps the users' revocations: Run follows them into a
// List until its context ends; Revoke records one.
type RevocationStore interface {
	Run(ctx context.Context, l *revocation.List)
	Revoke(ctx context.Context, user string, at time.Time) error
}

// Server is the challenge server.
type Server struct {
	opts    Options
	log     *slog.Logger
	config  *config
	metrics *metrics
	pages   *challengePages
	handler http.Handler
	// grpc serves the Envoy ext_authz gRPC dialect and health; health is
	// SERVING once the configuration is ready.
	grpc   *grpc.Server
	health *health.Server
	// revoked is the revocations in force (nil without
	// Options.Revocations).
	revoked *revocation.List
}

// NewServer checks the options and builds a server. The configuration is
// loaded from Options.Source by Run.
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
	var publicURL *url.URL
	if opts.PublicURL != "" {
		u, err := url.Parse(opts.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("--public-url %q is not an absolute http(s) URL, e.g. https://auth.example.com", opts.PublicURL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		publicURL = u
	}
	paths := pathsStrict
	if opts.AllowAmbiguousPaths {
		paths = pathsAmbiguousAllowed
	}
	log, now := opts.Logger, opts.Now
	m := newMetrics()
	verifiers := newVerifierRegistry(now, log)
	auditLog := audit.New(log, m.reg)
	cfg := newConfig(&snapshotBuilder{
		log:             log,
		now:             now,
		metrics:         m,
		verifiers:       verifiers,
		firstFactors:    newFirstFactorRegistry(now, log, verifiers),
		publicURL:       publicURL,
		identityHeaders: opts.IdentityHeaders,
	}, m, log)
	proxies := &proxies{trusted: opts.TrustedProxies, trustXRealIP: opts.TrustXRealIP}
	sessions := session.NewJar(opts.CookieDomain, !opts.InsecureCookies)
	var revoked *revocation.List
	if opts.Revocations != nil {
		revoked = revocation.NewList(now)
		sessions.SetRevocations(revoked)
	}
	auth := &authHandler{
		config:     cfg,
		proxies:    proxies,
		paths:      paths,
		sessions:   sessions,
		assertions: newAssertionSigner(publicURL, log),
		metrics:    m,
		log:        log,
		now:        now,
		realClock:  realClock,
		geo:        opts.GeoIP,
	}
	pages := newChallengePages(pageOptions{
		config:        cfg,
		proxies:       proxies,
		paths:         paths,
		sessions:      sessions,
		metrics:       m,
		log:           log,
		now:           now,
		publicURL:     publicURL,
		cookieDomain:  opts.CookieDomain,
		insecure:      opts.InsecureCookies,
		store:         opts.Store,
		lockout:       opts.Lockout,
		duoCallLimits: opts.duoCallLimits,
		audit:         auditLog,
		revoker:       opts.Revocations,
	})
	s := &Server{opts: opts, log: log, config: cfg, metrics: m, pages: pages, health: newHealth(), revoked: revoked}
	s.handler = routes(auth, pages, cfg, revoked)
	s.grpc = newGRPCServer(auth, s.health)
	cfg.onReady = func(ready bool) { setHealth(s.health, ready) }
	return s, nil
}

// routes are the challenge server's endpoints, the auth ones first.
func routes(auth *authHandler, pages *challengePages, cfg *config, revoked *revocation.List) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth/{namespace}/{policy}", auth.handleAuth)
	mux.HandleFunc("/auth", auth.handleAuth)
	mux.HandleFunc("/forward-auth/{namespace}/{policy}", auth.handleForwardAuth)
	mux.HandleFunc("/forward-auth", auth.handleForwardAuth)
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.HandleFunc("GET /readyz", readyz(cfg, revoked))
	mux.Handle("GET /.well-known/jwks.json", &jwksEndpoint{config: cfg})
	pages.register(mux)
	return &router{auth: auth, mux: mux}
}

func handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// metricsHandler is the handler of the metrics listener: /metrics in the
// Prometheus text format, nothing else.
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
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
	grpcLn, err := s.listenGRPC()
	if err != nil {
		ln.Close()
		if metricsLn != nil {
			metricsLn.Close()
		}
		return err
	}
	return s.serveAll(ctx, ln, metricsLn, grpcLn)
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

// serve is Run on given listeners: ln for the auth endpoints and the
// pages, metricsLn (nil: none) for the metrics. Both stop together, and
// both are closed when it returns.
func (s *Server) serve(ctx context.Context, ln, metricsLn net.Listener) error {
	return s.serveAll(ctx, ln, metricsLn, nil)
}

// serveAll is serve with the gRPC listener grpcLn as well (nil: none).
func (s *Server) serveAll(ctx context.Context, ln, metricsLn, grpcLn net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loaderDone := make(chan error, 1)
	go func() { loaderDone <- s.watch(ctx) }()
	if s.revoked != nil {
		go s.opts.Revocations.Run(ctx, s.revoked)
	}
	go tuneGC(ctx, s.opts.GCHeadroom, s.log)

	servers := []*http.Server{s.httpServer(ctx, limitBody(s.handler))}
	listeners := []net.Listener{ln}
	if metricsLn != nil {
		servers = append(servers, s.httpServer(ctx, s.metricsHandler()))
		listeners = append(listeners, metricsLn)
	}
	serveErr := make(chan error, len(servers)+1)
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}
	running := len(servers)
	if grpcLn != nil {
		running++
		go func() { serveErr <- s.grpc.Serve(grpcLn) }()
	}
	s.log.Info("challenge server listening", "addr", ln.Addr().String())
	if metricsLn != nil {
		s.log.Info("metrics listening", "addr", metricsLn.Addr().String())
	}
	if grpcLn != nil {
		s.log.Info("ext_authz gRPC listening", "addr", grpcLn.Addr().String())
	}
	// stop shuts every server down and waits for the pending Serve calls
	// to return, so that every listener is closed.
	stop := func(pending int) {
		if grpcLn != nil {
			stopGRPC(s.grpc)
		}
		shutdown(servers, s.log)
		for range pending {
			<-serveErr
		}
	}

	select {
	case err := <-serveErr:
		cancel()
		stop(running - 1)
		<-loaderDone
		return err
	case err := <-loaderDone:
		stop(running)
		if err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	case <-ctx.Done():
		stop(running)
		<-loaderDone
		return nil
	}
}

// watch loads the configuration from its source and keeps it up to date
// until ctx ends.
func (s *Server) watch(ctx context.Context) error {
	if s.opts.Source == nil {
		return errors.New("no configuration source: set --config-dir (standalone) or run in a cluster")
	}
	return s.opts.Source.Run(ctx, s.config)
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
		ConnContext:       withPeer,
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
