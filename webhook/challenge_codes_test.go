package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/session"
)

// Enrolment and verification on the challenge pages: the first code, later
// codes, refused codes, the lockout and recovery codes.

func TestChallengeEnrolmentWalk(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)

	// First visit: the enrolment page with a QR code of the provider's
	// parameters and the same key as text, grouped in fours.
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	page := w.Body.String()
	g.Expect(page).To(ContainSubstring("Set up your authenticator app"))
	g.Expect(page).To(ContainSubstring("admin.example.com"))
	g.Expect(page).To(ContainSubstring(challengeUser))
	o := b.scanQR()
	g.Expect(o.issuer).To(Equal("Example Corp"))
	g.Expect(o.account).To(Equal(challengeUser))
	g.Expect(o.alg).To(Equal("SHA256"))
	g.Expect(o.digits).To(Equal("8"))
	g.Expect(o.period).To(Equal("60"))
	g.Expect(o.uri).To(ContainSubstring("issuer=Example%20Corp"))
	key := keyRE.FindStringSubmatch(page)
	g.Expect(key).NotTo(BeNil())
	g.Expect(strings.ReplaceAll(key[1], " ", "")).To(Equal(o.secret))
	g.Expect(key[1]).To(MatchRegexp(`^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$`))

	// A reload shows the same secret.
	b.get(challengeURL(challengeRD))
	g.Expect(b.scanQR().secret).To(Equal(o.secret))

	// The first code from the app confirms; the recovery codes are shown
	// and the MFA cookies set for the cookie domain.
	code := f.code(o, f.clock.Now())
	w = b.submit("/enroll", url.Values{"code": {code}})
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Save your recovery codes"))
	g.Expect(w.Body.String()).To(ContainSubstring("I saved them, continue"))
	var codes []string
	for _, m := range codesRE.FindAllStringSubmatch(w.Body.String(), -1) {
		codes = append(codes, m[1])
	}
	g.Expect(codes).To(HaveLen(10))
	cookies := map[string]*http.Cookie{}
	for _, c := range w.Result().Cookies() {
		cookies[c.Name] = c
	}
	g.Expect(cookies).To(HaveKey(session.CookieName))
	g.Expect(cookies).To(HaveKey(session.RememberCookieName))
	g.Expect(cookies[session.CookieName].Domain).To(Equal("example.com"))

	// "I saved them, continue" leads back to rd.
	w = b.submit("/continue", nil)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengeRD))

	// The front door now lets the user through with these cookies.
	auth := httptest.NewRequest(http.MethodGet, "http://mfa-challenge/auth/apps/admin", nil)
	auth.RemoteAddr = challengeProxyAddr
	auth.Header.Set("X-Original-URL", challengeRD)
	auth.Header.Set("X-Original-Method", http.MethodGet)
	auth.Header.Set("X-Forwarded-For", f.clientIP)
	auth.Header.Set("X-Auth-Request-Email", challengeUser)
	for _, c := range b.jar.Cookies(&url.URL{Scheme: "https", Host: "admin.example.com", Path: "/"}) {
		auth.AddCookie(c)
	}
	aw := httptest.NewRecorder()
	f.s.handler.ServeHTTP(aw, auth)
	g.Expect(aw.Code).To(Equal(http.StatusOK), aw.Body.String())

	// The recovery codes are never shown again: the page now asks for a code.
	w = b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("Enter your verification code"))
	g.Expect(w.Body.String()).To(ContainSubstring("8-digit code"))
	for _, c := range codes {
		g.Expect(w.Body.String()).NotTo(ContainSubstring(c))
	}
	// Neither the secret, the codes nor the recovery codes reach the logs.
	logs := f.logs.String()
	g.Expect(logs).NotTo(ContainSubstring(o.secret))
	g.Expect(logs).NotTo(ContainSubstring(code))
	for _, c := range codes {
		g.Expect(logs).NotTo(ContainSubstring(c))
	}
}

func TestChallengeVerifyWithACode(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()

	f.clock.Advance(2 * time.Minute)
	b := f.browser(challengeUser) // another browser: no cookies yet
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Body.String()).To(ContainSubstring("Enter your verification code"))
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengeRD))
	g.Expect(w.Header().Values("Set-Cookie")).To(ContainElement(HavePrefix(session.CookieName + "=")))
}

func TestChallengeRefusedCodesSayWhy(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute)

	cases := []struct {
		name   string
		code   func() string
		status int
		text   string
	}{
		{"wrong code", func() string { return wrong(f.code(o, f.clock.Now())) }, http.StatusUnprocessableEntity, "That code is not right, or it has expired."},
		{"expired code, outside the skew", func() string { return f.code(o, f.clock.Now().Add(-3*time.Minute)) }, http.StatusUnprocessableEntity, "That code is not right, or it has expired."},
		{"not digits", func() string { return "no!code?" }, http.StatusUnprocessableEntity, "digits only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			b := f.browser(challengeUser)
			b.get(challengeURL(challengeRD))
			code := tc.code()
			w := b.submit("/verify", url.Values{"code": {code}})
			g.Expect(w.Code).To(Equal(tc.status))
			body := w.Body.String()
			g.Expect(body).To(ContainSubstring(tc.text))
			g.Expect(body).To(MatchRegexp(`<p class="alert" role="alert" id="form-error">`))
			g.Expect(body).To(ContainSubstring(`aria-describedby="code-hint form-error"`))
			g.Expect(body).To(ContainSubstring(`aria-invalid="true"`))
			g.Expect(body).NotTo(ContainSubstring(code), "the code is never echoed")
		})
	}

	t.Run("reused code", func(t *testing.T) {
		b := f.browser(challengeUser)
		b.get(challengeURL(challengeRD))
		code := f.code(o, f.clock.Now())
		w := b.submit("/verify", url.Values{"code": {code}})
		g.Expect(w.Code).To(Equal(http.StatusSeeOther))
		b.get(challengeURL(challengeRD))
		w = b.submit("/verify", url.Values{"code": {code}})
		g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
		g.Expect(w.Body.String()).To(ContainSubstring("That code was already used."))
		g.Expect(w.Body.String()).NotTo(ContainSubstring(code))
	})
}

func TestChallengeLocksOutAfterFiveFailures(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute) // 09:32

	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	right := f.code(o, f.clock.Now())
	var w *httptest.ResponseRecorder
	for i := range 5 {
		w = b.submit("/verify", url.Values{"code": {wrong(right)}})
		if i < 4 {
			g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), "failure %d", i+1)
		}
	}
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("Too many attempts. For your security, verification is paused until 09:37 UTC (in 5 minutes). Try again then."))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("300"))

	// While locked, the right code gets the same answer: nothing is revealed.
	w = b.submit("/verify", url.Values{"code": {right}})
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("verification is paused until 09:37 UTC"))
	g.Expect(w.Header().Values("Set-Cookie")).NotTo(ContainElement(HavePrefix(session.CookieName + "=")))

	// Recovery codes are locked too.
	w = b.get(challengeURL(challengeRD, "method", "recovery"))
	w = b.submit("/recovery", url.Values{"code": {"7k3m-q9tz-4h"}})
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))

	// After the lockout, a fresh code works.
	f.clock.Advance(6 * time.Minute)
	b.get(challengeURL(challengeRD))
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
}

func TestChallengeRecoveryCodeWorksOnce(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	_, codes := f.browser(challengeUser).enrol()

	b := f.browser(challengeUser)
	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Body.String()).To(ContainSubstring("Use a recovery code instead"))
	w = b.get(challengeURL(challengeRD, "provider", "google-authenticator", "method", "recovery"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("Use a recovery code"))
	g.Expect(w.Body.String()).To(ContainSubstring(`<label for="code">Recovery code</label>`))

	// Typed in upper case without dashes: still the code.
	typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", ""))
	w = b.submit("/recovery", url.Values{"code": {typed}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal(challengeRD))

	other := f.browser(challengeUser)
	other.get(challengeURL(challengeRD, "method", "recovery"))
	w = other.submit("/recovery", url.Values{"code": {codes[3]}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(w.Body.String()).To(ContainSubstring("That recovery code is not valid, or it was already used."))
	g.Expect(w.Body.String()).NotTo(ContainSubstring(codes[3]))
}
