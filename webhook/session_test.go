package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

func cookieNamed(cookies []*http.Cookie, name string) *http.Cookie {
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestIssueSessionSetsBothCookies(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)

	sess := cookieNamed(cookies, session.CookieName)
	g.Expect(sess).NotTo(BeNil())
	g.Expect(sess.MaxAge).To(BeZero()) // a browser-session cookie
	g.Expect(sess.Expires.IsZero()).To(BeTrue())
	rem := cookieNamed(cookies, session.RememberCookieName)
	g.Expect(rem).NotTo(BeNil())
	g.Expect(rem.MaxAge).To(Equal(int((720 * time.Hour).Seconds())))
	for _, c := range []*http.Cookie{sess, rem} {
		g.Expect(c.HttpOnly).To(BeTrue())
		g.Expect(c.Secure).To(BeTrue())
		g.Expect(c.SameSite).To(Equal(http.SameSiteLaxMode))
		g.Expect(c.Path).To(Equal("/"))
		g.Expect(c.Domain).To(Equal("example.com"))
		g.Expect(c.Value).NotTo(ContainSubstring(ana)) // sealed
	}
}

func TestIssueSessionInsecureCookiesOnlyWhenAsked(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML, func(o *Options) { o.InsecureCookies = true })
	for _, c := range f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified) {
		g.Expect(c.Secure).To(BeFalse())
	}
}

func TestSessionSatisfiesRequireMFA(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	tests := []struct {
		name    string
		cookies []*http.Cookie
	}{
		{"both cookies", cookies},
		{"session cookie alone", []*http.Cookie{cookieNamed(cookies, session.CookieName)}},
		{"remembered cookie alone (a new browser session)", []*http.Cookie{cookieNamed(cookies, session.RememberCookieName)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), tt.cookies...)
			w := f.serve(r)
			g.Expect(w.Code).To(Equal(http.StatusOK))
			g.Expect(w.Header().Get(headerUser)).To(Equal(ana))
			g.Expect(w.Header().Get(headerMultifactor)).To(Equal("google-authenticator"))
		})
	}
}

func TestSessionCookieRefusals(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	anaCookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	bobCookies := f.issue(headerIdentity("bob@example.com"), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	sess := cookieNamed(anaCookies, session.CookieName)

	tampered := func() *http.Cookie {
		raw, _ := base64.RawURLEncoding.DecodeString(sess.Value)
		raw[len(raw)-5] ^= 1
		return &http.Cookie{Name: session.CookieName, Value: base64.RawURLEncoding.EncodeToString(raw)}
	}
	otherKeyring := func() *http.Cookie {
		kd, _ := keyring.Generate(f.clock.Now())
		kr, _ := keyring.New(*kd)
		return &http.Cookie{Name: session.CookieName, Value: base64.RawURLEncoding.EncodeToString(
			kr.Seal(keyring.PurposeCookie, []byte(`{"v":1,"u":"ana@example.com","f":[{"p":"apps/google-authenticator","m":"google-authenticator","t":1795766000}],"iat":1795766000,"sid":"x","exp":1895766000}`), []byte(session.CookieName)))}
	}
	// The remembered cookie's value under the session cookie's name: the
	// name is authenticated too.
	swapped := &http.Cookie{Name: session.CookieName, Value: cookieNamed(anaCookies, session.RememberCookieName).Value}

	tests := []struct {
		name   string
		cookie *http.Cookie
	}{
		{"another user's cookie", cookieNamed(bobCookies, session.CookieName)},
		{"another user's remembered cookie", cookieNamed(bobCookies, session.RememberCookieName)},
		{"a tampered cookie", tampered()},
		{"a cookie sealed with another keyring", otherKeyring()},
		{"garbage", &http.Cookie{Name: session.CookieName, Value: "bm90LWEtY29va2ll"}},
		{"a cookie under the other cookie's name", swapped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), tt.cookie)
			g.Expect(f.serve(r).Code).To(Equal(http.StatusUnauthorized))
		})
	}
}

func TestSessionCookieSurvivesKeyRotation(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	old := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	req := func(cookies []*http.Cookie) *http.Request {
		return withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), cookies...)
	}
	// A new key in front: cookies made with the old one still work.
	kd := *f.kr
	g.Expect(kd.AddSymmetricKey(f.clock.Now())).To(Succeed())
	g.Expect(kd.AddSigningKey(f.clock.Now())).To(Succeed())
	f.setKeyring(&kd)
	g.Expect(f.serve(req(old)).Code).To(Equal(http.StatusOK))

	fresh := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	g.Expect(f.serve(req(fresh)).Code).To(Equal(http.StatusOK))

	// The old key removed: its cookies stop working, the new ones do not.
	kd.SymmetricKeys = kd.SymmetricKeys[:1]
	f.setKeyring(&kd)
	g.Expect(f.serve(req(old)).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(f.serve(req(fresh)).Code).To(Equal(http.StatusOK))
}

func TestRememberForIsCheckedPerRule(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	// Answered for the 720h rule: one cookie serves both rules.
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	rem := []*http.Cookie{cookieNamed(cookies, session.RememberCookieName)}
	req := func(path string) *http.Request {
		return withCookies(authRequest("/auth/apps/admin", "https://admin.example.com"+path, map[string]string{"X-Auth-Request-Email": ana}), rem...)
	}
	tests := []struct {
		after        time.Duration
		billing      int // rememberFor 1h
		everyoneElse int // rememberFor 720h (default)
	}{
		{0, http.StatusOK, http.StatusOK},
		{59 * time.Minute, http.StatusOK, http.StatusOK},
		{2 * time.Hour, http.StatusUnauthorized, http.StatusOK},
		{719 * time.Hour, http.StatusUnauthorized, http.StatusOK},
		{721 * time.Hour, http.StatusUnauthorized, http.StatusUnauthorized},
	}
	start := f.clock.Now()
	for _, tt := range tests {
		t.Run(tt.after.String(), func(t *testing.T) {
			g := NewWithT(t)
			f.clock.Advance(start.Add(tt.after).Sub(f.clock.Now()))
			g.Expect(f.serve(req("/billing")).Code).To(Equal(tt.billing))
			g.Expect(f.serve(req("/home")).Code).To(Equal(tt.everyoneElse))
		})
	}
}

func TestIgnoreCookie(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	req := func(cookies ...*http.Cookie) *http.Request {
		return withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/strict", map[string]string{"X-Auth-Request-Email": ana}), cookies...)
	}

	// Answered for a rule that honours the remembered cookie: the strict
	// rule takes the browser session, never the remembered cookie.
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	g.Expect(f.serve(req(cookieNamed(cookies, session.RememberCookieName))).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(f.serve(req(cookieNamed(cookies, session.CookieName))).Code).To(Equal(http.StatusOK))

	// Answered for the strict rule: no remembered cookie is set at all.
	strict := f.issue(headerIdentity(ana), "apps", "admin", "strict", "apps/google-authenticator", session.Verified)
	g.Expect(cookieNamed(strict, session.RememberCookieName)).To(BeNil())
	g.Expect(f.serve(req(cookieNamed(strict, session.CookieName))).Code).To(Equal(http.StatusOK))
}

func TestIgnoreCookieAsksAgainAfterANewLogin(t *testing.T) {
	g := NewWithT(t)
	idp := newCoreIssuer(t)
	f := newCoreServer(t, coreProvidersYAML+idp.policyYAML(`
  - name: strict
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator], ignoreCookie: true }
`), func(o *Options) {})
	idp.clock = f.clock
	login := f.clock.Now().Add(-time.Minute)
	id := &identity{User: userOf(ana), Source: sourceJWT, AuthTime: login}
	cookies := f.issue(id, "apps", "jwt-app", "strict", "apps/google-authenticator", session.Verified)
	sess := cookieNamed(cookies, session.CookieName)

	req := func(authTime time.Time) *http.Request {
		tok := idp.sign(t, jwt.MapClaims{"sub": ana, "auth_time": authTime.Unix()})
		return withCookies(authRequest("/auth/apps/jwt-app", "https://app.example.com/", map[string]string{"Authorization": "Bearer " + tok}), sess)
	}
	g.Expect(f.serve(req(login)).Code).To(Equal(http.StatusOK))
	g.Expect(f.serve(req(login.Add(-time.Hour))).Code).To(Equal(http.StatusOK))
	g.Expect(f.serve(req(login.Add(time.Second))).Code).To(Equal(http.StatusUnauthorized))
}

func TestFailOpenSessionNeverClaimsTheFactor(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/duo", session.FailOpen)
	g.Expect(cookieNamed(cookies, session.RememberCookieName)).To(BeNil())
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), cookies...))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Values(headerMultifactor)).To(Equal([]string{""}))
	claims := f.verifyAssertion(w.Header().Get(headerAssertion))
	g.Expect(claims["multifactor"]).To(BeEmpty())
	g.Expect(claims["amr"]).To(BeEmpty())
}

func TestSessionKeepsFactorsOfOtherProviders(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	first := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/duo", session.Verified)
	both := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified, first...)
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}),
		cookieNamed(both, session.CookieName)))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Get(headerMultifactor)).To(Equal("duo,google-authenticator"))
	// The billing rule accepts only TOTP.
	w = f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana}),
		cookieNamed(first, session.CookieName)))
	g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
}

// sealedElsewhere is a cookie of our name that another installation (its
// own keyring) set for the same user under the cookie domain.
func sealedElsewhere(t testing.TB, f *coreFixture, name string) *http.Cookie {
	t.Helper()
	kd, err := keyring.Generate(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(*kd)
	if err != nil {
		t.Fatal(err)
	}
	plain := `{"v":1,"u":"ana@example.com","f":[{"p":"apps/google-authenticator","m":"google-authenticator","t":1795766000}],"iat":1795766000,"sid":"x","exp":1895766000}`
	return &http.Cookie{Name: name, Value: base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCookie, []byte(plain), []byte(name)))}
}

// forgedUnderOurKey carries our current key id, then random bytes: only a
// decryption tells it from a genuine cookie.
func forgedUnderOurKey(f *coreFixture, name string, i int) *http.Cookie {
	sealed := []byte{8}
	id, _ := hex.DecodeString(f.kr.SymmetricKeys[0].ID)
	sealed = append(sealed, id...)
	sealed = append(sealed, bytes.Repeat([]byte{byte(i)}, 12+100+16)...)
	return &http.Cookie{Name: name, Value: base64.RawURLEncoding.EncodeToString(sealed)}
}

func TestSessionCookieIsFoundBehindOtherAppsCookiesOfTheSameName(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	junk := map[string]func(name string) *http.Cookie{
		"sealed by another installation": func(name string) *http.Cookie { return sealedElsewhere(t, f, name) },
		"base64 of something else":       func(name string) *http.Cookie { return &http.Cookie{Name: name, Value: "bm90LWEtY29va2ll"} },
		"not base64":                     func(name string) *http.Cookie { return &http.Cookie{Name: name, Value: "s%3Aabc.def!"} },
		"too long to be ours": func(name string) *http.Cookie {
			return &http.Cookie{Name: name, Value: strings.Repeat("A", session.MaxValueLen+1)}
		},
	}
	for kind, make := range junk {
		for _, name := range []string{session.CookieName, session.RememberCookieName} {
			t.Run(kind+" before the "+name+" cookie", func(t *testing.T) {
				g := NewWithT(t)
				// More than the values ever decrypted for one name: these
				// cost none of that.
				var sent []*http.Cookie
				for range session.MaxOpensPerName + 4 {
					sent = append(sent, make(name))
				}
				sent = append(sent, cookieNamed(cookies, name))
				w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), sent...))
				g.Expect(w.Code).To(Equal(http.StatusOK))
				g.Expect(w.Header().Get(headerMultifactor)).To(Equal("google-authenticator"))
			})
		}
	}
}

func TestSameNamedCookiesCostBoundedWork(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	// What each value costs is tested in internal/session.
	for _, tt := range []struct {
		name string
		junk func(i int, name string) *http.Cookie
	}{
		{"fifty cookies of another installation", func(_ int, name string) *http.Cookie { return sealedElsewhere(t, f, name) }},
		{"fifty forgeries under our key id", func(i int, name string) *http.Cookie { return forgedUnderOurKey(f, name, i) }},
	} {
		t.Run(tt.name+" before ours are a challenge, not an error", func(t *testing.T) {
			g := NewWithT(t)
			var sent []*http.Cookie
			for i := range 50 {
				sent = append(sent, tt.junk(i, session.CookieName), tt.junk(i, session.RememberCookieName))
			}
			sent = append(sent, cookies...)
			w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), sent...))
			g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		})
	}
}

func TestSessionCookieWinsOverRememberedCookieInAnyOrder(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	duo := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/duo", session.Verified)
	totp := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified)
	r := authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana})
	r.Header.Set("Cookie", session.RememberCookieName+"="+cookieNamed(duo, session.RememberCookieName).Value+"; "+session.CookieName+"="+cookieNamed(totp, session.CookieName).Value)
	w := f.serve(r)
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Get(headerMultifactor)).To(Equal("google-authenticator"))
}

func TestNewSessionKeepsFactorsBehindOtherAppsCookies(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	first := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/duo", session.Verified)
	var sent []*http.Cookie
	for range session.MaxOpensPerName + 4 {
		sent = append(sent, sealedElsewhere(t, f, session.CookieName))
	}
	sent = append(sent, first...)
	both := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", session.Verified, sent...)
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}),
		cookieNamed(both, session.CookieName)))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Get(headerMultifactor)).To(Equal("duo,google-authenticator"))
}
