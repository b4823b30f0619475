//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// ssoPolicyYAML is a TOTP provider and the MFAPolicy apps/sso: the first
// factor is oauth2-proxy in front of glewlwyd, the user and the claims
// come from glewlwyd's ID token, and a password login (amr "password", as
// glewlwyd names it) needs the second factor, except for the second user,
// whom a rule on the token's name claim lets through.
func ssoPolicyYAML(sso *harness.SSO, host string) string {
	s := sso.Settings
	return `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp, totp: { issuer: Example Corp } }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: sso, namespace: apps }
spec:
  hosts: [` + host + `]
  identity:
    forwardAuth:
      url: ` + s["SSO_AUTH_URL"] + `
      signinURL: ` + s["SSO_SIGNIN_URL"] + `
      token: { issuer: "` + s["SSO_ISSUER"] + `", audiences: [` + s["SSO_CLIENT_ID"] + `], jwksURL: "` + s["SSO_JWKS_URL"] + `", userClaim: email }
  rules:
  - name: second-user
    when: 'has(user.claims.name) && user.claims.name == "` + s["SSO_USER2"] + `"'
    action: Allow
  - name: password-logins
    when: 'has(user.claims.amr) && "password" in user.claims.amr'
    action: RequireMFA
    multifactor: { providers: [google-authenticator], rememberFor: 1h }
  default: Allow
`
}

// startEchoApp serves a page naming the user and the factor the front door
// passed on (X-MFA-User, X-MFA-Multifactor), and returns its port.
func startEchoApp(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>app</title><p id="user">%s</p><p id="multifactor">%s</p>`,
			html.EscapeString(r.Header.Get("X-Mfa-User")), html.EscapeString(r.Header.Get("X-Mfa-Multifactor")))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestSSOWalk is the whole walk of a person behind a real single sign-on,
// in headless Chromium: the app sends them to glewlwyd's login page
// (through oauth2-proxy), back, to TOTP enrolment, and to the app, which
// sees the IdP's user and the second factor; a second visit is
// remembered; when the oauth2-proxy session ends the next visit goes
// through the single sign-on again but not through the second factor; and
// with the first factor stopped, the browser gets a clear page, never
// the app.
func TestSSOWalk(t *testing.T) {
	g := NewWithT(t)
	port := harness.FreePort(t)
	host := "app.localhost"
	appURL := "http://" + host + ":" + strconv.Itoa(port)
	sso := harness.StartSSO(t, appURL)

	cfg := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(cfg, "sso.yaml"), []byte(ssoPolicyYAML(sso, host)), 0o600)).To(Succeed())
	wh := harness.StartWebhook(t, harness.WebhookOptions{Name: "webhook-sso", ConfigDir: cfg, DataDir: t.TempDir(), PublicURL: appURL})
	whPort, err := strconv.Atoi(wh.URL[len("http://127.0.0.1:"):])
	g.Expect(err).NotTo(HaveOccurred())
	sso.Nginx(t, port, host, startEchoApp(t), whPort, "apps/sso")

	browser := harness.NewBrowser(t)
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			dctx, dcancel := context.WithTimeout(browser, 10*time.Second)
			defer dcancel()
			loc, _ := chromedp.Run(dctx, chromedp.Location())
			page, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.documentElement.outerHTML.slice(0, 4000)`))
			t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, page)
		}
	}
	run := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	screenshot := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		t.Logf("screenshot %s", harness.SaveArtifact(t, name, png))
	}
	user, email := sso.Settings["SSO_USER"], sso.Settings["SSO_USER"]+"@example.com"

	// 1. The app sends the browser to the IdP's login page.
	start := time.Now()
	do("open the app", chromedp.Navigate(appURL+"/reports"), chromedp.WaitVisible(chromedp.CSS("#username")))
	screenshot("sso-idp-login.png")
	do("sign in at the IdP",
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), sso.Settings["SSO_PASSWORD"]),
		chromedp.Click(chromedp.CSS("#loginbut")),
		chromedp.WaitVisible(chromedp.CSS("button.btn-success")))
	screenshot("sso-idp-continue.png")
	// 2. Back through the front door to the second factor: enrolment.
	do("continue to the app", chromedp.Click(chromedp.CSS("button.btn-success")), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	screenshot("sso-enroll.png")
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	qr, err := chromedp.Run(ctx, chromedp.ScreenshotScale(chromedp.CSS("img.qr"), 2))
	cancel()
	g.Expect(err).NotTo(HaveOccurred())
	otp := harness.ParseOTPAuth(t, harness.DecodeQR(t, qr))
	g.Expect(otp.Account).To(Equal(email), "the user is the IdP's")
	code, _ := otp.NextCode(t)
	do("enter the first code",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`form button[type="submit"], form button`)),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	do("continue to the app", chromedp.Click(chromedp.CSS(`form button`)), chromedp.WaitVisible(chromedp.CSS("#user")))
	t.Logf("the first walk (IdP login, back, enrolment, app) took %s", time.Since(start).Round(time.Millisecond))
	g.Expect(run("app location", chromedp.Location())).To(Equal(appURL + "/reports"))
	g.Expect(run("user", chromedp.Text(chromedp.CSS("#user")))).To(Equal(email))
	g.Expect(run("multifactor", chromedp.Text(chromedp.CSS("#multifactor")))).To(Equal("google-authenticator"))
	screenshot("sso-app.png")

	// 3. A second visit: straight to the app.
	start = time.Now()
	do("visit again", chromedp.Navigate(appURL+"/other"), chromedp.WaitVisible(chromedp.CSS("#user")))
	t.Logf("a remembered visit took %s", time.Since(start).Round(time.Millisecond))
	g.Expect(run("app location", chromedp.Location())).To(Equal(appURL + "/other"))

	// 4. The oauth2-proxy session ends: the single sign-on again (the IdP
	// still knows the browser: its Continue page), then the app without
	// the second factor, remembered within rememberFor.
	if err := harness.ForgetSSOSession(browser, appURL); err != nil {
		t.Fatal(err)
	}
	do("visit after the session ended", chromedp.Navigate(appURL+"/again"), chromedp.WaitVisible(chromedp.CSS("button.btn-success")))
	g.Expect(run("idp location", chromedp.Location())).To(HavePrefix(sso.Settings["SSO_ISSUER"][:len("http://127.0.0.1:")]))
	do("continue at the IdP", chromedp.Click(chromedp.CSS("button.btn-success")), chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(run("app location", chromedp.Location())).To(Equal(appURL + "/again"))
	g.Expect(run("user", chromedp.Text(chromedp.CSS("#user")))).To(Equal(email))
	g.Expect(run("multifactor", chromedp.Text(chromedp.CSS("#multifactor")))).To(Equal("google-authenticator"))

	// 5. Another user of the IdP, whom a rule on a claim of the token lets
	// through without a second factor.
	if err := harness.ClearCookies(browser); err != nil {
		t.Fatal(err)
	}
	do("open the app as another user", chromedp.Navigate(appURL+"/reports"), chromedp.WaitVisible(chromedp.CSS("#username")))
	do("sign in at the IdP as the other user",
		chromedp.SendKeys(chromedp.CSS("#username"), sso.Settings["SSO_USER2"]),
		chromedp.SendKeys(chromedp.CSS("#password"), sso.Settings["SSO_PASSWORD2"]),
		chromedp.Click(chromedp.CSS("#loginbut")),
		chromedp.WaitVisible(chromedp.CSS("button.btn-success")))
	do("continue to the app", chromedp.Click(chromedp.CSS("button.btn-success")), chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(run("user", chromedp.Text(chromedp.CSS("#user")))).To(Equal(sso.Settings["SSO_USER2"] + "@example.com"))
	g.Expect(run("multifactor", chromedp.Text(chromedp.CSS("#multifactor")))).To(BeEmpty())

	// 6. The first factor stops: a clear page, never the app.
	sso.Stop(t)
	if err := harness.ForgetSSOSession(browser, appURL); err != nil {
		t.Fatal(err)
	}
	do("visit with the first factor down", chromedp.Navigate(appURL+"/reports"), chromedp.WaitVisible(chromedp.CSS("h1")))
	g.Expect(run("page", chromedp.Text(chromedp.CSS("body")))).To(ContainSubstring("single sign-on service cannot be reached"))
	ctx, cancel = context.WithTimeout(browser, 30*time.Second)
	hasApp, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#user") !== null`))
	cancel()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hasApp).To(BeFalse())
	screenshot("sso-down.png")
}
