package session

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/revocation"
)

// BenchmarkCheckRemembered is Check for a remembered cookie already
// opened (the /auth hot path), without revocations, and with the one map
// lookup of the revocation.List with 100,000 revoked users (none of them
// this one).
func BenchmarkCheckRemembered(b *testing.B) {
	for _, n := range []int{-1, 0, 100000} {
		name := "revocations=off"
		if n >= 0 {
			name = fmt.Sprintf("revoked=%d", n)
		}
		b.Run(name, func(b *testing.B) {
			_, kr := newKeyring(b)
			j := NewJar("example.com", true)
			if n >= 0 {
				others := map[string]int64{}
				for i := range n {
					others[fmt.Sprintf("user-%d@example.com", i)] = t0.UnixNano()
				}
				l := revocation.NewList(func() time.Time { return t0 })
				l.ReplaceAll(map[string]map[string]int64{"bench": others})
				j.SetRevocations(l)
			}
			ana := User{ID: "ana"}
			c := named(issue(b, j, kr, ana, totp, t0.Add(time.Second), true), RememberCookieName)
			r := httptest.NewRequest(http.MethodGet, "/auth", nil)
			r.AddCookie(c)
			rule, now := anyTOTP, t0.Add(time.Hour)
			if _, ok := j.Check(r, kr, &rule, &ana, now); !ok {
				b.Fatal("not remembered")
			}
			b.ReportAllocs()
			for b.Loop() {
				j.Check(r, kr, &rule, &ana, now)
			}
		})
	}
}
