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
	g.Expect(browserCounts(all, nil, now)).To(Equal(map[string]int{ana: 3}))
	g.Expect(browserCounts(all, []string{provider}, now)).To(Equal(map[string]int{ana: 2}), "--policy: its providers' records only")
}
