package admin

import (
	"time"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// browserCounter counts, per user, the distinct browsers still remembered
// (their cookies not expired at now) in the enrolments it is shown, one
// page of the store at a time. A browser remembered after answering two
// providers is recorded with both and counted once.
type browserCounter struct {
	now  time.Time
	seen map[string]map[string]struct{}
}

func newBrowserCounter(now time.Time) *browserCounter {
	return &browserCounter{now: now, seen: map[string]map[string]struct{}{}}
}

// add counts the live browsers of e.
func (c *browserCounter) add(e *store.Enrollment) {
	for _, b := range e.LiveBrowsers(c.now) {
		ids := c.seen[e.User]
		if ids == nil {
			ids = map[string]struct{}{}
			c.seen[e.User] = ids
		}
		ids[b.ID] = struct{}{}
	}
}

// apply sets each row's RememberedBrowsers.
func (c *browserCounter) apply(rows []Row) {
	for i := range rows {
		rows[i].RememberedBrowsers = len(c.seen[rows[i].User])
	}
}
