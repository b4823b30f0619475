package webhook

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/passkey/passkeytest"
)

// webAuthnConfigYAML adds a webauthn provider to the challenge pages'
// objects, and a rule under /keys that offers it beside TOTP.
var webAuthnConfigYAML = strings.Replace(challengeConfigYAML, "  - name: everyone\n", `  - name: keys
    when: 'request.path.startsWith("/keys")'
    action: RequireMFA
    multifactor: { providers: [webauthn, google-authenticator], ignoreCookie: true }
  - name: everyone
`, 1) + `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: webauthn, namespace: apps }
spec:
  type: webauthn
  webauthn: { rpDisplayName: Example Corp }
`

const webAuthnRD = "https://admin.example.com/keys"

var (
	webAuthnFormRE = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)" id="webauthn-form" data-mode="([a-z]+)" data-options="([^"]*)">(.*?)</form>`)
	alertRE        = regexp.MustCompile(`<p class="alert" role="alert" id="form-error">([^<]*)</p>`)
)

// webAuthnPage is the WebAuthn form of the last page: its mode, the
// options for the browser and the hidden fields.
func (b *browser) webAuthnPage() (mode string, options []byte, fields url.Values) {
	b.f.t.Helper()
	m := webAuthnFormRE.FindStringSubmatch(b.last)
	if m == nil {
		b.f.t.Fatalf("no WebAuthn form on the page:\n%s", b.last)
	}
	fields = url.Values{}
	for _, h := range hiddenRE.FindAllStringSubmatch(m[4], -1) {
		fields.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	return m[2], []byte(html.UnescapeString(m[3])), fields
}

// authAMR asks /auth about rd with the browser's cookies and returns the
// answer's status and the assertion's amr.
func (f *challengeFixture) authAMR(b *browser) (int, string, []string) {
	auth := httptest.NewRequest(http.MethodGet, "http://mfa-challenge/auth/apps/admin", nil)
	auth.RemoteAddr = challengeProxyAddr
	auth.Header.Set("X-Original-URL", webAuthnRD)
	auth.Header.Set("X-Original-Method", http.MethodGet)
	auth.Header.Set("X-Forwarded-For", f.clientIP)
	auth.Header.Set("X-Auth-Request-Email", b.user)
	for _, c := range b.jar.Cookies(&url.URL{Scheme: "https", Host: "admin.example.com", Path: "/"}) {
		auth.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.s.handler.ServeHTTP(w, auth)
	var claims struct {
		AMR []string `json:"amr"`
	}
	if parts := strings.Split(w.Header().Get("X-Mfa-Assertion"), "."); len(parts) == 3 {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		_ = json.Unmarshal(raw, &claims)
	}
	return w.Code, w.Header().Get("X-Mfa-Multifactor"), claims.AMR
}

func TestWebAuthnPagesRegisterThenSignIn(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixtureWith(t, webAuthnConfigYAML, nil)
	b := f.browser(challengeUser)
	key := passkeytest.New("https://auth.example.com", "example.com")

	// The rule offers both providers.
	w := b.get(challengeURL(webAuthnRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(b.last).To(ContainSubstring("Security key or passkey"))
	g.Expect(b.last).To(ContainSubstring("Authenticator app"))

	w = b.get(challengeURL(webAuthnRD, "provider", "webauthn"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	csp := w.Header().Get("Content-Security-Policy")
	g.Expect(csp).To(MatchRegexp(`script-src 'nonce-[A-Za-z0-9_-]+'`), "the page's own script only")
	g.Expect(b.last).To(ContainSubstring(`<script nonce="`))
	g.Expect(b.last).NotTo(MatchRegexp(`<script[^>]* src=`), "no script from elsewhere")
	mode, options, fields := b.webAuthnPage()
	g.Expect(mode).To(Equal("create"))
	answer, err := key.Create(options)
	g.Expect(err).NotTo(HaveOccurred())
	fields.Set("name", "  Laptop\x07 key ")
	fields.Set("credential", string(answer))
	w = b.post(challengePath+webAuthnPathRegister, fields)
	g.Expect(w.Code).To(Equal(http.StatusOK), b.last)
	g.Expect(b.last).To(ContainSubstring("Laptop key"), "the name, cleaned")
	g.Expect(codesRE.FindAllString(b.last, -1)).To(HaveLen(10), "recovery codes, once")

	code, multifactor, amr := f.authAMR(b)
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(multifactor).To(Equal("webauthn"))
	g.Expect(amr).To(ConsistOf("mfa", "hwk"))

	// The same answer again: the registration ceremony is used up.
	w = b.post(challengePath+webAuthnPathRegister, fields)
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(html.UnescapeString(alertRE.FindStringSubmatch(b.last)[1])).To(ContainSubstring("already used"))

	// A new browser session signs in with the key.
	b2 := f.browser(challengeUser)
	b2.get(challengeURL(webAuthnRD, "provider", "webauthn"))
	mode, options, fields = b2.webAuthnPage()
	g.Expect(mode).To(Equal("get"))
	g.Expect(b2.last).To(ContainSubstring("Laptop key"), "the user's keys are listed")
	answer, err = key.Get(options)
	g.Expect(err).NotTo(HaveOccurred())
	fields.Set("credential", string(answer))
	w = b2.post(challengePath+webAuthnPathLogin, fields)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), b2.last)
	g.Expect(w.Header().Get("Location")).To(Equal(webAuthnRD))
	code, multifactor, _ = f.authAMR(b2)
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(multifactor).To(Equal("webauthn"))

	// The first factor alone cannot add a key: a third browser session
	// asking for the add-key page gets the sign-in page.
	b3 := f.browser(challengeUser)
	w = b3.get(challengeURL(webAuthnRD, "provider", "webauthn", "method", "add-key"))
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	mode, _, _ = b3.webAuthnPage()
	g.Expect(mode).To(Equal("get"))

	// Right after the sign-in, b2 may add a second key.
	w = b2.get(challengeURL(webAuthnRD, "provider", "webauthn", "method", "add-key"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	mode, options, fields = b2.webAuthnPage()
	g.Expect(mode).To(Equal("create"))
	second := passkeytest.New("https://auth.example.com", "example.com")
	second.BackupEligible = true
	answer, err = second.Create(options)
	g.Expect(err).NotTo(HaveOccurred())
	fields.Set("credential", string(answer))
	w = b2.post(challengePath+webAuthnPathRegister, fields)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), b2.last)
}

func TestWebAuthnPagesSayWhyAKeyIsRefused(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixtureWith(t, webAuthnConfigYAML, nil)
	b := f.browser(challengeUser)
	key := passkeytest.New("https://auth.example.com", "example.com")
	b.get(challengeURL(webAuthnRD, "provider", "webauthn"))
	_, options, fields := b.webAuthnPage()
	answer, err := key.Create(options)
	g.Expect(err).NotTo(HaveOccurred())
	fields.Set("credential", string(answer))
	g.Expect(b.post(challengePath+webAuthnPathRegister, fields).Code).To(Equal(http.StatusOK))

	refused := func(a *passkeytest.Authenticator, want string, status int) {
		t.Helper()
		b.get(challengeURL(webAuthnRD, "provider", "webauthn"))
		_, options, fields := b.webAuthnPage()
		answer, err := a.Get(options)
		g.Expect(err).NotTo(HaveOccurred())
		fields.Set("credential", string(answer))
		w := b.post(challengePath+webAuthnPathLogin, fields)
		g.Expect(w.Code).To(Equal(status), b.last)
		g.Expect(html.UnescapeString(alertRE.FindStringSubmatch(b.last)[1])).To(ContainSubstring(want))
	}
	refused(passkeytest.New("https://auth.example.com", "example.com"), "This key is not registered", http.StatusUnprocessableEntity)
	other := *key
	other.RPID = "example.org"
	refused(&other, "may be for another site", http.StatusUnprocessableEntity)

	key.Counter = 5
	b.get(challengeURL(webAuthnRD, "provider", "webauthn"))
	_, options, fields = b.webAuthnPage()
	answer, err = key.Get(options)
	g.Expect(err).NotTo(HaveOccurred())
	fields.Set("credential", string(answer))
	g.Expect(b.post(challengePath+webAuthnPathLogin, fields).Code).To(Equal(http.StatusSeeOther))

	key.Counter = 0 // a clone that has not kept up
	refused(key, "looks copied", http.StatusForbidden)
	g.Expect(f.logs.String()).To(ContainSubstring("event=webauthn_counter_regressed"))
	g.Expect(f.logs.String()).To(ContainSubstring("audit=true"))

	// A form without an answer from the key.
	b.get(challengeURL(webAuthnRD, "provider", "webauthn"))
	_, _, fields = b.webAuthnPage()
	w := b.post(challengePath+webAuthnPathLogin, fields)
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(html.UnescapeString(alertRE.FindStringSubmatch(b.last)[1])).To(ContainSubstring("The browser refused"))
}
