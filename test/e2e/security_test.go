//go:build e2e

package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// securityPolicyYAML asks every request for the authenticator app or a
// key, and remembers the browser for a month.
const securityPolicyYAML = `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: admin, namespace: apps}
spec:
  hosts: [app.localhost]
  identity:
    header: {user: X-Auth-Request-Email}
  rules:
  - name: everyone
    when: "true"
    action: RequireMFA
    multifactor: {providers: [google-authenticator, webauthn], rememberFor: 720h}
`

// uaOtherBrowser is the second browser's User-Agent, so that the list
// tells the two apart.
const uaOtherBrowser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"

// TestBrowserSecurityPage drives the Security page through nginx in a real
// Chromium: sign in with the authenticator app (codes from oathtool), see
// the factors and the remembered browsers (this one marked, a second
// Chromium listed), make new recovery codes (an old one is then refused),
// add a passkey with a virtual authenticator, and sign the second browser
// out, which then gets 401 at /auth of both challenge servers (a second
// replica shares the API server) and is sent back to the challenge.
// The page's forms carry the CSRF token (a post without it is refused)
// and its content security policy a nonce. Screenshots go to
// artifacts/e2e/.
func TestBrowserSecurityPage(t *testing.T) {
	g := NewWithT(t)
	env := harness.Start(t, harness.Options{Policy: "apps/admin"})
	webauthnProvider, _, ok := strings.Cut(webAuthnObjectsYAML, "---\napiVersion: mfa.operator.dev/v1alpha1\nkind: MFAPolicy")
	g.Expect(ok).To(BeTrue())
	env.Apply(t, webauthnProvider)
	env.Apply(t, securityPolicyYAML)
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfaprovider/webauthn", "mfapolicy/admin")
	replica := env.StartWebhookReplica(t, "webhook-replica")
	replicas := []string{env.WebhookURL, replica.URL}
	securityURL := env.URL + "/security/apps/admin"
	totpPage := env.URL + "/challenge/apps/admin?provider=google-authenticator&rd=" + url.QueryEscape(env.URL+"/reports")

	// The first browser enrols the authenticator app.
	desk := &keyBrowser{t: t, g: g, ctx: harness.NewBrowser(t), env: env}
	if err := harness.BasicLogin(desk.ctx, env.User, env.Password); err != nil {
		t.Fatal(err)
	}
	desk.do("open the enrolment", desktopViewport(), chromedp.Navigate(totpPage), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	var qr []byte
	desk.call("read the QR code", func(ctx context.Context) (err error) {
		qr, err = chromedp.Run(ctx, chromedp.ScreenshotScale(chromedp.CSS("img.qr"), 2))
		return err
	})
	otp := harness.ParseOTPAuth(t, harness.DecodeQR(t, qr))
	code, _ := otp.NextCode(t)
	desk.do("enter the first code", chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS("form button")), chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	oldCodes := desk.texts("ol.codes li")
	g.Expect(oldCodes).To(HaveLen(10))
	desk.do("continue to the app", chromedp.Click(chromedp.CSS("form button")), chromedp.WaitVisible(chromedp.CSS("#user")))

	// A second browser (another Chromium, another profile) signs in with
	// a code and is remembered.
	laptop := &keyBrowser{t: t, g: g, ctx: harness.NewBrowser(t), env: env}
	if err := harness.BasicLogin(laptop.ctx, env.User, env.Password); err != nil {
		t.Fatal(err)
	}
	laptop.call("another user agent", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: uaOtherBrowser})
		return err
	})
	laptop.do("open the code form", chromedp.Navigate(totpPage), chromedp.WaitVisible(chromedp.CSS("#code")))
	code, _ = otp.NextCode(t)
	laptop.do("enter a code", chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS("form button")), chromedp.WaitVisible(chromedp.CSS("#user")))
	for _, r := range replicas {
		g.Expect(laptop.authStatusAt(r)).To(Equal(http.StatusOK), "remembered, at %s", r)
	}

	// The Security page, after a step-up when the last answer is older
	// than 5 minutes.
	desk.openSecurity(securityURL, otp)
	g.Expect(desk.text("h1")).To(Equal("Security"))
	g.Expect(desk.text("ul.factors")).To(ContainSubstring("Authenticator app"))
	g.Expect(desk.text("ul.browsers li.this")).To(ContainSubstring("— this browser"))
	g.Expect(desk.text("ul.browsers")).To(ContainSubstring("Chrome on macOS"))
	csp := desk.headerOf("/security/apps/admin", "Content-Security-Policy")
	g.Expect(csp).To(MatchRegexp(`style-src 'nonce-[A-Za-z0-9_-]+'`))
	g.Expect(csp).To(ContainSubstring("form-action"))
	g.Expect(desk.eval(`getComputedStyle(document.querySelector("main")).borderTopLeftRadius === "14px"`)).To(BeTrue(),
		"the page's style, allowed by its nonce, applies")
	g.Expect(desk.eval(`[...document.forms].every(f => f.csrf && f.csrf.value.length > 20)`)).To(BeTrue(), "every form carries the CSRF token")
	desk.do("post a form without its token", chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/codes"] input[name=csrf]').remove()`),
		chromedp.Click(chromedp.Search(`//form[contains(@action, "/codes")]//button`)), chromedp.WaitVisible(chromedp.CSS("p.alert")))
	g.Expect(desk.text("h1")).To(Equal("Form expired or invalid"))
	desk.openSecurity(securityURL, otp)
	desk.screenshot("security-1280.png")

	// New recovery codes; an old one is refused, a new one accepted.
	desk.do("make new recovery codes", chromedp.Click(chromedp.Search(`//form[contains(@action, "/codes")]//button`)),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	newCodes := desk.texts("ol.codes li")
	g.Expect(newCodes).To(HaveLen(10))
	g.Expect(newCodes).NotTo(ContainElement(oldCodes[0]))
	c := env.NewClient(env.User, env.Password)
	recovery := c.Get(t, env.URL+"/challenge/apps/admin?provider=google-authenticator&method=recovery&rd="+url.QueryEscape(env.URL+"/reports"))
	form := recovery.FormWith(t, "code")
	g.Expect(c.Submit(t, form, map[string]string{"code": oldCodes[0]}).Status).To(Equal(http.StatusUnprocessableEntity), "an old code is dead")
	recovery = c.Get(t, env.URL+"/challenge/apps/admin?provider=google-authenticator&method=recovery&rd="+url.QueryEscape(env.URL+"/reports"))
	used := c.Submit(t, recovery.FormWith(t, "code"), map[string]string{"code": newCodes[0]})
	g.Expect(used.Status).To(Equal(http.StatusOK))
	g.Expect(used.URL.Path).To(Equal("/reports"), "a new code lets the user in")

	// A passkey, from the Security page, with a virtual authenticator.
	desk.call("enable the virtual authenticators", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{})
		return err
	})
	desk.addAuthenticator(webauthn.AuthenticatorTransportInternal)
	desk.openSecurity(securityURL, otp)
	desk.do("add a passkey", chromedp.Click(chromedp.Search(`//a[contains(., "Security key or passkey")]`)), chromedp.WaitVisible(chromedp.CSS("#key-name")))
	desk.do("register it",
		chromedp.SetValue(chromedp.CSS("#key-name"), "Laptop passkey"),
		chromedp.Click(chromedp.CSS("#webauthn-form button")),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	desk.do("back to the Security page", chromedp.Click(chromedp.CSS("form button")), chromedp.WaitVisible(chromedp.CSS("ul.browsers")))
	g.Expect(desk.location()).To(Equal(securityURL))
	g.Expect(desk.text("ul.keys")).To(ContainSubstring("Laptop passkey"))
	desk.screenshot("security-passkey-1280.png")
	desk.do("phone width", phoneViewport(), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("ul.browsers")))
	desk.screenshot("security-passkey-375.png")

	// Sign the other browser out: it is refused at /auth and sent back to
	// the challenge; this browser stays signed in.
	desk.do("sign the other browser out",
		chromedp.Click(chromedp.Search(`//ul[@class="browsers"]/li[contains(., "Chrome on macOS")]//button`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")))
	signedOut := time.Now()
	g.Expect(desk.text("p.notice")).To(ContainSubstring("Chrome on macOS is signed out"))
	for _, r := range replicas {
		g.Eventually(func() int { return laptop.authStatusAt(r) }, 10*time.Second, 20*time.Millisecond).Should(Equal(http.StatusUnauthorized),
			"the signed-out browser at %s", r)
	}
	t.Logf("one browser signed out: refused by both challenge servers %v after the page said so", time.Since(signedOut).Round(time.Millisecond))
	g.Expect(desk.text("ul.browsers")).NotTo(ContainSubstring("Chrome on macOS"))
	laptop.do("open the app", chromedp.Navigate(env.URL+"/reports"), chromedp.WaitVisible(chromedp.CSS("main")))
	g.Expect(laptop.location()).To(HavePrefix(env.URL + "/challenge/apps/admin"))
	for _, r := range replicas {
		g.Expect(desk.authStatusAt(r)).To(Equal(http.StatusOK), "this browser stays signed in, at %s", r)
	}
	desk.do("open the app", chromedp.Navigate(env.URL+"/reports"), chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(env.Log("webhook")).To(ContainSubstring(`"event":"browser_revocation"`))
}

// texts is the text of every element matching css.
func (b *keyBrowser) texts(css string) []string {
	b.t.Helper()
	var out []string
	b.call("read "+css, func(ctx context.Context) (err error) {
		out, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(`+jsString(css)+`)].map(e => e.textContent.trim())`))
		return err
	})
	return out
}

func (b *keyBrowser) eval(js string) bool {
	b.t.Helper()
	var v bool
	b.call("evaluate", func(ctx context.Context) (err error) {
		v, err = chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		return err
	})
	return v
}

// headerOf is a header of the challenge server's answer to a GET of path
// with the browser's cookies, as nginx passes it.
func (b *keyBrowser) headerOf(path, name string) string {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.env.WebhookURL+path, nil)
	b.g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("X-Auth-Request-Email", b.env.User)
	req.Header.Set("Cookie", b.cookieHeader())
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	b.g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	b.g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	return resp.Header.Get(name)
}

// openSecurity opens the Security page, answering the step-up with the
// authenticator app when the page asks for it.
func (b *keyBrowser) openSecurity(securityURL string, otp *harness.OTP) {
	b.t.Helper()
	b.do("open the Security page", chromedp.Navigate(securityURL), chromedp.WaitVisible(chromedp.CSS("main")))
	if b.location() == securityURL {
		return
	}
	if b.eval(`document.querySelector("#code") === null`) {
		b.do("choose the authenticator app", chromedp.Click(chromedp.Search(`//a[contains(., "Authenticator app")]`)), chromedp.WaitVisible(chromedp.CSS("#code")))
	}
	code, _ := otp.NextCode(b.t)
	b.do("step up", chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.CSS("ul.browsers")))
	b.g.Expect(b.location()).To(Equal(securityURL))
}

// authStatusAt is what the challenge server at base answers on /auth for
// the browser's cookies on the app, as nginx asks it.
func (b *keyBrowser) authStatusAt(base string) int {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/auth/apps/admin", nil)
	b.g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("X-Original-URL", b.env.URL+"/reports")
	req.Header.Set("X-Original-Method", http.MethodGet)
	req.Header.Set("X-Auth-Request-Email", b.env.User)
	req.Header.Set("Cookie", b.cookieHeader())
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	b.g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	return resp.StatusCode
}

// jsString quotes s for a JavaScript source.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
