package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Browser revocations: one browser of a user signed out alone (from the
// Security page). Its cookies carry a random browser id (see
// session.Issued); the id is listed, with its user, until the browser's
// remembered-browser cookie expires, then pruned. The List answers
// BrowserRevoked with one map lookup, as NotBefore.

// Browser is one revoked browser.
type Browser struct {
	// User owns the browser: the id counts for that user only.
	User string
	// Until is when the browser's cookies expire (Unix nanoseconds); the
	// entry is dropped after it.
	Until int64
}

// MaxBrowserIDLength bounds a browser id (session ids are 32 hex digits).
const MaxBrowserIDLength = 64

// checkBrowser refuses an id that could not name a browser, nor be a
// ConfigMap key: 1 to MaxBrowserIDLength lower-case hex digits.
func checkBrowser(user, browser string) error {
	if user == "" {
		return fmt.Errorf("revoking a browser: empty user id")
	}
	if browser == "" || len(browser) > MaxBrowserIDLength {
		return fmt.Errorf("revoking a browser of user %q: the browser id must be 1 to %d hex digits", user, MaxBrowserIDLength)
	}
	for i := 0; i < len(browser); i++ {
		if c := browser[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("revoking a browser of user %q: the browser id must be lower-case hex digits", user)
		}
	}
	return nil
}

// BrowserRevoked says whether user's browser was revoked alone (see
// session.BrowserRevocations): one map lookup, no allocation.
func (l *List) BrowserRevoked(user, browser string) bool {
	m := l.browsers.Load()
	if m == nil {
		return false // NotBefore refuses everything until the List is filled
	}
	owner, ok := (*m)[browser]
	return ok && owner == user
}

// BrowsersLen is the number of browsers revoked alone and in force.
func (l *List) BrowsersLen() int {
	if m := l.browsers.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// ReplaceBrowsers sets the browser revocations of one shard (nil: none).
func (l *List) ReplaceBrowsers(shard string, entries map[string]Browser) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if entries == nil {
		delete(l.browserShards, shard)
	} else {
		l.browserShards[shard] = entries
	}
	l.publishBrowsers()
}

// ReplaceAllBrowsers sets the browser revocations of every shard at once.
func (l *List) ReplaceAllBrowsers(shards map[string]map[string]Browser) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.browserShards = shards
	l.publishBrowsers()
}

// publishBrowsers builds the map readers see: browser id to user, without
// the browsers whose cookies expired.
func (l *List) publishBrowsers() {
	now := l.now().UnixNano()
	m := map[string]string{}
	for _, s := range l.browserShards {
		for id, b := range s {
			if b.Until >= now {
				m[id] = b.User
			}
		}
	}
	l.browsers.Store(&m)
}

// pruneBrowsers drops the entries whose cookies expired before now.
func pruneBrowsers(entries map[string]Browser, now time.Time) {
	for id, b := range entries {
		if b.Until < now.UnixNano() {
			delete(entries, id)
		}
	}
}

// BrowsersFileName is the file, next to FileName, that holds the
// browsers revoked alone: a JSON object of browser id to its user and
// expiry.
const BrowsersFileName = "revoked-browsers.json"

// browserFileEntry is one browser in BrowsersFileName.
type browserFileEntry struct {
	User  string `json:"user"`
	Until int64  `json:"until"`
}

func (s *FileStore) browsersPath() string {
	return filepath.Join(filepath.Dir(s.Path), BrowsersFileName)
}

// RevokeBrowser implements the writer side, as ClusterStore.RevokeBrowser.
func (s *FileStore) RevokeBrowser(ctx context.Context, user, browser string, until time.Time) error {
	if err := checkBrowser(user, browser); err != nil {
		return err
	}
	return s.locked(func() error {
		entries, err := s.readBrowsers()
		if err != nil {
			return err
		}
		if old, ok := entries[browser]; !ok || old.User != user || old.Until < until.UnixNano() {
			entries[browser] = Browser{User: user, Until: until.UnixNano()}
		}
		pruneBrowsers(entries, s.now())
		out := make(map[string]browserFileEntry, len(entries))
		for id, b := range entries {
			out[id] = browserFileEntry(b)
		}
		return writeJSON(s.browsersPath(), out)
	})
}

// readBrowsers returns the browsers file's entries; none when there is
// no file.
func (s *FileStore) readBrowsers() (map[string]Browser, error) {
	path := s.browsersPath()
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Browser{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	in := map[string]browserFileEntry{}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("reading %s: not a JSON object of browser ids to {user, until}: %w", path, err)
	}
	out := make(map[string]Browser, len(in))
	for id, b := range in {
		out[id] = Browser(b)
	}
	return out, nil
}

// browserKeyPrefix begins the ConfigMap key of a browser revoked alone,
// in its user's shard: "b." and the browser id (user entries' keys are
// hex digits only).
const browserKeyPrefix = "b."

func isBrowserKey(k string) bool { return strings.HasPrefix(k, browserKeyPrefix) }

// RevokeBrowser records that the cookies of user's browser no longer
// count, until they expire (until), pruning the shard on the way.
func (s *ClusterStore) RevokeBrowser(ctx context.Context, user, browser string, until time.Time) error {
	if err := checkBrowser(user, browser); err != nil {
		return err
	}
	key := browserKeyPrefix + browser
	return s.updateShard(ctx, ShardName(user), func(cm *corev1.ConfigMap) {
		if old, ok := cm.Data[key]; ok {
			if u, prev, ok := decodeEntry(old); ok && u == user && prev > until.UnixNano() {
				until = time.Unix(0, prev)
			}
		}
		cm.Data[key] = encodeEntry(user, until.UnixNano())
	})
}

// decodeBrowsers reads a shard's browser entries; entries that do not
// parse are skipped.
func decodeBrowsers(data map[string]string) map[string]Browser {
	out := map[string]Browser{}
	for k, v := range data {
		if !isBrowserKey(k) {
			continue
		}
		if user, until, ok := decodeEntry(v); ok {
			out[strings.TrimPrefix(k, browserKeyPrefix)] = Browser{User: user, Until: until}
		}
	}
	return out
}
