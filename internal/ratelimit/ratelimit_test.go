package ratelimit_test

import (
	"net/netip"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
)

type fakeClock struct{ t time.Time }

// userKey is a user of a provider, like the Duo pages' per-user key.
type userKey struct{ provider, user string }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestRateLimiterAllowsTheBurstThenRefuses(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	l := ratelimit.PerAddress(ratelimit.Limit{PerMinute: 10, Burst: 10, MaxClients: 100}, clock.now)
	ip := netip.MustParseAddr("203.0.113.7")
	for i := range 10 {
		ok, _ := l.Allow(ip)
		g.Expect(ok).To(BeTrue(), "attempt %d", i+1)
	}
	ok, retry := l.Allow(ip)
	g.Expect(ok).To(BeFalse())
	g.Expect(retry).To(Equal(6 * time.Second))
}

func TestRateLimiterRefillsAtTheConfiguredRate(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	l := ratelimit.PerAddress(ratelimit.Limit{PerMinute: 10, Burst: 2, MaxClients: 100}, clock.now)
	ip := netip.MustParseAddr("203.0.113.7")
	l.Allow(ip)
	l.Allow(ip)
	ok, _ := l.Allow(ip)
	g.Expect(ok).To(BeFalse())

	clock.advance(5 * time.Second)
	ok, _ = l.Allow(ip)
	g.Expect(ok).To(BeFalse(), "less than one token after 5s at 10/min")

	clock.advance(time.Second)
	ok, _ = l.Allow(ip)
	g.Expect(ok).To(BeTrue(), "one token after 6s at 10/min")

	clock.advance(time.Hour)
	for range 2 {
		ok, _ = l.Allow(ip)
		g.Expect(ok).To(BeTrue())
	}
	ok, _ = l.Allow(ip)
	g.Expect(ok).To(BeFalse(), "refill is capped at the burst")
}

func TestRateLimiterKeepsAddressesApart(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Now()}
	l := ratelimit.PerAddress(ratelimit.Limit{PerMinute: 1, Burst: 1, MaxClients: 100}, clock.now)
	ok, _ := l.Allow(netip.MustParseAddr("203.0.113.7"))
	g.Expect(ok).To(BeTrue())
	ok, _ = l.Allow(netip.MustParseAddr("203.0.113.8"))
	g.Expect(ok).To(BeTrue())
	ok, _ = l.Allow(netip.MustParseAddr("203.0.113.7"))
	g.Expect(ok).To(BeFalse())
}

func TestRateLimiterGroupsIPv6By64AndUnmapsIPv4(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Now()}
	l := ratelimit.PerAddress(ratelimit.Limit{PerMinute: 1, Burst: 1, MaxClients: 100}, clock.now)
	ok, _ := l.Allow(netip.MustParseAddr("2001:db8:1:2::1"))
	g.Expect(ok).To(BeTrue())
	ok, _ = l.Allow(netip.MustParseAddr("2001:db8:1:2:ffff::9"))
	g.Expect(ok).To(BeFalse(), "same /64")
	ok, _ = l.Allow(netip.MustParseAddr("2001:db8:1:3::1"))
	g.Expect(ok).To(BeTrue(), "another /64")

	ok, _ = l.Allow(netip.MustParseAddr("198.51.100.1"))
	g.Expect(ok).To(BeTrue())
	ok, _ = l.Allow(netip.MustParseAddr("::ffff:198.51.100.1"))
	g.Expect(ok).To(BeFalse(), "IPv4-mapped is the same client")
}

func TestRateLimiterEvictsTheLeastRecentlySeen(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Now()}
	l := ratelimit.PerAddress(ratelimit.Limit{PerMinute: 1, Burst: 1, MaxClients: 3}, clock.now)
	a, b, c, d := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.4")
	for _, ip := range []netip.Addr{a, b, c} {
		l.Allow(ip)
	}
	l.Allow(a) // a is now the most recently seen; b the least
	l.Allow(d)
	g.Expect(l.Size()).To(Equal(3))

	ok, _ := l.Allow(a)
	g.Expect(ok).To(BeFalse(), "a is still tracked")
	ok, _ = l.Allow(b)
	g.Expect(ok).To(BeTrue(), "b was evicted and starts with a full bucket")
	g.Expect(l.Size()).To(Equal(3))
}

func TestRateLimitDefaults(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ratelimit.Limit{}.Or(ratelimit.Default)).To(Equal(ratelimit.Default))
	g.Expect(ratelimit.Limit{PerMinute: 30}.Or(ratelimit.Default)).To(Equal(ratelimit.Limit{PerMinute: 30, Burst: 10, MaxClients: 10000}))
}

func TestKeyedRateLimiterKeepsKeysApartAsTheyAre(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	l := ratelimit.New[userKey](ratelimit.Limit{PerMinute: 1, Burst: 1, MaxClients: 100}, clock.now)
	alice := userKey{"apps/duo", "alice@example.com"}
	ok, _ := l.Allow(alice)
	g.Expect(ok).To(BeTrue())
	ok, _ = l.Allow(alice)
	g.Expect(ok).To(BeFalse(), "the same user of the same provider")
	for _, other := range []userKey{
		{"apps/duo", "bob@example.com"},
		{"apps/duo", "Alice@example.com"},
		{"other/duo", "alice@example.com"},
		{"apps/duo\x00alice@example.com", ""},
	} {
		ok, _ = l.Allow(other)
		g.Expect(ok).To(BeTrue(), "%+v has its own bucket", other)
	}
	g.Expect(l.Size()).To(Equal(5))
}

func TestKeyedRateLimiterEvictsTheLeastRecentlySeen(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	l := ratelimit.New[string](ratelimit.Limit{PerMinute: 1, Burst: 1, MaxClients: 2}, clock.now)
	l.Allow("a")
	l.Allow("b")
	l.Allow("c") // forgets a
	g.Expect(l.Size()).To(Equal(2))
	ok, _ := l.Allow("a")
	g.Expect(ok).To(BeTrue(), "a was forgotten and starts with a full bucket")
	ok, _ = l.Allow("c")
	g.Expect(ok).To(BeFalse(), "c is still tracked")
}
