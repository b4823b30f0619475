package session

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

var t0 = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

func newKeyring(t testing.TB) (*keyring.Data, *keyring.Keyring) {
	t.Helper()
	kd, err := keyring.Generate(t0)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(*kd)
	if err != nil {
		t.Fatal(err)
	}
	return kd, kr
}

var (
	totp = Factor{Provider: "apps/google-authenticator", Multifactor: "google-authenticator"}
	duo  = Factor{Provider: "apps/duo", Multifactor: "duo"}
	// anyTOTP accepts the TOTP provider for a month.
	anyTOTP = Rule{Providers: []string{"apps/google-authenticator"}, RememberFor: 720 * time.Hour}
)

// issue returns the cookies Issue sets, given the request's cookies.
func issue(t testing.TB, j *Jar, kr *keyring.Keyring, u User, f Factor, at time.Time, remember bool, existing ...*http.Cookie) []*http.Cookie {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "https://auth.example.com/challenge/apps/admin", nil)
	for _, c := range existing {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	if err := j.Issue(w, r, kr, &u, f, at, 720*time.Hour, remember); err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies()
}

func named(cookies []*http.Cookie, name string) *http.Cookie {
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func check(j *Jar, kr *keyring.Keyring, rule Rule, u User, now time.Time, cookies ...*http.Cookie) (string, bool) {
	r := httptest.NewRequest(http.MethodGet, "/auth", nil)
	for _, c := range cookies {
		if c != nil {
			r.AddCookie(c)
		}
	}
	return j.Check(r, kr, &rule, &u, now)
}

func TestIssueSetsTheSessionCookieAndTheRememberedOne(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("example.com", true)
	cookies := issue(t, j, kr, User{ID: "ana"}, totp, t0, true)
	g.Expect(cookies).To(HaveLen(2))
	sess, rem := named(cookies, CookieName), named(cookies, RememberCookieName)
	g.Expect(sess.MaxAge).To(BeZero(), "a browser-session cookie")
	g.Expect(rem.MaxAge).To(Equal(int((720 * time.Hour).Seconds())))
	for _, c := range cookies {
		g.Expect(c.Domain).To(Equal("example.com"))
		g.Expect(c.HttpOnly && c.Secure).To(BeTrue())
		g.Expect(c.SameSite).To(Equal(http.SameSiteLaxMode))
		g.Expect(c.Value).NotTo(ContainSubstring("ana"), "sealed")
	}

	g.Expect(issue(t, NewJar("", false), kr, User{ID: "ana"}, totp, t0, false)).To(ConsistOf(
		And(HaveField("Name", CookieName), HaveField("Secure", false), HaveField("Domain", ""))), "not remembered, insecure")

	w := httptest.NewRecorder()
	j.Clear(w)
	cleared := w.Result().Cookies()
	g.Expect(cleared).To(HaveLen(2))
	g.Expect(cleared[0].MaxAge).To(BeNumerically("<", 0))
}

func TestCheckAcceptsTheRulesProvidersWithinRememberFor(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("example.com", true)
	ana := User{ID: "ana"}
	cookies := issue(t, j, kr, ana, totp, t0, true)
	sess, rem := named(cookies, CookieName), named(cookies, RememberCookieName)

	mf, ok := check(j, kr, anyTOTP, ana, t0.Add(time.Hour), sess)
	g.Expect(ok).To(BeTrue())
	g.Expect(mf).To(Equal("google-authenticator"))
	_, ok = check(j, kr, anyTOTP, ana, t0.Add(time.Hour), rem)
	g.Expect(ok).To(BeTrue(), "a remembered browser")
	_, ok = check(j, kr, anyTOTP, User{ID: "bob"}, t0, sess, rem)
	g.Expect(ok).To(BeFalse(), "another user's")
	_, ok = check(j, kr, Rule{Providers: []string{"apps/duo"}, RememberFor: time.Hour}, ana, t0, sess, rem)
	g.Expect(ok).To(BeFalse(), "another provider's")
	_, ok = check(j, kr, Rule{Providers: anyTOTP.Providers, RememberFor: time.Hour}, ana, t0.Add(2*time.Hour), sess, rem)
	g.Expect(ok).To(BeFalse(), "answered longer ago than the rule's rememberFor")
	_, ok = check(j, kr, anyTOTP, ana, t0.Add(721*time.Hour), sess, rem)
	g.Expect(ok).To(BeFalse(), "expired")

	strict := Rule{Providers: anyTOTP.Providers, RememberFor: time.Hour, IgnoreCookie: true}
	_, ok = check(j, kr, strict, ana, t0, rem)
	g.Expect(ok).To(BeFalse(), "ignoreCookie: the remembered cookie does not count")
	_, ok = check(j, kr, strict, ana, t0, sess)
	g.Expect(ok).To(BeTrue())

	_, other := newKeyring(t)
	_, ok = check(j, other, anyTOTP, ana, t0, sess, rem)
	g.Expect(ok).To(BeFalse(), "sealed with a keyring no longer in force")
	swapped := &http.Cookie{Name: CookieName, Value: rem.Value}
	_, ok = check(j, kr, anyTOTP, ana, t0, swapped)
	g.Expect(ok).To(BeFalse(), "the name is authenticated")
}

func TestCheckWithIgnoreCookieRefusesASessionOlderThanTheLogin(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("", true)
	login := t0.Add(-time.Minute)
	sess := named(issue(t, j, kr, User{ID: "ana", AuthTime: login, AuthTimeVerified: true}, totp, t0, false), CookieName)
	strict := Rule{Providers: anyTOTP.Providers, RememberFor: time.Hour, IgnoreCookie: true}
	for _, tt := range []struct {
		u    User
		want bool
	}{
		{User{ID: "ana", AuthTime: login, AuthTimeVerified: true}, true},
		{User{ID: "ana", AuthTime: login.Add(-time.Hour), AuthTimeVerified: true}, true},
		{User{ID: "ana", AuthTime: login.Add(time.Second), AuthTimeVerified: true}, false},
		{User{ID: "ana", AuthTime: login.Add(time.Second)}, true},
	} {
		_, ok := check(j, kr, strict, tt.u, t0, sess)
		g.Expect(ok).To(Equal(tt.want), "%+v", tt.u)
	}
	_, ok := check(j, kr, anyTOTP, User{ID: "ana", AuthTime: login.Add(time.Second), AuthTimeVerified: true}, t0, sess)
	g.Expect(ok).To(BeTrue(), "without ignoreCookie a new login keeps the session")
}

func TestFailOpenIsNeverClaimed(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("", true)
	open := duo
	open.Mode = FailOpen
	sess := named(issue(t, j, kr, User{ID: "ana"}, open, t0, false), CookieName)
	mf, ok := check(j, kr, Rule{Providers: []string{"apps/duo"}, RememberFor: time.Hour}, User{ID: "ana"}, t0, sess)
	g.Expect(ok).To(BeTrue(), "it satisfies the rule")
	g.Expect(mf).To(BeEmpty(), "but claims nothing")
}

func TestIssueKeepsTheFactorsOfOtherProviders(t *testing.T) {
	g := NewWithT(t)
	_, kr := newKeyring(t)
	j := NewJar("", true)
	ana := User{ID: "ana"}
	first := issue(t, j, kr, ana, duo, t0, false)
	both := named(issue(t, j, kr, ana, totp, t0.Add(time.Minute), false, first...), CookieName)
	mf, ok := check(j, kr, Rule{Providers: []string{"apps/duo", "apps/google-authenticator"}, RememberFor: time.Hour}, ana, t0.Add(time.Minute), both)
	g.Expect(ok).To(BeTrue())
	g.Expect(mf).To(Equal("duo,google-authenticator"))

	bobs := named(issue(t, j, kr, User{ID: "bob"}, totp, t0, false, first...), CookieName)
	_, ok = check(j, kr, Rule{Providers: []string{"apps/duo"}, RememberFor: time.Hour}, User{ID: "bob"}, t0, bobs)
	g.Expect(ok).To(BeFalse(), "another user's factors are not taken over")
}

func TestHasFactor(t *testing.T) {
	g := NewWithT(t)
	g.Expect(HasFactor("duo,google-authenticator", "google-authenticator")).To(BeTrue())
	g.Expect(HasFactor("duo,google-authenticator", "google")).To(BeFalse())
	g.Expect(HasFactor("", "duo")).To(BeFalse())
}

func TestCookieValues(t *testing.T) {
	g := NewWithT(t)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["Cookie"] = []string{`a=1; b=2;; a="3"`, " a=4 ;b=; ab=5"}
	var out [8]string
	n := CookieValues(r, "a", out[:])
	g.Expect(out[:n]).To(Equal([]string{"1", "3", "4"}))
	g.Expect(CookieValue(r, "b")).To(Equal("2"))
	g.Expect(CookieValue(r, "c")).To(BeEmpty())
	g.Expect(CookieValues(r, "a", out[:2])).To(Equal(2))
}

// sealedElsewhere is a cookie of our name that another installation (its
// own keyring) set for the same user under the cookie domain.
func sealedElsewhere(t testing.TB, name string) string {
	t.Helper()
	_, kr := newKeyring(t)
	plain := `{"v":1,"u":"ana","f":[{"p":"apps/google-authenticator","m":"google-authenticator","t":1795766000}],"iat":1795766000,"sid":"x","exp":1895766000}`
	return base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCookie, []byte(plain), []byte(name)))
}

// forgedUnderOurKey carries our current key id, then random bytes: only a
// decryption tells it from a genuine cookie.
func forgedUnderOurKey(kd *keyring.Data, i int) string {
	sealed := []byte{8}
	id, _ := hex.DecodeString(kd.SymmetricKeys[0].ID)
	sealed = append(sealed, id...)
	sealed = append(sealed, bytes.Repeat([]byte{byte(i)}, 12+100+16)...)
	return base64.RawURLEncoding.EncodeToString(sealed)
}

func TestSameNamedCookiesCostBoundedWork(t *testing.T) {
	kd, kr := newKeyring(t)
	j := NewJar("", true)
	genuine := named(issue(t, j, kr, User{ID: "ana"}, totp, t0, false), CookieName)
	t.Run("values under our key id are decrypted at most MaxOpensPerName times", func(t *testing.T) {
		g := NewWithT(t)
		var b budget
		for i := range 50 {
			g.Expect(j.open(kr, CookieName, forgedUnderOurKey(kd, i), t0, &b)).To(BeNil())
		}
		g.Expect(b.opened).To(Equal(MaxOpensPerName))
		g.Expect(b.looked).To(Equal(MaxValuesPerName))
	})
	t.Run("other values are decrypted never", func(t *testing.T) {
		g := NewWithT(t)
		var b budget
		for range MaxValuesPerName {
			g.Expect(j.open(kr, CookieName, sealedElsewhere(t, CookieName), t0, &b)).To(BeNil())
		}
		g.Expect(b.opened).To(BeZero())
		g.Expect(j.open(kr, CookieName, genuine.Value, t0, &b)).To(BeNil(), "the budget is spent")
	})
}

func TestSealedByKeyOfDecodesOnlyTheKeyID(t *testing.T) {
	for _, idLen := range []int{1, 8, 31, 100, 255} {
		t.Run(strconv.Itoa(idLen)+"-byte key id", func(t *testing.T) {
			g := NewWithT(t)
			kd, err := keyring.Generate(time.Unix(1_800_000_000, 0))
			g.Expect(err).NotTo(HaveOccurred())
			kd.SymmetricKeys[0].ID = strings.Repeat("ab", idLen)
			kr, err := keyring.New(*kd)
			g.Expect(err).NotTo(HaveOccurred())
			value := base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCookie, []byte("{}"), nil))
			idChars := base64.RawURLEncoding.EncodedLen(1 + idLen)

			g.Expect(sealedByKeyOf(kr, value)).To(BeTrue())
			g.Expect(sealedByKeyOf(kr, value[:idChars])).To(BeTrue(), "the key id is enough")
			g.Expect(sealedByKeyOf(kr, value[:idChars-1])).To(BeFalse(), "a key id cut short is not")
			g.Expect(sealedByKeyOf(kr, "!"+value[1:])).To(BeFalse(), "not base64")
			g.Expect(testing.AllocsPerRun(10, func() { sealedByKeyOf(kr, value) })).To(BeZero())
		})
	}
}

func BenchmarkCookieCheck(b *testing.B) {
	_, kr := newKeyring(b)
	j := NewJar("example.com", true)
	ana := User{ID: "ana@example.com"}
	rem := named(issue(b, j, kr, ana, totp, t0, true), RememberCookieName)
	r := httptest.NewRequest(http.MethodGet, "/auth/apps/bench", nil)
	r.AddCookie(rem)
	r.Header.Add("Cookie", "_ga=GA1.2.3; theme=dark")
	rule := anyTOTP
	b.Run("cached", func(b *testing.B) {
		if _, ok := j.Check(r, kr, &rule, &ana, t0); !ok {
			b.Fatal("cookie refused")
		}
		b.ReportAllocs()
		for b.Loop() {
			j.Check(r, kr, &rule, &ana, t0)
		}
	})
	// A sibling host's app set cookies of our name first: each costs a
	// cache lookup and a look at its key id.
	foreign := httptest.NewRequest(http.MethodGet, "/auth/apps/bench", nil)
	for range 4 {
		foreign.AddCookie(&http.Cookie{Name: RememberCookieName, Value: sealedElsewhere(b, RememberCookieName)})
	}
	foreign.AddCookie(rem)
	b.Run("cached-behind-4-foreign", func(b *testing.B) {
		if _, ok := j.Check(foreign, kr, &rule, &ana, t0); !ok {
			b.Fatal("cookie refused")
		}
		b.ReportAllocs()
		for b.Loop() {
			j.Check(foreign, kr, &rule, &ana, t0)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			j.opened.Remove(cookieKey{RememberCookieName, rem.Value})
			if _, ok := j.Check(r, kr, &rule, &ana, t0); !ok {
				b.Fatal("cookie refused")
			}
		}
	})
}
