//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// webAuthnObjectsYAML is a webauthn provider beside the TOTP one, and the
// policy apps/admin whose rule lets the user pick either. /admin asks for
// a second factor in every new browser session.
const webAuthnObjectsYAML = providerYAML + `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: webauthn, namespace: apps}
spec:
  type: webauthn
  webauthn:
    rpDisplayName: Example Corp
    userVerification: preferred
    residentKey: preferred
    timeout: 2m
---
apiVersion: mfa.operator.dev/v1alpha1
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
    multifactor: {providers: [webauthn, google-authenticator], ignoreCookie: true}
`

// TestBrowserWebAuthn registers and uses keys in a real Chromium through
// nginx, the keys being DevTools virtual authenticators (CTAP2, resident
// keys, user verification): a first key (internal transport) with its
// recovery codes, a sign-in, a second key (usb), a key whose counter was
// reset (refused and logged), a page whose RP ID was tampered with
// (refused by the browser), and one sign-in's answer replayed to a second
// challenge server sharing the store (refused). Screenshots at 375 and
// 1280 px go to artifacts/e2e/.
func TestBrowserWebAuthn(t *testing.T) {
	g := NewWithT(t)
	env := harness.Start(t, harness.Options{Policy: "apps/admin"})
	env.Apply(t, webAuthnObjectsYAML)
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfaprovider/webauthn", "mfapolicy/admin")
	replica := env.StartWebhookReplica(t, "webhook-replica")

	b := &keyBrowser{t: t, g: g, ctx: harness.NewBrowser(t), env: env}
	if err := harness.BasicLogin(b.ctx, env.User, env.Password); err != nil {
		t.Fatal(err)
	}
	b.call("enable the virtual authenticators", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{})
		return err
	})
	laptop := b.addAuthenticator(webauthn.AuthenticatorTransportInternal)

	// The rule offers both providers: the user picks the key.
	b.do("open the app", phoneViewport(), chromedp.Navigate(env.URL+"/admin"), chromedp.WaitVisible(chromedp.CSS("main")))
	g.Expect(b.text("body")).To(ContainSubstring("Security key or passkey"))
	g.Expect(b.text("body")).To(ContainSubstring("Authenticator app"))
	b.screenshot("webauthn-choose-375.png")
	b.do("pick the key", chromedp.Click(chromedp.Search(`//a[contains(., "Security key or passkey")]`)), chromedp.WaitVisible(chromedp.CSS("#key-name")))
	g.Expect(b.text("h1")).To(Equal("Register a security key or passkey"))
	b.screenshot("webauthn-register-375.png")
	b.do("desktop width", desktopViewport(), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#key-name")))
	b.screenshot("webauthn-register-1280.png")
	b.do("phone width", phoneViewport(), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#key-name")))

	// First key: registered, recovery codes shown once, then the app.
	b.do("register the first key",
		chromedp.SetValue(chromedp.CSS("#key-name"), "Laptop"),
		chromedp.Click(chromedp.CSS("#webauthn-form button")),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	g.Expect(b.text("p.notice")).To(ContainSubstring("Laptop"))
	g.Expect(strings.Count(b.text("ol.codes"), "-")).To(BeNumerically(">=", 10))
	b.screenshot("webauthn-recovery-codes-375.png")
	b.do("continue", chromedp.Click(chromedp.CSS("form button")), chromedp.WaitVisible(chromedp.CSS("#multifactor")))
	g.Expect(b.text("#multifactor")).To(Equal("webauthn"))
	g.Expect(b.amr()).To(ConsistOf("mfa", "hwk"), "a key that cannot be synced is hardware-bound")

	// Sign-in in a new browser session.
	b.newSession()
	b.signIn("sign in with the first key")
	g.Expect(b.text("#multifactor")).To(Equal("webauthn"))
	b.screenshotSignIn()

	// A second key, right after that sign-in; the first key leaves the
	// browser meanwhile so that the new one answers.
	saved := b.credentials(laptop)
	g.Expect(saved).To(HaveLen(1))
	b.removeAuthenticator(laptop)
	usb := b.addAuthenticator(webauthn.AuthenticatorTransportUsb)
	b.do("open the add-key page", chromedp.Navigate(env.URL+"/challenge/apps/admin?provider=webauthn&method=add-key&rd="+env.URL+"/admin"),
		chromedp.WaitVisible(chromedp.CSS("#key-name")))
	g.Expect(b.text("h1")).To(Equal("Register another key"))
	b.do("register the second key",
		chromedp.SetValue(chromedp.CSS("#key-name"), "YubiKey"),
		chromedp.Click(chromedp.CSS("#webauthn-form button")),
		chromedp.WaitVisible(chromedp.CSS("#multifactor")))
	b.newSession()
	b.signIn("sign in with the second key")
	g.Expect(b.text("#multifactor")).To(Equal("webauthn"))

	// The same answer, replayed to the other challenge server: refused.
	b.newSession()
	body := b.captureAnswer("answer with the second key")
	cookies := b.cookieHeader()
	b.do("let the browser send it", chromedp.Evaluate[chromedp.Void](`window.__send()`), chromedp.WaitVisible(chromedp.CSS("#multifactor")))
	status, page := b.post(replica.URL+"/challenge/apps/admin/webauthn/login", body, cookies)
	g.Expect(status).To(Equal(422), page)
	g.Expect(page).To(ContainSubstring("already used"))

	// The first key comes back with its counter reset, as a clone would.
	b.removeAuthenticator(usb)
	clone := b.addAuthenticator(webauthn.AuthenticatorTransportInternal)
	b.addCredential(clone, saved[0], 0)
	b.newSession()
	b.openSignIn()
	b.do("answer with the clone", chromedp.Click(chromedp.CSS("#webauthn-form button")),
		chromedp.WaitVisible(chromedp.Search(`//p[contains(@class,"alert") and contains(., "looks copied")]`)))
	b.screenshot("webauthn-counter-refused-375.png")
	g.Expect(env.Log("webhook")).To(ContainSubstring(`"event":"webauthn_counter_regressed"`))

	// A page whose RP ID was changed to another site: the browser refuses.
	b.openSignIn()
	b.do("tamper with the RP ID", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.getElementById("webauthn-form");
		const o = JSON.parse(f.dataset.options);
		o.rpId = "example.com";
		f.dataset.options = JSON.stringify(o);
	})()`))
	b.do("answer for another site", chromedp.Click(chromedp.CSS("#webauthn-form button")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="webauthn-status" and contains(., "browser refused")]`)))
	g.Expect(b.location()).To(HavePrefix(env.URL + "/challenge/apps/admin"))
}
