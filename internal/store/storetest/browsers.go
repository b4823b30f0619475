package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

func runBrowsers(t *testing.T, b Backend) {
	t.Run("remembered browsers keep every field", func(t *testing.T) {
		g := NewWithT(t)
		s := b.Open(t, 1)[0]
		ctx := context.Background()
		now := time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.UTC)
		want := store.RememberedBrowser{ID: "0123456789abcdef0123456789abcdef", Created: now.Add(-time.Hour), Issued: now,
			Expires: now.Add(720 * time.Hour), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0", ClientIP: "203.0.113.7"}
		_, err := s.Update(ctx, Key("rb@example.com"), func(e *store.Enrollment) error {
			e.RememberBrowser(want, now)
			return nil
		})
		g.Expect(err).NotTo(HaveOccurred())
		read, err := s.Get(ctx, Key("rb@example.com"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(read.Browsers).To(Equal([]store.RememberedBrowser{want}))
	})

	t.Run("browsers remembered at once on several replicas are all kept, up to the bound", func(t *testing.T) {
		g := NewWithT(t)
		stores := b.Open(t, 3)
		ctx := context.Background()
		now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		n := store.MaxRememberedBrowsers + 4
		errs := race(n, func(i int) error {
			_, err := stores[i%len(stores)].Update(ctx, Key("rb2@example.com"), func(e *store.Enrollment) error {
				e.RememberBrowser(store.RememberedBrowser{ID: fmt.Sprintf("%032x", i), Created: now, Issued: now.Add(time.Duration(i) * time.Second),
					Expires: now.Add(time.Hour)}, now)
				return nil
			})
			return err
		})
		for _, err := range errs {
			g.Expect(err).NotTo(HaveOccurred())
		}
		e, err := stores[0].Get(ctx, Key("rb2@example.com"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.Browsers).To(HaveLen(store.MaxRememberedBrowsers))
		g.Expect(e.Browsers[0].ID).To(Equal(fmt.Sprintf("%032x", n-1)), "the most recently issued first")
		g.Expect(e.Browsers[store.MaxRememberedBrowsers-1].ID).To(Equal(fmt.Sprintf("%032x", 4)), "the least recently issued dropped")
	})
}
