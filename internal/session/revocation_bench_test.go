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
// opened (the /auth hot path): without revocations, and with the
// revocation.List's lookups when 100,000 users, or 100,000 browsers of
// one user, are revoked (none of them this one).
func BenchmarkCheckRemembered(b *testing.B) {
	revokedUsers := func(n int) *revocation.List {
		others := map[string]int64{}
		for i := range n {
			others[fmt.Sprintf("user-%d@example.com", i)] = t0.UnixNano()
		}
		l := revocation.NewList(func() time.Time { return t0 })
		l.ReplaceAll(map[string]map[string]int64{"bench": others})
		return l
	}
	revokedBrowsers := func(n int) *revocation.List {
		browsers := map[string]revocation.Browser{}
		for range n {
			browsers[newID()] = revocation.Browser{User: "someone", Until: t0.Add(time.Hour).UnixNano()}
		}
		l := revokedUsers(0)
		l.ReplaceAllBrowsers(map[string]map[string]revocation.Browser{"bench": browsers})
		return l
	}
	for _, bc := range []struct {
		name string
		list func() *revocation.List
	}{
		{"revocations=off", nil},
		{"revoked=0", func() *revocation.List { return revokedUsers(0) }},
		{"revoked=100000", func() *revocation.List { return revokedUsers(100000) }},
		{"browsers-revoked=100000", func() *revocation.List { return revokedBrowsers(100000) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			_, kr := newKeyring(b)
			j := NewJar("example.com", true)
			if bc.list != nil {
				j.SetRevocations(bc.list())
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
