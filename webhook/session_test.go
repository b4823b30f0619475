package webhook

import (
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
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
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)

	sess := cookieNamed(cookies, SessionCookieName)
	g.Expect(sess).NotTo(BeNil())
	g.Expect(sess.MaxAge).To(BeZero()) // a browser-session cookie
	g.Expect(sess.Expires.IsZero()).To(BeTrue())
	rem := cookieNamed(cookies, RememberCookieName)
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
	for _, c := range f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified) {
		g.Expect(c.Secure).To(BeFalse())
	}
}

func TestSessionSatisfiesRequireMFA(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
	tests := []struct {
		name    string
		cookies []*http.Cookie
	}{
		{"both cookies", cookies},
		{"session cookie alone", []*http.Cookie{cookieNamed(cookies, SessionCookieName)}},
		{"remembered cookie alone (a new browser session)", []*http.Cookie{cookieNamed(cookies, RememberCookieName)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), tt.cookies...)
			w := f.serve(r)
			g.Expect(w.Code).To(Equal(http.StatusOK))
			g.Expect(w.Header().Get(HeaderUser)).To(Equal(ana))
			g.Expect(w.Header().Get(HeaderMultifactor)).To(Equal("google-authenticator"))
		})
	}
}

func TestSessionCookieRefusals(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML)
	anaCookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
	bobCookies := f.issue(headerIdentity("bob@example.com"), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
	sess := cookieNamed(anaCookies, SessionCookieName)

	tampered := func() *http.Cookie {
		raw, _ := base64.RawURLEncoding.DecodeString(sess.Value)
		raw[len(raw)-5] ^= 1
		return &http.Cookie{Name: SessionCookieName, Value: base64.RawURLEncoding.EncodeToString(raw)}
	}
	otherKeyring := func() *http.Cookie {
		kd, _ := keyring.Generate(f.clock.Now())
		kr, _ := keyring.New(*kd)
		return &http.Cookie{Name: SessionCookieName, Value: base64.RawURLEncoding.EncodeToString(
			kr.Seal(keyring.PurposeCookie, []byte(`{"v":1,"u":"ana@example.com","f":[{"p":"apps/google-authenticator","m":"google-authenticator","t":1795766000}],"iat":1795766000,"sid":"x","exp":1895766000}`), []byte(SessionCookieName)))}
	}
	// The remembered cookie's value under the session cookie's name: the
	// name is authenticated too.
	swapped := &http.Cookie{Name: SessionCookieName, Value: cookieNamed(anaCookies, RememberCookieName).Value}

	tests := []struct {
		name   string
		cookie *http.Cookie
	}{
		{"another user's cookie", cookieNamed(bobCookies, SessionCookieName)},
		{"another user's remembered cookie", cookieNamed(bobCookies, RememberCookieName)},
		{"a tampered cookie", tampered()},
		{"a cookie sealed with another keyring", otherKeyring()},
		{"garbage", &http.Cookie{Name: SessionCookieName, Value: "bm90LWEtY29va2ll"}},
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
	old := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
	req := func(cookies []*http.Cookie) *http.Request {
		return withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), cookies...)
	}
	// A new key in front: cookies made with the old one still work.
	kd := *f.kr
	g.Expect(kd.AddSymmetricKey(f.clock.Now())).To(Succeed())
	g.Expect(kd.AddSigningKey(f.clock.Now())).To(Succeed())
	f.setKeyring(&kd)
	g.Expect(f.serve(req(old)).Code).To(Equal(http.StatusOK))

	fresh := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
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
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
	rem := []*http.Cookie{cookieNamed(cookies, RememberCookieName)}
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
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified)
	g.Expect(f.serve(req(cookieNamed(cookies, RememberCookieName))).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(f.serve(req(cookieNamed(cookies, SessionCookieName))).Code).To(Equal(http.StatusOK))

	// Answered for the strict rule: no remembered cookie is set at all.
	strict := f.issue(headerIdentity(ana), "apps", "admin", "strict", "apps/google-authenticator", SessionVerified)
	g.Expect(cookieNamed(strict, RememberCookieName)).To(BeNil())
	g.Expect(f.serve(req(cookieNamed(strict, SessionCookieName))).Code).To(Equal(http.StatusOK))
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
	id := &Identity{User: userOf(ana), Source: SourceJWT, AuthTime: login}
	cookies := f.issue(id, "apps", "jwt-app", "strict", "apps/google-authenticator", SessionVerified)
	sess := cookieNamed(cookies, SessionCookieName)

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
	cookies := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/duo", SessionFailOpen)
	g.Expect(cookieNamed(cookies, RememberCookieName)).To(BeNil())
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}), cookies...))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Values(HeaderMultifactor)).To(Equal([]string{""}))
	claims := f.verifyAssertion(w.Header().Get(HeaderAssertion))
	g.Expect(claims["multifactor"]).To(BeEmpty())
	g.Expect(claims["amr"]).To(BeEmpty())
}

func TestSessionKeepsFactorsOfOtherProviders(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	first := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/duo", SessionVerified)
	both := f.issue(headerIdentity(ana), "apps", "admin", "everyone-else", "apps/google-authenticator", SessionVerified, first...)
	w := f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/home", map[string]string{"X-Auth-Request-Email": ana}),
		cookieNamed(both, SessionCookieName)))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Header().Get(HeaderMultifactor)).To(Equal("duo,google-authenticator"))
	// The billing rule accepts only TOTP.
	w = f.serve(withCookies(authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana}),
		cookieNamed(first, SessionCookieName)))
	g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
}
