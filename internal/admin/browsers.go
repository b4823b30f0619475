package admin

import (
	"slices"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// browserCounts counts, per user, the distinct browsers still remembered
// (their cookies not expired at now) in the enrolments all; only in those
// of providers when providers is not nil. A browser remembered after
// answering two providers is recorded with both and counted once.
func browserCounts(all []*store.Enrollment, providers []string, now time.Time) map[string]int {
	seen := map[string]map[string]bool{}
	for _, e := range all {
		if providers != nil && !slices.Contains(providers, e.Provider) {
			continue
		}
		for _, b := range e.LiveBrowsers(now) {
			if seen[e.User] == nil {
				seen[e.User] = map[string]bool{}
			}
			seen[e.User][b.ID] = true
		}
	}
	out := make(map[string]int, len(seen))
	for user, ids := range seen {
		out[user] = len(ids)
	}
	return out
}

// withBrowserCounts sets each row's RememberedBrowsers.
func withBrowserCounts(rows []Row, all []*store.Enrollment, providers []string, now time.Time) {
	counts := browserCounts(all, providers, now)
	for i := range rows {
		rows[i].RememberedBrowsers = counts[rows[i].User]
	}
}
