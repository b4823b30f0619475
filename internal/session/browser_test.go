package session

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/revocation"
)

// issueBrowser is issue, returning what IssueBrowser says too.
func issueBrowser(t testing.TB, j *Jar, kr *keyring.Keyring, u User, f Factor, at time.Time, remember bool, existing ...*http.Cookie) ([]*http.Cookie, Issued) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "https://auth.example.com/challenge/apps/admin", nil)
	for _, c := range existing {
		if c != nil {
			r.AddCookie(c)
		}
	}
	w := httptest.NewRecorder()
	out, err := j.IssueBrowser(w, r, kr, &u, f, at, 720*time.Hour, remember)
	if err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies(), out
}

func browserOf(j *Jar, kr *keyring.Keyring, user string, now time.Time, cookies ...*http.Cookie) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, c := range cookies {
		if c != nil {
			r.AddCookie(c)
		}
	}
	return j.BrowserID(r, kr, user, now)
}

func TestBothCookiesOfABrowserCarryOneIdKeptWhenIssuedAgain(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("example.com", true)
	ana := User{ID: "ana"}
	first, out := issueBrowser(t, j, kr, ana, totp, t0, true)
	g.Expect(out.Browser).To(MatchRegexp(`^[0-9a-f]{32}$`))
	g.Expect(out.RememberedExpiry.Equal(t0.Add(720 * time.Hour))).To(BeTrue())
	now := t0.Add(time.Minute)
	g.Expect(browserOf(j, kr, "ana", now, named(first, CookieName))).To(Equal(out.Browser))
	g.Expect(browserOf(j, kr, "ana", now, named(first, RememberCookieName))).To(Equal(out.Browser))
	g.Expect(browserOf(j, kr, "bob", now, first...)).To(BeEmpty(), "another user's cookies name no browser of bob")

	again, out2 := issueBrowser(t, j, kr, ana, duo, now, true, first...)
	g.Expect(out2.Browser).To(Equal(out.Browser), "the same browser answering again keeps its id")
	g.Expect(browserOf(j, kr, "ana", now, again...)).To(Equal(out.Browser))

	_, other := issueBrowser(t, j, kr, ana, totp, now, true)
	g.Expect(other.Browser).NotTo(Equal(out.Browser), "another browser gets its own id")

	_, noRemember := issueBrowser(t, j, kr, ana, totp, now, false)
	g.Expect(noRemember.RememberedExpiry.IsZero()).To(BeTrue())
}

func TestARevokedBrowserIsRefusedAndTheUsersOtherBrowsersAreNot(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("example.com", true)
	l := revocation.NewList(func() time.Time { return t0 })
	l.ReplaceAll(map[string]map[string]int64{})
	j.SetRevocations(l)
	ana := User{ID: "ana"}
	laptop, lid := issueBrowser(t, j, kr, ana, totp, t0, true)
	phone, _ := issueBrowser(t, j, kr, ana, totp, t0, true)
	now := t0.Add(time.Hour)
	_, ok := check(j, kr, anyTOTP, ana, now, named(laptop, RememberCookieName))
	g.Expect(ok).To(BeTrue(), "remembered (and now cached)")

	l.ReplaceAllBrowsers(map[string]map[string]revocation.Browser{"s": {lid.Browser: {User: "ana", Until: lid.RememberedExpiry.UnixNano()}}})
	for _, name := range []string{CookieName, RememberCookieName} {
		_, ok = check(j, kr, anyTOTP, ana, now, named(laptop, name))
		g.Expect(ok).To(BeFalse(), "the revoked browser's %s", name)
		_, ok = check(j, kr, anyTOTP, ana, now, named(phone, name))
		g.Expect(ok).To(BeTrue(), "the other browser's %s", name)
	}
	g.Expect(browserOf(j, kr, "ana", now, laptop...)).To(BeEmpty())
	// Answering again in the revoked browser starts a new id: the revoked
	// one is never carried over.
	_, fresh := issueBrowser(t, j, kr, ana, totp, now, true, laptop...)
	g.Expect(fresh.Browser).NotTo(Equal(lid.Browser))
}

func TestCheckWithBrowserRevocationsAllocatesNothing(t *testing.T) {
	_, kr := newKeyring(t)
	j := NewJar("example.com", true)
	l := revocation.NewList(func() time.Time { return t0 })
	l.ReplaceAll(map[string]map[string]int64{})
	l.ReplaceAllBrowsers(map[string]map[string]revocation.Browser{"s": {"0123": {User: "ana", Until: t0.Add(time.Hour).UnixNano()}}})
	j.SetRevocations(l)
	ana := User{ID: "ana"}
	c := named(issue(t, j, kr, ana, totp, t0.Add(time.Second), true), RememberCookieName)
	r := httptest.NewRequest(http.MethodGet, "/auth", nil)
	r.AddCookie(c)
	rule, now := anyTOTP, t0.Add(time.Hour)
	if _, ok := j.Check(r, kr, &rule, &ana, now); !ok {
		t.Fatal("not remembered")
	}
	if n := testing.AllocsPerRun(100, func() { j.Check(r, kr, &rule, &ana, now) }); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
}
