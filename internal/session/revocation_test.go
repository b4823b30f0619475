package session

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

type revocations map[string]int64

func (r revocations) NotBefore(user string) int64 { return r[user] }

func TestRevokedCookiesNoLongerCount(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("example.com", true)
	rev := revocations{}
	j.SetRevocations(rev)
	ana, bob := User{ID: "ana"}, User{ID: "bob"}
	anaCookies := issue(t, j, kr, ana, totp, t0, true)
	bobCookies := issue(t, j, kr, bob, totp, t0, true)
	now := t0.Add(time.Hour)
	_, ok := check(j, kr, anaTOTP(), ana, now, named(anaCookies, RememberCookieName))
	g.Expect(ok).To(BeTrue(), "remembered before the revocation (and now cached)")

	rev["ana"] = t0.Add(time.Millisecond).UnixNano()
	for _, name := range []string{CookieName, RememberCookieName} {
		_, ok = check(j, kr, anaTOTP(), ana, now, named(anaCookies, name))
		g.Expect(ok).To(BeFalse(), "%s issued before the revocation", name)
	}
	_, ok = check(j, kr, anaTOTP(), bob, now, named(bobCookies, RememberCookieName))
	g.Expect(ok).To(BeTrue(), "another user stays remembered")

	// A cookie issued after the revocation counts, and does not carry the
	// revoked cookie's other factors over.
	withDuo := issue(t, j, kr, ana, duo, t0.Add(-time.Minute), true)
	fresh := issue(t, j, kr, ana, totp, t0.Add(2*time.Millisecond), true, named(withDuo, CookieName))
	mf, ok := check(j, kr, anaTOTP(), ana, now, named(fresh, CookieName))
	g.Expect(ok).To(BeTrue())
	g.Expect(mf).To(Equal("google-authenticator"))
	_, ok = check(j, kr, Rule{Providers: []string{"apps/duo"}, RememberFor: time.Hour * 720}, ana, now, named(fresh, CookieName))
	g.Expect(ok).To(BeFalse(), "the revoked cookie's duo factor was not carried over")
}

func TestCookiesWithoutNanosecondsAreJudgedByTheStartOfTheirSecond(t *testing.T) {
	g := NewWithT(t)
	o := &opened{}
	o.IssuedAt = t0.Unix()
	g.Expect(o.issuedNano()).To(Equal(t0.UnixNano()))
	o.IssuedAtNano = t0.UnixNano() + 5
	g.Expect(o.issuedNano()).To(Equal(t0.UnixNano() + 5))
}

func anaTOTP() Rule { return anyTOTP }
