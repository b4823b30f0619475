package webhook

import (
	"sync"
	"time"
)

// Circuit breaker settings for calls to a first factor: after
// breakerThreshold failures in a row, calls fail at once for
// breakerCooldown, then one call tries again.
const (
	breakerThreshold = 5
	breakerCooldown  = 5 * time.Second
)

// breaker stops calling a service that keeps failing, so that a first
// factor that is down costs each request nothing rather than a timeout.
type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// allow says whether a call may be made now; while open it may not, and
// once the cooldown is over one call (the probe) may.
func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < breakerThreshold {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// success closes the circuit.
func (b *breaker) success() {
	b.mu.Lock()
	b.failures, b.probing, b.openUntil = 0, false, time.Time{}
	b.mu.Unlock()
}

// failure counts a failed call; the threshold opens the circuit (again).
func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	b.failures++
	b.probing = false
	if b.failures >= breakerThreshold {
		b.openUntil = now.Add(breakerCooldown)
	}
	b.mu.Unlock()
}
