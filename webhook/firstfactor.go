package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/lru"
)

// firstFactorCacheSize bounds the first-factor answers kept per
// configuration: a remembered user's /auth is answered from memory, and
// no number of distinct cookies grows it past this.
const firstFactorCacheSize = 10000

// What a first factor's answer can mean besides an identity. Each keeps
// the door closed; none is a 5xx to the front door (see auth.go).
var (
	// errSignInFirst: the first factor has no session for these cookies
	// (401): the browser goes to its sign-in page.
	errSignInFirst = errors.New("no first-factor session: sign in at the first factor")
	// errFirstFactorDenied: the first factor refused the user (403).
	errFirstFactorDenied = errors.New("the first factor refused the user")
	// errFirstFactorUnavailable: the first factor could not be asked, or
	// gave an answer that names no one (timeout, network, 5xx, circuit
	// open, a 2xx without the user header or a valid token).
	errFirstFactorUnavailable = errors.New("the first factor cannot be reached")
)

// firstFactorRegistry keeps one first factor per configuration across
// reloads, so that its cache and circuit stay when a policy does not
// change.
type firstFactorRegistry struct {
	now       func() time.Time
	log       *slog.Logger
	verifiers *verifierRegistry
	mu        sync.Mutex
	byConfig  map[string]*firstFactor
}

func newFirstFactorRegistry(now func() time.Time, log *slog.Logger, verifiers *verifierRegistry) *firstFactorRegistry {
	return &firstFactorRegistry{now: now, log: log, verifiers: verifiers, byConfig: map[string]*firstFactor{}}
}

// get returns the first factor of a configuration and its CA bundle,
// building it once.
func (fr *firstFactorRegistry) get(cfg *v1alpha1.ForwardAuthIdentity, caPEM string) (*firstFactor, error) {
	b, _ := json.Marshal(struct {
		C  *v1alpha1.ForwardAuthIdentity
		CA string
	}{cfg, caPEM})
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:])
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if f := fr.byConfig[key]; f != nil {
		return f, nil
	}
	f, err := newFirstFactor(cfg, caPEM, fr.now, fr.log)
	if err != nil {
		return nil, err
	}
	if cfg.Token != nil {
		f.token = fr.verifiers.get(cfg.Token)
	}
	fr.byConfig[key] = f
	return f, nil
}

// firstFactor asks a first-factor service (oauth2-proxy /oauth2/auth,
// Pomerium, Authelia) who the user of a request is.
type firstFactor struct {
	url    string
	signin string // signinURL with "rd=" to append
	client *http.Client
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
	// Response headers naming the user, canonical.
	userHeader, groupsHeader string
	nameHeaders              []string
	// cookies are the names of the cookies passed (a trailing * is a
	// prefix); nil passes every cookie but the challenge server's own.
	cookies     []string
	passHeaders []string
	// token verifies the token of the response, when configured.
	token   *jwtVerifier
	cache   *lru.Cache[[sha256.Size]byte, *firstFactorAnswer]
	calls   singleflight.Group
	breaker breaker
}

// firstFactorAnswer is an identity the first factor gave, until expires.
type firstFactorAnswer struct {
	id      *identity
	expires time.Time
}

func newFirstFactor(cfg *v1alpha1.ForwardAuthIdentity, caPEM string, now func() time.Time, log *slog.Logger) (*firstFactor, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("spec.identity.forwardAuth.caBundleRef holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy:               nil, // a cluster-internal service: never through an egress proxy
		TLSClientConfig:     tlsConfig,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	signin, err := url.Parse(cfg.SigninURL)
	if err != nil {
		return nil, fmt.Errorf("spec.identity.forwardAuth.signinURL: %w", err)
	}
	sep := "?"
	if signin.RawQuery != "" {
		sep = "&"
	}
	f := &firstFactor{
		url:    cfg.URL,
		signin: cfg.SigninURL + sep + "rd=",
		client: &http.Client{
			Transport: transport,
			Timeout:   cfg.GetTimeout(),
			// A redirect is an answer (sign in first), never followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ttl:          cfg.GetCacheTTL(),
		now:          now,
		log:          log,
		userHeader:   textproto.CanonicalMIMEHeaderKey(cfg.Headers.GetUserHeader()),
		groupsHeader: textproto.CanonicalMIMEHeaderKey(cfg.Headers.GetGroupsHeader()),
		cookies:      cfg.Cookies,
		cache:        lru.New[[sha256.Size]byte, *firstFactorAnswer](firstFactorCacheSize),
	}
	for _, h := range cfg.Headers.GetNameHeaders() {
		f.nameHeaders = append(f.nameHeaders, textproto.CanonicalMIMEHeaderKey(h))
	}
	for _, h := range cfg.PassHeaders {
		if c := textproto.CanonicalMIMEHeaderKey(h); c != "Cookie" && c != "Host" {
			f.passHeaders = append(f.passHeaders, c)
		}
	}
	return f, nil
}

// signinURL is the first factor's sign-in page, sent back to back (the
// challenge page, which returns to the app) afterwards.
func (f *firstFactor) signinURL(back string) string {
	return f.signin + url.QueryEscape(back)
}

// identify asks the first factor who the user of r is, with r's cookies
// and pass headers; orig is the original request when known (nil on the
// challenge pages). An answer is reused for the same credentials and host
// for the cache TTL; 401s and failures never are.
func (f *firstFactor) identify(ctx context.Context, r *http.Request, orig *originalRequest) (*identity, error) {
	host := ""
	if orig != nil {
		host = orig.host
	}
	// Without credentials the first factor is asked all the same: only it
	// can say whether the browser must sign in or it is down.
	key := f.credentialsKey(r, host)
	now := f.now()
	if a, ok := f.cache.Get(key); ok {
		if now.Before(a.expires) {
			return a.id, nil
		}
		f.cache.Remove(key)
	}
	// Concurrent requests of one browser share one call.
	v, err, _ := f.calls.Do(string(key[:]), func() (any, error) {
		id, err := f.ask(ctx, r, orig)
		if err == nil && f.ttl > 0 {
			f.cache.Add(key, &firstFactorAnswer{id: id, expires: f.now().Add(f.ttl)})
		}
		return id, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*identity), nil
}

// credentialsKey hashes what identifies the browser to the first factor:
// the cookies passed, the pass headers and the host. The bytes hashed are
// gathered in a pooled buffer, so that a cache hit allocates nothing.
func (f *firstFactor) credentialsKey(r *http.Request, host string) [sha256.Size]byte {
	bp := keyBuffers.Get().(*[]byte)
	b := append((*bp)[:0], host...)
	b = append(b, 0)
	f.eachCookie(r, func(part string) {
		b = append(b, part...)
		b = append(b, ';')
	})
	for _, name := range f.passHeaders {
		for _, v := range r.Header[name] {
			b = append(b, 0)
			b = append(b, name...)
			b = append(b, ':')
			b = append(b, v...)
		}
	}
	key := sha256.Sum256(b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		keyBuffers.Put(bp)
	}
	return key
}

// keyBuffers are the scratch buffers of credentialsKey.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// eachCookie calls fn with every "name=value" pair of r's cookies that is
// passed to the first factor.
func (f *firstFactor) eachCookie(r *http.Request, fn func(part string)) {
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			name, _, ok := strings.Cut(part, "=")
			if ok && f.passesCookie(name) {
				fn(part)
			}
		}
	}
}

func (f *firstFactor) passesCookie(name string) bool {
	if f.cookies == nil {
		return !ownCookie(name)
	}
	for _, c := range f.cookies {
		if p, prefix := strings.CutSuffix(c, "*"); prefix && strings.HasPrefix(name, p) || name == c {
			return true
		}
	}
	return false
}

// ownCookie: the challenge server's own cookies never go to the first
// factor.
func ownCookie(name string) bool {
	return strings.HasPrefix(name, "mfa_") || strings.HasPrefix(name, "__Host-mfa_")
}

// ask calls the first factor once, through the circuit breaker.
func (f *firstFactor) ask(ctx context.Context, r *http.Request, orig *originalRequest) (*identity, error) {
	if !f.breaker.allow(f.now()) {
		return nil, fmt.Errorf("%w: the circuit is open after repeated failures", errFirstFactorUnavailable)
	}
	resp, err := f.call(ctx, r, orig)
	if err != nil {
		f.breaker.failure(f.now())
		return nil, fmt.Errorf("%w: %v", errFirstFactorUnavailable, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 500:
		f.breaker.failure(f.now())
		return nil, fmt.Errorf("%w: it answered %d", errFirstFactorUnavailable, resp.StatusCode)
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode >= 300 && resp.StatusCode < 400:
		f.breaker.success()
		return nil, errSignInFirst
	case resp.StatusCode == http.StatusForbidden:
		f.breaker.success()
		return nil, errFirstFactorDenied
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		f.breaker.success()
		return nil, fmt.Errorf("%w: it answered %d", errFirstFactorUnavailable, resp.StatusCode)
	}
	f.breaker.success()
	return f.identityOf(ctx, resp.Header)
}

// call sends the request: r's passed cookies and headers, and the original
// request as the forward-auth dialects say it.
func (f *firstFactor) call(ctx context.Context, r *http.Request, orig *originalRequest) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, err
	}
	var cookies strings.Builder
	f.eachCookie(r, func(part string) {
		if cookies.Len() > 0 {
			cookies.WriteString("; ")
		}
		cookies.WriteString(part)
	})
	if cookies.Len() > 0 {
		req.Header.Set("Cookie", cookies.String())
	}
	for _, name := range f.passHeaders {
		if v := r.Header[name]; len(v) > 0 {
			req.Header[name] = v
		}
	}
	if orig != nil {
		req.Header.Set("X-Original-URL", orig.url())
		req.Header.Set("X-Original-Method", orig.method)
		req.Header.Set("X-Forwarded-Method", orig.method)
		req.Header.Set("X-Forwarded-Proto", orig.scheme)
		req.Header.Set("X-Forwarded-Host", orig.host)
		uri := orig.path
		if orig.rawQuery != "" {
			uri += "?" + orig.rawQuery
		}
		req.Header.Set("X-Forwarded-Uri", uri)
	}
	return f.client.Do(req)
}

// identityOf reads the identity of a 2xx answer: from its token when one
// is configured, else from its headers.
func (f *firstFactor) identityOf(ctx context.Context, h http.Header) (*identity, error) {
	if f.token != nil {
		t := bearerToken(firstHeader(h, f.token.tokenHeader()))
		if t == "" {
			return nil, fmt.Errorf("%w: its answer carries no token in %s (oauth2-proxy: --set-authorization-header)", errFirstFactorUnavailable, f.token.tokenHeader())
		}
		id, err := f.token.identifyToken(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("%w: its token was refused: %v", errFirstFactorUnavailable, err)
		}
		return id, nil
	}
	user := firstHeader(h, f.userHeader)
	if user == "" {
		return nil, fmt.Errorf("%w: its answer names no user in %s", errFirstFactorUnavailable, f.userHeader)
	}
	id := &identity{Source: sourceForwardAuth}
	id.User.ID = user
	if strings.IndexByte(user, '@') > 0 {
		id.User.Email = user
	}
	for _, n := range f.nameHeaders {
		if id.User.Name = firstHeader(h, n); id.User.Name != "" {
			break
		}
	}
	id.User.Groups = splitGroups(h[f.groupsHeader])
	return id, nil
}
