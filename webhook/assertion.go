package webhook

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

const (
	// assertionLifetime is how long an X-MFA-Assertion is valid.
	assertionLifetime = 5 * time.Minute
	// assertionRenewBefore: a cached assertion is signed again when it has
	// less than this left, so apps always receive one valid for a while.
	assertionRenewBefore = 2 * time.Minute
	assertionCacheSize   = 10000
)

// assertionSigner signs the X-MFA-Assertion of allowed requests. It keeps
// the signed assertion of each (policy, user, host, factors), so that the
// hot path signs a few times per user and host every few minutes, never
// per request.
type assertionSigner struct {
	// issuer is the public URL, the assertions' iss ("" for none).
	issuer string
	log    *slog.Logger

	mu      sync.RWMutex
	entries map[assertionKey]*signedAssertion
}

type assertionKey struct{ policy, user, host, multifactor string }

type signedAssertion struct {
	token   string
	kid     string
	renewAt time.Time
	// answer holds the values of X-MFA-User, X-MFA-Multifactor and
	// X-MFA-Assertion, so that an answer sets its headers without
	// allocating. They are never modified once cached.
	answer [3]string
	// checkAnswer is the allowed Check's answer that sets the same
	// headers, made at the first Check that needs it (see allowedCheck).
	checkAnswer atomic.Pointer[authv3.CheckResponse]
}

func newAssertionSigner(publicURL *url.URL, log *slog.Logger) *assertionSigner {
	a := &assertionSigner{log: log, entries: map[assertionKey]*signedAssertion{}}
	if publicURL != nil {
		a.issuer = publicURL.String()
	}
	return a
}

// assertion returns the signed X-MFA-Assertion of a decision: sub the
// user, aud the host, policy the deciding MFAPolicy (namespace/name, so an
// app can pin the policy meant to protect it), multifactor and amr the
// claimed factors (empty when none was needed), iat, exp; signed ES256 with the keyring's current
// signing key, published at /.well-known/jwks.json. nil when the keyring
// has no signing key or signing fails.
func (c *assertionSigner) sign(kr *keyring.Keyring, policyKey, user, host, multifactor string, now time.Time) *signedAssertion {
	signers := kr.Signers()
	if len(signers) == 0 {
		return nil
	}
	signer := signers[0]
	k := assertionKey{policyKey, user, host, multifactor}
	c.mu.RLock()
	a := c.entries[k]
	c.mu.RUnlock()
	if a != nil && a.kid == signer.ID && now.Before(a.renewAt) {
		return a
	}

	claims := jwt.MapClaims{
		"sub":         user,
		"aud":         host,
		"policy":      policyKey,
		"iat":         now.Unix(),
		"nbf":         now.Add(-time.Minute).Unix(),
		"exp":         now.Add(assertionLifetime).Unix(),
		"multifactor": splitNames(visibleMultifactor(multifactor)),
		"amr":         amr(multifactor),
	}
	if c.issuer != "" {
		claims["iss"] = c.issuer
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = signer.ID
	token, err := t.SignedString(signer.Key)
	if err != nil {
		c.log.Error("signing the MFA assertion", "error", err)
		return nil
	}
	user, host = strings.Clone(user), strings.Clone(host)
	a = &signedAssertion{
		token: token, kid: signer.ID, renewAt: now.Add(assertionLifetime - assertionRenewBefore),
		answer: [3]string{user, visibleMultifactor(multifactor), token},
	}
	c.mu.Lock()
	if len(c.entries) >= assertionCacheSize {
		clear(c.entries)
	}
	c.entries[assertionKey{policyKey, user, host, multifactor}] = a
	c.mu.Unlock()
	return a
}

func splitNames(list string) []string {
	if list == "" {
		return []string{}
	}
	return strings.Split(list, ",")
}

// amr lists the authentication methods (RFC 8176) of the claimed factors:
// "mfa" when there is any, "otp" for a one-time password app, and a
// WebAuthn key's own: "hwk" for a key bound to its hardware, "swk" for a
// passkey that may be synced.
func amr(multifactor string) []string {
	if multifactor == "" {
		return []string{}
	}
	out := []string{"mfa"}
	if session.HasFactor(multifactor, v1alpha1.MultifactorGoogleAuthenticator) {
		out = append(out, "otp")
	}
	for entry := range strings.SplitSeq(multifactor, ",") {
		if _, method := session.Claimed(entry); method != "" && !slices.Contains(out, method) {
			out = append(out, method)
		}
	}
	return out
}

// visibleMultifactor is the X-MFA-Multifactor value of what sessions.Check
// reports: the multifactor names, without the methods some carry
// ("webauthn+hwk" is reported as "webauthn"). Without a method it is the
// value itself, not a copy.
func visibleMultifactor(claimed string) string {
	if !strings.Contains(claimed, "+") {
		return claimed
	}
	var names []string
	for entry := range strings.SplitSeq(claimed, ",") {
		if name, _ := session.Claimed(entry); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}

// jwksDoc caches the JWKS document of one keyring.
type jwksDoc struct {
	kr   *keyring.Keyring
	body []byte
}

// jwksEndpoint publishes the public keys of every signing key in the
// keyring in force, so that assertions signed with a key being rotated
// out still verify.
type jwksEndpoint struct {
	config *config
	doc    atomic.Pointer[jwksDoc]
}

func (j *jwksEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kr := j.config.snapshot().Keyring
	if kr == nil {
		http.Error(w, "no keyring loaded yet", http.StatusServiceUnavailable)
		return
	}
	doc := j.doc.Load()
	if doc == nil || doc.kr != kr {
		doc = &jwksDoc{kr: kr, body: jwksJSON(kr)}
		j.doc.Store(doc)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(doc.body)
}

func jwksJSON(kr *keyring.Keyring) []byte {
	type key struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	set := struct {
		Keys []key `json:"keys"`
	}{Keys: []key{}}
	for _, sg := range kr.Signers() {
		pub, err := sg.Key.PublicKey.Bytes() // uncompressed point: 0x04 | X | Y
		if err != nil || len(pub) != 65 {
			continue
		}
		enc := base64.RawURLEncoding.EncodeToString
		set.Keys = append(set.Keys, key{Kty: "EC", Crv: "P-256", X: enc(pub[1:33]), Y: enc(pub[33:]), Kid: sg.ID, Alg: "ES256", Use: "sig"})
	}
	b, _ := json.Marshal(set)
	return b
}
