// Package ratelimit bounds how often one key (a client address, a user)
// may do something: a token bucket per key, in a map of bounded size.
package ratelimit

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Limit bounds how often one key (a client address, a user) may do
// something. Applied to challenge form submissions per client address, it
// complements the per-user lockout: the lockout stops guessing one user's
// codes, this stops one address from trying many users (or flooding the
// store).
type Limit struct {
	// PerMinute is the sustained number of submissions allowed per key.
	// Default 10.
	PerMinute float64
	// Burst is how many submissions may come at once. Default 10.
	Burst int
	// MaxClients bounds the keys tracked; the least recently seen is
	// forgotten first. Default 10000.
	MaxClients int
}

// Default is 10 submissions a minute per key, in bursts of 10, tracking
// up to 10000 keys.
var Default = Limit{PerMinute: 10, Burst: 10, MaxClients: 10000}

// Or fills the zero fields of c with def's.
func (c Limit) Or(def Limit) Limit {
	if c.PerMinute <= 0 {
		c.PerMinute = def.PerMinute
	}
	if c.Burst <= 0 {
		c.Burst = def.Burst
	}
	if c.MaxClients <= 0 {
		c.MaxClients = def.MaxClients
	}
	return c
}

// Limiter is a token bucket per key (a client address, a user), in a
// map of bounded size with least-recently-used eviction. The bucket is
// kept as the generic cell rate algorithm's single timestamp (the time at
// which the bucket would be full again), which is exact in integer time.
// normalize, when set, maps a key to its bucket first: the per-address
// limiter groups IPv6 clients by /64, the block one subscriber usually
// holds, so rotating addresses within it gains nothing.
type Limiter[K comparable] struct {
	interval  time.Duration // one token every interval
	tolerance time.Duration // (burst-1) intervals: how far ahead a bucket may run
	maxSize   int
	now       func() time.Time
	normalize func(K) K

	mu      sync.Mutex
	buckets map[K]*list.Element // of *bucket[K]
	lru     *list.List          // front: most recently seen
}

type bucket[K comparable] struct {
	key K
	// full is when the bucket is full again; each submission moves it one
	// interval later.
	full time.Time
}

// PerAddress limits per client address (see AddrKey); zero fields of cfg
// take Default's.
func PerAddress(cfg Limit, now func() time.Time) *Limiter[netip.Addr] {
	l := New[netip.Addr](cfg, now)
	l.normalize = AddrKey
	return l
}

// New limits per key, keys compared as they are; zero fields of cfg take
// Default's, a nil now is time.Now.
func New[K comparable](cfg Limit, now func() time.Time) *Limiter[K] {
	cfg = cfg.Or(Default)
	if now == nil {
		now = time.Now
	}
	interval := time.Duration(float64(time.Minute) / cfg.PerMinute)
	return &Limiter[K]{
		interval:  interval,
		tolerance: time.Duration(cfg.Burst-1) * interval,
		maxSize:   cfg.MaxClients,
		now:       now,
		buckets:   map[K]*list.Element{},
		lru:       list.New(),
	}
}

// AddrKey maps an address to its bucket: IPv4 (also when IPv4-mapped) as
// is, IPv6 by its /64. An invalid address (unknown peer) shares one bucket.
func AddrKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// Allow takes a token for key. When none is left it says how long until
// the next one.
func (l *Limiter[K]) Allow(key K) (ok bool, retryAfter time.Duration) {
	if l.normalize != nil {
		key = l.normalize(key)
	}
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket[K]
	if e, found := l.buckets[key]; found {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket[K])
	} else {
		b = &bucket[K]{key: key, full: now}
		l.buckets[key] = l.lru.PushFront(b)
		for l.lru.Len() > l.maxSize {
			oldest := l.lru.Back()
			delete(l.buckets, oldest.Value.(*bucket[K]).key)
			l.lru.Remove(oldest)
		}
	}
	full := b.full
	if full.Before(now) {
		full = now
	}
	if ahead := full.Sub(now); ahead > l.tolerance {
		return false, max(ahead-l.tolerance, time.Second)
	}
	b.full = full.Add(l.interval)
	return true, 0
}

// Size is the number of keys tracked.
func (l *Limiter[K]) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
