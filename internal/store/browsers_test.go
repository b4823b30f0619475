package store_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

func TestRememberBrowserKeepsCreatedPrunesExpiredAndShortensTheUserAgent(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	e := &store.Enrollment{}
	e.RememberBrowser(store.RememberedBrowser{ID: "a", Created: now, Issued: now, Expires: now.Add(time.Hour), UserAgent: "Agent\x00 one\n" + strings.Repeat("x", 300)}, now)
	e.RememberBrowser(store.RememberedBrowser{ID: "old", Created: now, Issued: now, Expires: now.Add(time.Minute)}, now)
	g.Expect(e.Browsers).To(HaveLen(2))
	g.Expect(e.Browsers[0].UserAgent).To(HavePrefix("Agent one x"))
	g.Expect([]rune(e.Browsers[0].UserAgent)).To(HaveLen(120))

	later := now.Add(2 * time.Minute)
	e.RememberBrowser(store.RememberedBrowser{ID: "a", Created: later, Issued: later, Expires: later.Add(time.Hour), UserAgent: "Agent two"}, later)
	g.Expect(e.Browsers).To(HaveLen(1), "the expired one is pruned, the same id listed once")
	g.Expect(e.Browsers[0].Created).To(Equal(now), "first remembered then")
	g.Expect(e.Browsers[0].Issued).To(Equal(later))
	g.Expect(e.LiveBrowsers(later.Add(2 * time.Hour))).To(BeEmpty())

	e.ForgetBrowsers(func(b store.RememberedBrowser) bool { return b.ID == "a" })
	g.Expect(e.Browsers).To(BeNil())
}
