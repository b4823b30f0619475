package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/jwks"
	"github.com/mfa-operator/mfa-operator/internal/lru"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

const (
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
	now       func() time.Time
	mu        sync.Mutex
	verifiers map[string]*jwtVerifier
	issuers   *jwks.Issuers
}

func newVerifierRegistry(now func() time.Time, log *slog.Logger) *verifierRegistry {
	return &verifierRegistry{
		now:       now,
		verifiers: map[string]*jwtVerifier{},
		issuers:   jwks.NewIssuers(now, log),
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
	v := &jwtVerifier{
		cfg:    *cfg,
		keys:   vr.issuers.KeySet(cfg.JWKSURL),
		now:    vr.now,
		tokens: lru.New[string, *verifiedToken](tokenCacheSize),
		parser: jwt.NewParser(
			jwt.WithValidMethods(validJWTMethods),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(jwtLeeway),
			jwt.WithTimeFunc(vr.now),
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
	keys   *jwks.KeySet
	now    func() time.Time
	parser *jwt.Parser
	tokens *lru.Cache[string, *verifiedToken]
	// Where the token is: Authorization: Bearer, another header, a cookie.
	bearer bool
	header string
}

type verifiedToken struct {
	id      *identity
	expires time.Time
}

// token extracts the token from the request, "" when absent.
func (v *jwtVerifier) token(r *http.Request) string {
	var t string
	switch {
	case v.cfg.Cookie != "":
		t = session.CookieValue(r, v.cfg.Cookie)
	case v.bearer:
		h := firstHeader(r.Header, "Authorization")
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			t = strings.TrimSpace(h[7:])
		}
	default:
		t = bearerToken(firstHeader(r.Header, v.header))
	}
	if len(t) > maxTokenBytes {
		return ""
	}
	return t
}

// tokenHeader is the header holding the token (canonical), when it is not
// a cookie.
func (v *jwtVerifier) tokenHeader() string {
	if v.bearer {
		return "Authorization"
	}
	return v.header
}

// bearerToken is a header's token, without a "Bearer " prefix; "" when
// it is too long to be considered.
func bearerToken(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		h = strings.TrimSpace(h[7:])
	}
	if len(h) > maxTokenBytes {
		return ""
	}
	return h
}

// identify verifies the request's token; nil, nil when there is none. A
// token seen before is answered from the cache until it expires.
func (v *jwtVerifier) identify(ctx context.Context, r *http.Request) (*identity, error) {
	t := v.token(r)
	if t == "" {
		return nil, nil
	}
	return v.identifyToken(ctx, t)
}

// identifyToken verifies a token, answering from the cache a token seen
// before until it expires.
func (v *jwtVerifier) identifyToken(ctx context.Context, t string) (*identity, error) {
	now := v.now()
	if vt, ok := v.tokens.Get(t); ok {
		if now.Before(vt.expires) {
			return vt.id, nil
		}
		v.tokens.Remove(t)
	}
	id, exp, err := v.verify(ctx, t)
	if err != nil {
		return nil, err
	}
	v.tokens.Add(strings.Clone(t), &verifiedToken{id: id, expires: exp})
	return id, nil
}

func (v *jwtVerifier) verify(ctx context.Context, raw string) (*identity, time.Time, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.keys.Key(ctx, kid, t.Method.Alg())
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
	id := &identity{Source: sourceJWT}
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
