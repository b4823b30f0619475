package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

const (
	// jwksMinRefresh rate-limits refetching an issuer's keys when a token
	// names an unknown kid, so that junk tokens cannot make us hammer it.
	jwksMinRefresh = 30 * time.Second
	// jwksMaxAge: keys this old are refetched in the background (when a
	// snapshot is built, or when a request uses them), so that keys the
	// issuer removed stop working.
	jwksMaxAge     = time.Hour
	jwksTimeout    = 5 * time.Second
	jwksMaxBytes   = 1 << 20
	tokenCacheSize = 10000
	// jwtLeeway is the clock skew accepted on exp, nbf and iat.
	jwtLeeway = 30 * time.Second
	// maxTokenBytes bounds the tokens considered at all.
	maxTokenBytes = 16 << 10
)

// validJWTMethods are the asymmetric algorithms accepted. "none" and the
// HMAC algorithms are never accepted: a public key must never serve as an
// HMAC secret.
var validJWTMethods = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// verifierRegistry keeps one verifier per JWT identity configuration across
// reloads, so that keys and verified tokens stay cached when a policy does
// not change; issuers' key sets are shared by URL.
type verifierRegistry struct {
	s         *Server
	mu        sync.Mutex
	verifiers map[string]*jwtVerifier
	keySets   map[string]*jwks
	client    *http.Client
}

func newVerifierRegistry(s *Server) *verifierRegistry {
	return &verifierRegistry{
		s:         s,
		verifiers: map[string]*jwtVerifier{},
		keySets:   map[string]*jwks{},
		client:    &http.Client{Timeout: jwksTimeout},
	}
}

// get returns the verifier of a configuration, building it once.
func (vr *verifierRegistry) get(cfg *v1alpha1.JWTIdentity) *jwtVerifier {
	b, _ := json.Marshal(cfg)
	key := string(b)
	vr.mu.Lock()
	defer vr.mu.Unlock()
	if v := vr.verifiers[key]; v != nil {
		return v
	}
	ks := vr.keySets[cfg.JWKSURL]
	if ks == nil {
		ks = &jwks{url: cfg.JWKSURL, client: vr.client, now: vr.s.now, log: vr.s.log}
		ks.keys.Store(&map[string]jwk{})
		vr.keySets[cfg.JWKSURL] = ks
	}
	v := &jwtVerifier{
		cfg:    *cfg,
		keys:   ks,
		now:    vr.s.now,
		tokens: newLRU[string, *verifiedToken](tokenCacheSize),
		parser: jwt.NewParser(
			jwt.WithValidMethods(validJWTMethods),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(jwtLeeway),
			jwt.WithTimeFunc(vr.s.now),
			jwt.WithJSONNumber(),
		),
	}
	if cfg.Header != "" && !strings.EqualFold(cfg.Header, "Authorization") {
		v.header = textproto.CanonicalMIMEHeaderKey(cfg.Header)
	} else if cfg.GetHeader() != "" {
		v.bearer = true
	}
	vr.verifiers[key] = v
	return v
}

// jwtVerifier checks tokens of one JWT identity configuration.
type jwtVerifier struct {
	cfg    v1alpha1.JWTIdentity
	keys   *jwks
	now    func() time.Time
	parser *jwt.Parser
	tokens *lru[string, *verifiedToken]
	// Where the token is: Authorization: Bearer, another header, a cookie.
	bearer bool
	header string
}

type verifiedToken struct {
	id      *Identity
	expires time.Time
}

// token extracts the token from the request, "" when absent.
func (v *jwtVerifier) token(r *http.Request) string {
	var t string
	switch {
	case v.cfg.Cookie != "":
		t = cookieValue(r, v.cfg.Cookie)
	case v.bearer:
		h := firstHeader(r.Header, "Authorization")
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			t = strings.TrimSpace(h[7:])
		}
	default:
		t = firstHeader(r.Header, v.header)
		if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
			t = strings.TrimSpace(t[7:])
		}
	}
	if len(t) > maxTokenBytes {
		return ""
	}
	return t
}

// errUnknownKey is logged, never shown: the answer is 401.
var errUnknownKey = errors.New("no key of the issuer matches the token's kid")

// identify verifies the request's token; nil, nil when there is none. A
// token seen before is answered from the cache until it expires.
func (v *jwtVerifier) identify(r *http.Request) (*Identity, error) {
	t := v.token(r)
	if t == "" {
		return nil, nil
	}
	now := v.now()
	if vt, ok := v.tokens.Get(t); ok {
		if now.Before(vt.expires) {
			return vt.id, nil
		}
		v.tokens.Remove(t)
	}
	id, exp, err := v.verify(r.Context(), t)
	if err != nil {
		return nil, err
	}
	v.tokens.Add(strings.Clone(t), &verifiedToken{id: id, expires: exp})
	return id, nil
}

func (v *jwtVerifier) verify(ctx context.Context, raw string) (*Identity, time.Time, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.keys.key(ctx, kid, t.Method.Alg())
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("JWT from issuer %q refused: %w", v.cfg.Issuer, err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, time.Time{}, errors.New("JWT has no valid exp")
	}
	user, _ := claims[v.cfg.GetUserClaim()].(string)
	if user == "" {
		return nil, time.Time{}, fmt.Errorf("JWT from issuer %q has no %q claim naming the user", v.cfg.Issuer, v.cfg.GetUserClaim())
	}
	id := &Identity{Source: SourceJWT}
	id.User.ID = user
	id.User.Email, _ = claims["email"].(string)
	id.User.Name, _ = claims["name"].(string)
	switch g := claims[v.cfg.GetGroupsClaim()].(type) {
	case []any:
		for _, x := range g {
			if s, ok := x.(string); ok {
				id.User.Groups = append(id.User.Groups, s)
			}
		}
	case string:
		id.User.Groups = splitGroups([]string{g})
	}
	id.AuthTime = numericTime(claims["auth_time"])
	if id.AuthTime.IsZero() {
		id.AuthTime = numericTime(claims["iat"])
	}
	id.User.Claims = policy.NewClaims(plainClaims(claims))
	return id, exp.Time.Add(jwtLeeway), nil
}

func numericTime(v any) time.Time {
	switch n := v.(type) {
	case json.Number:
		if f, err := n.Float64(); err == nil && f > 0 {
			return time.Unix(int64(f), 0)
		}
	case float64:
		if n > 0 {
			return time.Unix(int64(n), 0)
		}
	}
	return time.Time{}
}

// plainClaims turns json.Number values (kept exact while validating) into
// int64 or float64 for CEL.
func plainClaims(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plainValue(v)
	}
	return out
}

func plainValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return plainClaims(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = plainValue(x[i])
		}
		return out
	}
	return v
}

// jwks is an issuer's published keys, fetched on first use and again when
// a token names an unknown kid (at most every jwksMinRefresh).
type jwks struct {
	url    string
	client *http.Client
	now    func() time.Time
	log    interface {
		Warn(msg string, args ...any)
	}
	keys atomic.Pointer[map[string]jwk]

	mu        sync.Mutex // serialises fetches
	fetchedAt time.Time
	// lastFetch is fetchedAt for the lock-free staleness check of the hot
	// path; refreshing is set while a background refresh runs.
	lastFetch  atomic.Int64
	refreshing atomic.Bool
}

type jwk struct {
	alg string // the key's "alg", "" when not published
	key any
}

func (k *jwks) key(ctx context.Context, kid, alg string) (any, error) {
	if key, ok := k.lookup(kid, alg); ok {
		k.refreshInBackgroundIfOld()
		return key.key, checkKeyType(key, alg)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Another request may have fetched while this one waited.
	if key, ok := k.lookup(kid, alg); ok {
		return key.key, checkKeyType(key, alg)
	}
	if !k.fetchedAt.IsZero() && k.now().Sub(k.fetchedAt) < jwksMinRefresh {
		return nil, errUnknownKey
	}
	if err := k.fetch(ctx); err != nil {
		k.log.Warn("JWKS fetch failed; tokens signed with keys not known yet are refused", "url", k.url, "error", err)
		return nil, err
	}
	if key, ok := k.lookup(kid, alg); ok {
		return key.key, checkKeyType(key, alg)
	}
	return nil, errUnknownKey
}

// lookup finds kid; a token without kid matches the only key of its type.
func (k *jwks) lookup(kid, alg string) (jwk, bool) {
	keys := *k.keys.Load()
	if kid != "" {
		key, ok := keys[kid]
		return key, ok
	}
	var found jwk
	n := 0
	for _, key := range keys {
		if checkKeyType(key, alg) == nil {
			found = key
			n++
		}
	}
	return found, n == 1
}

// checkKeyType refuses a key used with an algorithm it is not for (an RSA
// key with ES256, a P-384 key with ES256, a key published for another alg).
func checkKeyType(k jwk, alg string) error {
	if k.alg != "" && k.alg != alg {
		return fmt.Errorf("key is published for %s, token uses %s", k.alg, alg)
	}
	switch key := k.key.(type) {
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil || key.Curve != want {
			return fmt.Errorf("EC key on %s cannot verify %s", key.Curve.Params().Name, alg)
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			return fmt.Errorf("RSA key cannot verify %s", alg)
		}
		if key.N.BitLen() < 2048 {
			return errors.New("RSA key shorter than 2048 bits")
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return fmt.Errorf("Ed25519 key cannot verify %s", alg)
		}
	default:
		return fmt.Errorf("unsupported key type %T", k.key)
	}
	return nil
}

// fetch replaces the keys with the issuer's current set. A failed fetch
// keeps the keys known so far.
func (k *jwks) fetch(ctx context.Context) error {
	k.fetchedAt = k.now()
	k.lastFetch.Store(k.fetchedAt.UnixNano())
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("JWKS URL %q: %w", k.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching JWKS %q: %w", k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching JWKS %q: status %d", k.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes))
	if err != nil {
		return fmt.Errorf("reading JWKS %q: %w", k.url, err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("JWKS %q: %w", k.url, err)
	}
	k.keys.Store(&keys)
	return nil
}

// refreshInBackgroundIfOld starts one background refresh when the keys
// are older than jwksMaxAge; the request goes on with the keys it has.
func (k *jwks) refreshInBackgroundIfOld() {
	if k.now().UnixNano()-k.lastFetch.Load() < int64(jwksMaxAge) || !k.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer k.refreshing.Store(false)
		k.refreshIfOld(context.Background())
	}()
}

// refreshIfOld refetches keys older than jwksMaxAge, so that keys the
// issuer removed stop being accepted. Errors are logged; the old keys stay.
func (k *jwks) refreshIfOld(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.fetchedAt.IsZero() && k.now().Sub(k.fetchedAt) < jwksMaxAge {
		return
	}
	if err := k.fetch(ctx); err != nil {
		k.log.Warn("JWKS refresh failed; keeping the keys known so far", "url", k.url, "error", err)
	}
}

type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS decodes the public keys of a JWK set; keys it cannot use
// (symmetric, encryption-only, unknown curves) are skipped.
func parseJWKS(data []byte) (map[string]jwk, error) {
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	out := make(map[string]jwk, len(set.Keys))
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key, err := k.publicKey()
		if err != nil || key == nil {
			continue
		}
		kid := k.Kid
		if kid == "" {
			kid = fmt.Sprintf("#%d", i)
		}
		out[kid] = jwk{alg: k.Alg, key: key}
	}
	return out, nil
}

func (k *jwkJSON) publicKey() (any, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, nil
		}
		x, err1 := dec(k.X)
		y, err2 := dec(k.Y)
		if err1 != nil || err2 != nil {
			return nil, errors.New("bad EC coordinates")
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinate size")
		}
		// Parse through the uncompressed point encoding, which checks
		// that the point is on the curve.
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	case "RSA":
		n, err1 := dec(k.N)
		e, err2 := dec(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := dec(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, nil
}
