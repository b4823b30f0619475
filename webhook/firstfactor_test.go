package webhook

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/session"
)

// TestForwardAuthIdentity: the first factor's answer decides who the user
// is, and each of its answers gives the front door a closed door or the
// right way on, never a 5xx.
func TestForwardAuthIdentity(t *testing.T) {
	f, ff := newSSOFixture(t, "", ssoRules)
	ff.signIn("ana-session", ssoUser{email: ana, user: "ana", username: "ana", groups: []string{"ops", "dev"}})
	ff.signIn("bob-session", ssoUser{email: "bob@example.com", user: "bob"})

	t.Run("a session of a user a rule allows: 200 with the first factor's user", func(t *testing.T) {
		g := NewWithT(t)
		w := f.serve(ssoAuth("ana-session"))
		g.Expect(w.Code).To(Equal(http.StatusOK), f.logs.String())
		g.Expect(w.Header().Get(headerUser)).To(Equal(ana))
	})
	t.Run("the cookies and the original request reach the first factor, not the challenge server's own cookies", func(t *testing.T) {
		g := NewWithT(t)
		before := ff.callCount()
		w := f.serve(ssoAuth("bob-session", &http.Cookie{Name: session.CookieName, Value: "sealed"}, &http.Cookie{Name: "theme", Value: "dark"}))
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(ff.callCount()).To(Equal(before + 1))
		h := ff.lastHeaders()
		g.Expect(h.Get("Cookie")).To(Equal("_oauth2_proxy=bob-session; theme=dark"))
		g.Expect(h.Get("X-Original-URL")).To(Equal("https://app.example.com/reports?q=1"))
		g.Expect(h.Get("X-Forwarded-Host")).To(Equal("app.example.com"))
		g.Expect(h.Get("X-Forwarded-Uri")).To(Equal("/reports?q=1"))
	})
	t.Run("a session of a user who needs a second factor: 401 to the challenge", func(t *testing.T) {
		g := NewWithT(t)
		w := f.serve(ssoAuth("bob-session"))
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(w.Header().Get("Location")).To(HavePrefix("https://auth.example.com/challenge/apps/sso?rd="))
	})
	t.Run("no first-factor session: 401 to the sign-in page, back to the app through the front door", func(t *testing.T) {
		g := NewWithT(t)
		for _, cookie := range []string{"", "unknown"} {
			w := f.serve(ssoAuth(cookie))
			g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
			loc, err := url.Parse(w.Header().Get("Location"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal("https://sso.example.com/oauth2/start"))
			g.Expect(loc.Query().Get("rd")).To(Equal("https://app.example.com/reports?q=1"))
		}
	})
	t.Run("forward-auth redirects to the sign-in page itself", func(t *testing.T) {
		g := NewWithT(t)
		r := httptest.NewRequest(http.MethodGet, "/forward-auth/apps/sso", nil)
		r.RemoteAddr = coreProxyAddr
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "app.example.com")
		r.Header.Set("X-Forwarded-Uri", "/")
		w := f.serve(r)
		g.Expect(w.Code).To(Equal(http.StatusFound))
		g.Expect(w.Header().Get("Location")).To(Equal("https://sso.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2F"))
	})
	t.Run("the first factor refuses the user: 403", func(t *testing.T) {
		g := NewWithT(t)
		ff.set(http.StatusForbidden, false)
		defer ff.set(0, false)
		w := f.serve(ssoAuth("someone-else"))
		g.Expect(w.Code).To(Equal(http.StatusForbidden))
		g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	})
	t.Run("the first factor fails: 401 to the challenge page, never 200 or 5xx", func(t *testing.T) {
		g := NewWithT(t)
		ff.set(http.StatusBadGateway, false)
		defer ff.set(0, false)
		w := f.serve(ssoAuth("carol-session"))
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(w.Header().Get("Location")).To(HavePrefix("https://auth.example.com/challenge/apps/sso?rd="))
	})
	t.Run("a 2xx naming no one is not an identity", func(t *testing.T) {
		g := NewWithT(t)
		ff.signIn("nameless", ssoUser{})
		w := f.serve(ssoAuth("nameless"))
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized))
		g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
	})
}

// challengePage is a browser's GET of the challenge page of apps/sso.
func challengePage(cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://auth.example.com/challenge/apps/sso?rd="+url.QueryEscape("https://app.example.com/reports"), nil)
	r.RemoteAddr = coreClientAddr
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: "_oauth2_proxy", Value: cookie})
	}
	return r
}

// TestForwardAuthChallengePage: the challenge page sends a browser without
// a first-factor session to the sign-in page and back to itself, and
// shows a page, never a way in, when the first factor is down.
func TestForwardAuthChallengePage(t *testing.T) {
	f, ff := newSSOFixture(t, `
      timeout: 100ms`, ssoRules)
	ff.signIn("bob-session", ssoUser{email: "bob@example.com", user: "bob"})

	g := NewWithT(t)
	w := f.serve(challengePage(""))
	g.Expect(w.Code).To(Equal(http.StatusFound))
	loc, _ := url.Parse(w.Header().Get("Location"))
	g.Expect(loc.Host).To(Equal("sso.example.com"))
	g.Expect(loc.Query().Get("rd")).To(Equal("https://app.example.com/reports"))
	// An rd to a host the policy does not list is not handed on.
	evil := challengePage("")
	evil.URL.RawQuery = "rd=" + url.QueryEscape("https://evil.example/x")
	w = f.serve(evil)
	g.Expect(w.Code).To(Equal(http.StatusFound))
	loc, _ = url.Parse(w.Header().Get("Location"))
	g.Expect(loc.Query().Get("rd")).NotTo(ContainSubstring("evil"))

	w = f.serve(challengePage("bob-session"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("bob@example.com"))

	ff.set(0, true) // the first factor hangs: the call times out
	w = f.serve(challengePage("carol-session"))
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Body.String()).To(ContainSubstring("single sign-on service cannot be reached"))
	g.Expect(w.Header().Get("Retry-After")).NotTo(BeEmpty())
}

// TestForwardAuthCacheNeverCrossesCookies: an answer is reused only for
// the very cookies it was given for: every user gets their own identity
// back, a cookie added or changed asks again, and 401s are not kept.
func TestForwardAuthCacheNeverCrossesCookies(t *testing.T) {
	f, ff := newSSOFixture(t, "", ssoRules)
	users := []string{"ana", "bob", "carol", "dave"}
	for _, u := range users {
		ff.signIn(u+"-session", ssoUser{email: u + "@example.com", user: u})
	}
	g := NewWithT(t)
	ident := func(cookie string, more ...*http.Cookie) string {
		sn := f.s.config.snapshot()
		var st authState
		r := ssoAuth(cookie, more...)
		g.Expect(parseOriginal(r, "", pathsStrict, &st.orig)).To(Succeed())
		id, err := sn.entry("apps", "sso").identify(r.Context(), r, nil, true, &st.orig)
		if err != nil {
			return err.Error()
		}
		return id.User.ID
	}
	for round := 0; round < 3; round++ { // the first round fills the cache
		for _, u := range users {
			g.Expect(ident(u+"-session")).To(Equal(u+"@example.com"), "round %d", round)
		}
	}
	g.Expect(ff.callCount()).To(Equal(len(users)), "rounds 2 and 3 are answered from the cache")

	// Another cookie next to ana's is other credentials: asked again.
	g.Expect(ident("ana-session", &http.Cookie{Name: "_oauth2_proxy_1", Value: "x"})).To(Equal(ana))
	g.Expect(ff.callCount()).To(Equal(len(users) + 1))
	// A cookie that is a prefix or an extension of ana's is not ana.
	g.Expect(ident("ana-sessio")).To(Equal(errSignInFirst.Error()))
	g.Expect(ident("ana-session2")).To(Equal(errSignInFirst.Error()))
	// A 401 is not kept: once signed in, the same cookie is known at once.
	ff.signIn("ana-session2", ssoUser{email: "eve@example.com", user: "eve"})
	g.Expect(ident("ana-session2")).To(Equal("eve@example.com"))

	// After the TTL the first factor is asked again (a session it ended
	// is noticed).
	calls := ff.callCount()
	f.clock.Advance(11 * time.Second)
	g.Expect(ident("bob-session")).To(Equal("bob@example.com"))
	g.Expect(ff.callCount()).To(Equal(calls + 1))
}

// TestForwardAuthCacheIsBounded: 100k distinct cookies leave at most
// firstFactorCacheSize answers in memory, and the latest still answer
// from it.
func TestForwardAuthCacheIsBounded(t *testing.T) {
	f, ff := newSSOFixture(t, "", ssoRules)
	e := f.s.config.snapshot().entry("apps", "sso")
	// The first factor's handler, called in process: the same client code,
	// without 100k connections.
	e.firstFactor.client.Transport = handlerTransport{ff}
	g := NewWithT(t)
	var st authState
	r := ssoAuth("")
	g.Expect(parseOriginal(r, "", pathsStrict, &st.orig)).To(Succeed())
	const n = 100_000
	for i := 0; i < n; i++ {
		c, want := "s"+itoa(i), "u"+itoa(i)+"@example.com"
		ff.signIn(c, ssoUser{email: want})
		r.Header.Set("Cookie", "_oauth2_proxy="+c)
		if id, err := e.identify(r.Context(), r, nil, true, &st.orig); err != nil || id.User.ID != want {
			t.Fatalf("cookie %d: identity %v, error %v; want %s", i, id, err, want)
		}
	}
	g.Expect(e.firstFactor.cache.Len()).To(Equal(firstFactorCacheSize))
	calls := ff.callCount()
	r.Header.Set("Cookie", "_oauth2_proxy=s"+itoa(n-1))
	id, err := e.identify(r.Context(), r, nil, true, &st.orig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.User.ID).To(Equal("u" + itoa(n-1) + "@example.com"))
	g.Expect(ff.callCount()).To(Equal(calls), "the latest answer is in the cache")
}

// handlerTransport serves requests with a handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for ; i > 0; i /= 10 {
		n--
		b[n] = byte('0' + i%10)
	}
	return string(b[n:])
}

// TestForwardAuthCircuitBreaker: after repeated failures the first factor
// is not called until the cooldown is over, and the door stays closed.
func TestForwardAuthCircuitBreaker(t *testing.T) {
	f, ff := newSSOFixture(t, "", ssoRules)
	ff.set(http.StatusServiceUnavailable, false)
	g := NewWithT(t)
	for i := 0; i < breakerThreshold; i++ {
		g.Expect(f.serve(ssoAuth("ana-session")).Code).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(ff.callCount()).To(Equal(breakerThreshold))
	g.Expect(f.serve(ssoAuth("ana-session")).Code).To(Equal(http.StatusUnauthorized))
	g.Expect(ff.callCount()).To(Equal(breakerThreshold), "the circuit is open")

	ff.set(0, false)
	ff.signIn("ana-session", ssoUser{email: ana, groups: []string{"ops"}})
	f.clock.Advance(breakerCooldown)
	g.Expect(f.serve(ssoAuth("ana-session")).Code).To(Equal(http.StatusOK), "one call tries again after the cooldown")
	g.Expect(ff.callCount()).To(Equal(breakerThreshold + 1))
}

// TestForwardAuthToken: with forwardAuth.token, the user and user.claims
// come from the token of the first factor's answer, verified against the
// issuer's JWKS; an answer without a valid token is no identity.
func TestForwardAuthToken(t *testing.T) {
	idp := newCoreIssuer(t)
	tokenCfg := `
      token: { issuer: "` + coreIssuerURL + `", audiences: [app], jwksURL: "` + idp.srv.URL + `/jwks", userClaim: email }`
	rules := `
  - name: password-logins
    when: '"pwd" in user.claims.amr'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
  - name: others
    when: 'true'
    action: Allow
`
	f, ff := newSSOFixture(t, tokenCfg, rules)
	idp.clock = f.clock
	ff.signIn("pwd", ssoUser{email: ana, token: idp.sign(t, jwt.MapClaims{"sub": "1", "email": ana, "amr": []string{"pwd"}})})
	ff.signIn("key", ssoUser{email: ana, token: idp.sign(t, jwt.MapClaims{"sub": "1", "email": ana, "amr": []string{"hwk"}})})
	ff.signIn("forged", ssoUser{email: ana, token: strings.Replace(idp.sign(t, jwt.MapClaims{"sub": "1", "email": ana, "amr": []string{"hwk"}}), ".", ".x", 1)})
	ff.signIn("none", ssoUser{email: ana})

	g := NewWithT(t)
	g.Expect(f.serve(ssoAuth("pwd")).Code).To(Equal(http.StatusUnauthorized), "a password login needs the second factor")
	w := f.serve(ssoAuth("key"))
	g.Expect(w.Code).To(Equal(http.StatusOK), f.logs.String())
	g.Expect(w.Header().Get(headerUser)).To(Equal(ana))
	for _, c := range []string{"forged", "none"} {
		w = f.serve(ssoAuth(c))
		g.Expect(w.Code).To(Equal(http.StatusUnauthorized), c)
		g.Expect(w.Header().Get(headerUser)).To(BeEmpty(), c)
	}
}

// TestForwardAuthTLS: the first factor's certificate is verified against
// the CA bundle of the policy's Secret; without it, nothing is believed.
func TestForwardAuthTLS(t *testing.T) {
	ff := newTestFirstFactor()
	ff.signIn("ana-session", ssoUser{email: ana, groups: []string{"ops"}})
	srv := httptest.NewTLSServer(ff)
	t.Cleanup(srv.Close)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	indent := "    " + strings.ReplaceAll(strings.TrimSpace(caPEM), "\n", "\n    ")
	withCA := ssoPolicyYAML(srv.URL, `
      caBundleRef: { name: sso-ca, key: ca.crt }`, ssoRules) + `
---
apiVersion: v1
kind: Secret
metadata: { name: sso-ca, namespace: apps }
stringData:
  ca.crt: |
` + indent + "\n"
	g := NewWithT(t)
	f := newCoreServer(t, withCA)
	g.Expect(f.serve(ssoAuth("ana-session")).Code).To(Equal(http.StatusOK), f.logs.String())

	f = newCoreServer(t, ssoPolicyYAML(srv.URL, "", ssoRules))
	g.Expect(f.serve(ssoAuth("ana-session")).Code).To(Equal(http.StatusUnauthorized), "an unknown CA is not trusted")
	g.Expect(f.serve(ssoAuth("ana-session")).Header().Get(headerUser)).To(BeEmpty())
}
