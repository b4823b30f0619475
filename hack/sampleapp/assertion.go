package main

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
)

// assertionVerifier checks X-MFA-Assertion as an app should: an ES256
// signature by a key the challenge server publishes at
// /.well-known/jwks.json, aud naming the host the request was for, and a
// current exp.
type assertionVerifier struct {
	jwksURL string
	// policy, when set, is the MFAPolicy (namespace/name) the assertion
	// must name: an app pins the policy meant to protect it.
	policy string
	client *http.Client

	mu      sync.Mutex
	keys    map[string]*ecdsa.PublicKey
	fetched time.Time
}

// jwksMaxAge is how long fetched keys are used before they are fetched
// again; an unknown kid is fetched at most every jwksMinInterval.
const (
	jwksMaxAge      = 5 * time.Minute
	jwksMinInterval = 10 * time.Second
)

func newAssertionVerifier(jwksURL, policy string) *assertionVerifier {
	return &assertionVerifier{jwksURL: jwksURL, policy: policy, client: &http.Client{Timeout: 5 * time.Second}}
}

// verify returns the claims of a valid assertion for host.
func (v *assertionVerifier) verify(ctx context.Context, token, host string) (jwt.MapClaims, error) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.key(ctx, kid)
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(host),
		jwt.WithExpirationRequired(), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, err
	}
	if v.policy != "" && claims["policy"] != v.policy {
		return nil, fmt.Errorf("the assertion was made by MFAPolicy %v, not %s", claims["policy"], v.policy)
	}
	return claims, nil
}

func (v *assertionVerifier) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, ok := v.keys[kid]
	age := time.Since(v.fetched)
	if ok && age < jwksMaxAge {
		return k, nil
	}
	if v.keys == nil || age >= jwksMinInterval {
		keys, err := v.fetch(ctx)
		if err != nil {
			return nil, err
		}
		v.keys, v.fetched = keys, time.Now()
		if k, ok := keys[kid]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no key %q at %s", kid, v.jwksURL)
}

func (v *assertionVerifier) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.jwksURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the keys: %s answered %d", v.jwksURL, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the keys: %w", err)
	}
	keys, err := jwks.ParseP256(data)
	if err != nil {
		return nil, fmt.Errorf("the keys at %s: %w", v.jwksURL, err)
	}
	return keys, nil
}
