// Package revocation keeps, for each user, a "not valid before" instant:
// MFA sessions and remembered-browser cookies of the user issued before it
// no longer count. An administrator's `reset` or `revoke`, and a user's
// "sign out of all other browsers", write one. A user signing out of one
// browser from the Security page lists that browser's id instead, until
// its cookies expire (browsers.go).
//
// Every challenge-server replica holds all of them in memory (a List) and
// follows where they are kept: a few sharded ConfigMaps in a cluster
// (ClusterStore, watched), a file in standalone mode (FileStore, polled).
// Checking a cookie costs one map lookup; nothing is read on the request
// path.
package revocation

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// MaxAge is how long a revocation is kept: the longest rememberFor a
// policy may have. A cookie issued before an older revocation has no
// factor any rule still accepts (factors count from when they were
// answered, at most rememberFor ago), so no policy change can bring a
// pruned one back.
const MaxAge = v1alpha1.MaxRememberFor

// List is the revocations in force, by user: an immutable map swapped
// whole on every change, so that readers take no lock.
type List struct {
	cur atomic.Pointer[map[string]int64]
	now func() time.Time

	mu     sync.Mutex
	shards map[string]map[string]int64

	// browsers is the browsers revoked alone (browsers.go): browser id to
	// user, swapped whole as cur; browserShards are their shards.
	browsers      atomic.Pointer[map[string]string]
	browserShards map[string]map[string]Browser
}

// NewList returns a List that answers "revoked" for every user until its
// first Replace or ReplaceAll (a replica that has not read the
// revocations yet fails closed). now is the clock (time.Now if nil).
func NewList(now func() time.Time) *List {
	if now == nil {
		now = time.Now
	}
	return &List{now: now, shards: map[string]map[string]int64{}, browserShards: map[string]map[string]Browser{}}
}

// NotBefore is the instant (Unix nanoseconds) before which user's cookies
// do not count; 0 when none. Before the List is first filled, every user's
// cookies are refused (math.MaxInt64).
func (l *List) NotBefore(user string) int64 {
	m := l.cur.Load()
	if m == nil {
		return math.MaxInt64
	}
	return (*m)[user]
}

// Synced says whether the List was filled at least once.
func (l *List) Synced() bool { return l.cur.Load() != nil }

// Len is the number of users with a revocation in force.
func (l *List) Len() int {
	if m := l.cur.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// Replace sets the revocations of one shard (nil: none).
func (l *List) Replace(shard string, entries map[string]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if entries == nil {
		delete(l.shards, shard)
	} else {
		l.shards[shard] = entries
	}
	l.publish()
}

// ReplaceAll sets every shard at once (after a list).
func (l *List) ReplaceAll(shards map[string]map[string]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shards = shards
	l.publish()
}

// publish builds the map readers see, without entries past MaxAge.
func (l *List) publish() {
	oldest := l.now().Add(-MaxAge).UnixNano()
	n := 0
	for _, s := range l.shards {
		n += len(s)
	}
	m := make(map[string]int64, n)
	for _, s := range l.shards {
		for user, at := range s {
			if at >= oldest && at > m[user] {
				m[user] = at
			}
		}
	}
	l.cur.Store(&m)
}

// prune drops the entries of entries older than MaxAge before now.
func prune(entries map[string]int64, now time.Time) {
	oldest := now.Add(-MaxAge).UnixNano()
	for k, at := range entries {
		if at < oldest {
			delete(entries, k)
		}
	}
}
