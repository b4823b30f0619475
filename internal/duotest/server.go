// Package duotest is a Duo Auth API v2 server for tests: HTTPS with its own
// CA (clients trust it only through CAPEM), request signatures and dates
// verified on every signed call, scripted users, and every request
// recorded.
package duotest

import (
	"crypto/rand"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// DefaultMaxClockSkew is how far a request's Date may be from the server's
// clock before it is refused (40105).
const DefaultMaxClockSkew = 5 * time.Minute

// Request is one request the server received, refused or not.
type Request struct {
	Method string
	// Path is the endpoint, e.g. /auth/v2/preauth.
	Path string
	// Params are the query (GET) or form body (POST) parameters.
	Params url.Values
	// IKey is the integration key the request was signed with, if any.
	IKey      string
	UserAgent string
	// HTTPStatus is the status answered.
	HTTPStatus int
	// Code is the Duo error code answered, 0 when the answer was stat OK.
	Code int
}

// Server is a Duo Auth API server for tests.
type Server struct {
	t    testing.TB
	pki  *testPKI
	ikey string
	skey string
	now  func() time.Time
	skew time.Duration

	mu         sync.Mutex
	srv        *httptest.Server
	addr       string
	users      map[string]*User
	txs        map[string]*transaction
	requests   []Request
	failWith   int
	retryAfter string        // Retry-After of the failWith answers
	impostor   *testPKI      // when set, the certificate presented instead of pki's
	hang       chan struct{} // non-nil while requests hang; closed to release them
	hanging    int           // requests waiting on hang
}

type transaction struct {
	username string
	answer   authAnswer
	pending  int
}

// Option configures a Server.
type Option func(*Server)

// WithUser adds a scripted user, or replaces the one of the same name.
func WithUser(u User) Option {
	return func(s *Server) { s.users[u.Username] = &u }
}

// WithKeys sets the integration and secret keys (random by default).
func WithKeys(ikey, skey string) Option {
	return func(s *Server) { s.ikey, s.skey = ikey, skey }
}

// WithClock sets the server's clock, used to check request dates.
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithMaxClockSkew sets how far a request's Date may be from the server's
// clock.
func WithMaxClockSkew(d time.Duration) Option {
	return func(s *Server) { s.skew = d }
}

// NewServer starts a server on 127.0.0.1 with the default scripted users
// (see the User* constants) and closes it when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	pki, err := newTestPKI("duotest")
	if err != nil {
		t.Fatalf("duotest: %v", err)
	}
	s := &Server{
		t:     t,
		pki:   pki,
		ikey:  "DI" + randomString(18, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
		skey:  randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
		now:   time.Now,
		skew:  DefaultMaxClockSkew,
		users: map[string]*User{},
		txs:   map[string]*transaction{},
	}
	for _, u := range defaultUsers() {
		WithUser(u)(s)
	}
	for _, opt := range opts {
		opt(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("duotest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(ln net.Listener) {
	srv := httptest.NewUnstartedServer(s)
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{
		Certificates:       []tls.Certificate{s.pki.cert},
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: s.impostorConfig,
	}
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	// TLS handshake errors (a client refusing the certificate) go to the
	// test's log, not to stderr.
	srv.Config.ErrorLog = log.New(testWriter{s.t}, "duotest: ", 0)
	srv.StartTLS()
	s.srv = srv
}

// impostorConfig presents the impostor's certificate while there is one
// (see PresentUntrustedCertificate); nil keeps the server's own.
func (s *Server) impostorConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.impostor == nil {
		return nil, nil
	}
	return &tls.Config{Certificates: []tls.Certificate{s.impostor.cert}, MinVersion: tls.VersionTLS12}, nil
}

// PresentUntrustedCertificate makes the server present, on new
// connections, a certificate for the same names signed by another CA, as
// an interception would; false restores its own. Open connections are
// closed so that the next request handshakes again.
func (s *Server) PresentUntrustedCertificate(on bool) {
	s.t.Helper()
	var impostor *testPKI
	if on {
		var err error
		if impostor, err = newTestPKI("impostor"); err != nil {
			s.t.Fatalf("duotest: %v", err)
		}
	}
	s.mu.Lock()
	s.impostor = impostor
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
	}
}

// APIHost is the server's host:port, to use as a Duo API host.
func (s *Server) APIHost() string { return s.addr }

// CAPEM is the PEM certificate of the CA that signed the server's
// certificate: the only way for a client to trust the server.
func (s *Server) CAPEM() string { return string(s.pki.caPEM) }

// IKey is the integration key the server accepts.
func (s *Server) IKey() string { return s.ikey }

// SKey is the secret key requests must be signed with.
func (s *Server) SKey() string { return s.skey }

// Credentials are the server's keys and CA bundle, as a Duo provider's
// resolved credentials.
func (s *Server) Credentials() policy.DuoCredentials {
	return policy.DuoCredentials{IntegrationKey: s.ikey, SecretKey: s.skey, CABundle: s.CAPEM()}
}

// SetUser adds or replaces a scripted user while the server runs.
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.Username] = &u
}

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Params = cloneValues(r.Params)
		out[i] = r
	}
	return out
}

// RequestsTo returns the requests received for one path, in order.
func (s *Server) RequestsTo(path string) []Request {
	return slices.DeleteFunc(s.Requests(), func(r Request) bool { return r.Path != path })
}

// FailWith makes the server answer every request with this HTTP status
// (e.g. 503 or 429) and Duo's error shape; 0 restores normal answers.
func (s *Server) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWith, s.retryAfter = status, ""
}

// RateLimit makes the server answer every request as Duo does when it
// rate limits an application: HTTP 429, code 42901, with a Retry-After of
// retryAfter (in seconds) when it is positive. FailWith(0) restores
// normal answers.
func (s *Server) RateLimit(retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWith, s.retryAfter = http.StatusTooManyRequests, ""
	if retryAfter > 0 {
		s.retryAfter = strconv.Itoa(int(retryAfter / time.Second))
	}
}

// Hang makes every request wait, without an answer, until the client gives
// up, Hang(false) is called or the server stops.
func (s *Server) Hang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case on && s.hang == nil:
		s.hang = make(chan struct{})
	case !on && s.hang != nil:
		close(s.hang)
		s.hang = nil
	}
}

// Hanging is how many requests are waiting because of Hang.
func (s *Server) Hanging() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hanging
}

// Stop closes the listener and every connection: Duo is unreachable
// (connection refused) until Start. Users, transactions and recorded
// requests are kept.
func (s *Server) Stop() {
	s.Hang(false)
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Start listens again on the same address after Stop. Call it from the
// test's goroutine.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("duotest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// Close stops the server for good; NewServer registers it with t.Cleanup.
func (s *Server) Close() { s.Stop() }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
