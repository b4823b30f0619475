package admin

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

func TestBrowserCountsCountABrowserOnceAndOnlyWhileRemembered(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	live := func(id string) store.RememberedBrowser {
		return store.RememberedBrowser{ID: id, Expires: now.Add(time.Hour)}
	}
	all := []*store.Enrollment{
		{User: ana, Provider: provider, Browsers: []store.RememberedBrowser{live("a"), live("b"), {ID: "gone", Expires: now}}},
		{User: ana, Provider: "apps/webauthn", Browsers: []store.RememberedBrowser{live("b"), live("c")}},
		{User: bob, Provider: provider},
	}
	count := func(providers []string) map[string]int {
		c := newBrowserCounter(now)
		for _, e := range all {
			if providers == nil || e.Provider == providers[0] {
				c.add(e)
			}
		}
		rows := []Row{{User: ana}, {User: bob}}
		c.apply(rows)
		return map[string]int{ana: rows[0].RememberedBrowsers, bob: rows[1].RememberedBrowsers}
	}
	g.Expect(count(nil)).To(Equal(map[string]int{ana: 3, bob: 0}))
	g.Expect(count([]string{provider})).To(Equal(map[string]int{ana: 2, bob: 0}), "--policy: its providers' records only")
}
