package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// MinRefresh rate-limits refetching an issuer's keys when a token
	// names an unknown kid, so that junk tokens cannot make us hammer it.
	MinRefresh = 30 * time.Second
	// MaxAge: keys this old are refetched in the background (when a
	// configuration is loaded, or when a request uses them), so that keys
	// the issuer removed stop working.
	MaxAge = time.Hour
	// fetchTimeout bounds one fetch; maxBytes the set read.
	fetchTimeout = 5 * time.Second
	maxBytes     = 1 << 20
)

// ErrUnknownKey: no key of the issuer matches the token's kid. It is
// logged, never shown.
var ErrUnknownKey = errors.New("no key of the issuer matches the token's kid")

// Issuers keeps one KeySet per JWKS URL, so that every identity
// configuration naming an issuer shares its keys, across reloads too.
type Issuers struct {
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu   sync.Mutex
	sets map[string]*KeySet
}

// NewIssuers returns an empty cache; now is the clock, log receives
// failed fetches.
func NewIssuers(now func() time.Time, log *slog.Logger) *Issuers {
	return &Issuers{client: &http.Client{Timeout: fetchTimeout}, now: now, log: log, sets: map[string]*KeySet{}}
}

// KeySet returns the keys published at url, created (empty, fetched on
// first use) the first time url is asked for.
func (is *Issuers) KeySet(url string) *KeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	ks := is.sets[url]
	if ks == nil {
		ks = &KeySet{url: url, client: is.client, now: is.now, log: is.log}
		ks.keys.Store(&map[string]Key{})
		is.sets[url] = ks
	}
	return ks
}

// KeySet is an issuer's published keys, fetched on first use and again
// when a token names an unknown kid (at most every MinRefresh), and
// refreshed in the background once older than MaxAge.
type KeySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	keys   atomic.Pointer[map[string]Key]

	mu        sync.Mutex // serialises fetches
	fetchedAt time.Time
	// lastFetch is fetchedAt for the lock-free staleness check of the hot
	// path; refreshing is set while a background refresh runs.
	lastFetch  atomic.Int64
	refreshing atomic.Bool
}

// Key returns the key a token signed with alg and naming kid verifies
// with; a token without kid matches the only key of its type. A key not
// known yet is fetched, at most every MinRefresh.
func (k *KeySet) Key(ctx context.Context, kid, alg string) (any, error) {
	if key, ok := k.lookup(kid, alg); ok {
		k.refreshInBackgroundIfOld()
		return key.Key, CheckKeyType(key, alg)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// Another request may have fetched while this one waited.
	if key, ok := k.lookup(kid, alg); ok {
		return key.Key, CheckKeyType(key, alg)
	}
	if !k.fetchedAt.IsZero() && k.now().Sub(k.fetchedAt) < MinRefresh {
		return nil, ErrUnknownKey
	}
	if err := k.fetch(ctx); err != nil {
		k.log.Warn("JWKS fetch failed; tokens signed with keys not known yet are refused", "url", k.url, "error", err)
		return nil, err
	}
	if key, ok := k.lookup(kid, alg); ok {
		return key.Key, CheckKeyType(key, alg)
	}
	return nil, ErrUnknownKey
}

// lookup finds kid; a token without kid matches the only key of its type.
func (k *KeySet) lookup(kid, alg string) (Key, bool) {
	keys := *k.keys.Load()
	if kid != "" {
		key, ok := keys[kid]
		return key, ok
	}
	var found Key
	n := 0
	for _, key := range keys {
		if CheckKeyType(key, alg) == nil {
			found = key
			n++
		}
	}
	return found, n == 1
}

// fetch replaces the keys with the issuer's current set. A failed fetch
// keeps the keys known so far.
func (k *KeySet) fetch(ctx context.Context) error {
	k.fetchedAt = k.now()
	k.lastFetch.Store(k.fetchedAt.UnixNano())
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes))
	if err != nil {
		return fmt.Errorf("reading JWKS %q: %w", k.url, err)
	}
	keys, err := Parse(body)
	if err != nil {
		return fmt.Errorf("JWKS %q: %w", k.url, err)
	}
	k.keys.Store(&keys)
	return nil
}

// refreshInBackgroundIfOld starts one background refresh when the keys
// are older than MaxAge; the request goes on with the keys it has.
func (k *KeySet) refreshInBackgroundIfOld() {
	if k.now().UnixNano()-k.lastFetch.Load() < int64(MaxAge) || !k.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer k.refreshing.Store(false)
		k.RefreshIfOld(context.Background())
	}()
}

// RefreshIfOld refetches keys older than MaxAge (or never fetched), so
// that keys the issuer removed stop being accepted. Errors are logged;
// the old keys stay.
func (k *KeySet) RefreshIfOld(ctx context.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.fetchedAt.IsZero() && k.now().Sub(k.fetchedAt) < MaxAge {
		return
	}
	if err := k.fetch(ctx); err != nil {
		k.log.Warn("JWKS refresh failed; keeping the keys known so far", "url", k.url, "error", err)
	}
}
