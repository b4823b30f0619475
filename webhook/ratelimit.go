package webhook

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// RateLimit bounds how often one client address may submit challenge
// forms. It complements the per-user lockout: the lockout stops guessing
// one user's codes, this stops one address from trying many users (or
// flooding the store).
type RateLimit struct {
	// PerMinute is the sustained number of submissions allowed per client
	// address. Default 10.
	PerMinute float64
	// Burst is how many submissions may come at once. Default 10.
	Burst int
	// MaxClients bounds the addresses tracked; the least recently seen is
	// forgotten first. Default 10000.
	MaxClients int
}

// DefaultRateLimit is 10 submissions a minute per address, in bursts of 10,
// tracking up to 10000 addresses.
var DefaultRateLimit = RateLimit{PerMinute: 10, Burst: 10, MaxClients: 10000}

func (c RateLimit) withDefaults() RateLimit {
	if c.PerMinute <= 0 {
		c.PerMinute = DefaultRateLimit.PerMinute
	}
	if c.Burst <= 0 {
		c.Burst = DefaultRateLimit.Burst
	}
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultRateLimit.MaxClients
	}
	return c
}

// rateLimiter is a token bucket per client address, in a map of bounded
// size with least-recently-used eviction. The bucket is kept as the
// generic cell rate algorithm's single timestamp (the time at which the
// bucket would be full again), which is exact in integer time. IPv6 clients
// are grouped by /64, the block one subscriber usually holds, so rotating
// addresses within it gains nothing.
type rateLimiter struct {
	interval  time.Duration // one token every interval
	tolerance time.Duration // (burst-1) intervals: how far ahead a bucket may run
	maxSize   int
	now       func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*list.Element // of *bucket
	lru     *list.List                   // front: most recently seen
}

type bucket struct {
	key netip.Addr
	// full is when the bucket is full again; each submission moves it one
	// interval later.
	full time.Time
}

func newRateLimiter(cfg RateLimit, now func() time.Time) *rateLimiter {
	cfg = cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	interval := time.Duration(float64(time.Minute) / cfg.PerMinute)
	return &rateLimiter{
		interval:  interval,
		tolerance: time.Duration(cfg.Burst-1) * interval,
		maxSize:   cfg.MaxClients,
		now:       now,
		buckets:   map[netip.Addr]*list.Element{},
		lru:       list.New(),
	}
}

// rateKey maps an address to its bucket: IPv4 (also when IPv4-mapped) as
// is, IPv6 by its /64. An invalid address (unknown peer) shares one bucket.
func rateKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// allow takes a token for ip. When none is left it says how long until the
// next one.
func (l *rateLimiter) allow(ip netip.Addr) (ok bool, retryAfter time.Duration) {
	key := rateKey(ip)
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, found := l.buckets[key]; found {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		b = &bucket{key: key, full: now}
		l.buckets[key] = l.lru.PushFront(b)
		for l.lru.Len() > l.maxSize {
			oldest := l.lru.Back()
			delete(l.buckets, oldest.Value.(*bucket).key)
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

// size is the number of addresses tracked.
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
