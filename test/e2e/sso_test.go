//go:build e2e

package e2e

import (
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

	tab := harness.NewTab(t)
	browser := tab.Context()
	user, email := sso.Settings["SSO_USER"], sso.Settings["SSO_USER"]+"@example.com"

	// 1. The app sends the browser to the IdP's login page.
	start := time.Now()
	tab.Do("open the app", chromedp.Navigate(appURL+"/reports"), chromedp.WaitVisible(chromedp.CSS("#username")))
	tab.Screenshot("sso-idp-login.png")
	sso.SignIn(tab, user, sso.Settings["SSO_PASSWORD"])
	tab.Do("the IdP's Continue", chromedp.WaitVisible(chromedp.CSS("button.btn-success")))
	tab.Screenshot("sso-idp-continue.png")
	// 2. Back through the front door to the second factor: enrolment.
	sso.Continue(tab)
	tab.Do("the enrolment page", chromedp.WaitVisible(chromedp.CSS("img.qr")))
	tab.Screenshot("sso-enroll.png")
	otp := tab.EnrolTOTP()
	g.Expect(otp.Account).To(Equal(email), "the user is the IdP's")
	tab.Do("the app", chromedp.WaitVisible(chromedp.CSS("#user")))
	t.Logf("the first walk (IdP login, back, enrolment, app) took %s", time.Since(start).Round(time.Millisecond))
	g.Expect(tab.Location()).To(Equal(appURL + "/reports"))
	g.Expect(tab.Text("#user")).To(Equal(email))
	g.Expect(tab.Text("#multifactor")).To(Equal("google-authenticator"))
	tab.Screenshot("sso-app.png")

	// 3. A second visit: straight to the app.
	start = time.Now()
	tab.Do("visit again", chromedp.Navigate(appURL+"/other"), chromedp.WaitVisible(chromedp.CSS("#user")))
	t.Logf("a remembered visit took %s", time.Since(start).Round(time.Millisecond))
	g.Expect(tab.Location()).To(Equal(appURL + "/other"))

	// 4. The oauth2-proxy session ends: the single sign-on again (the IdP
	// still knows the browser: its Continue page), then the app without
	// the second factor, remembered within rememberFor.
	if err := harness.ForgetSSOSession(browser, appURL); err != nil {
		t.Fatal(err)
	}
	tab.Do("visit after the session ended", chromedp.Navigate(appURL+"/again"), chromedp.WaitVisible(chromedp.CSS("button.btn-success")))
	g.Expect(tab.Location()).To(HavePrefix(sso.Settings["SSO_ISSUER"][:len("http://127.0.0.1:")]))
	sso.Continue(tab)
	tab.Do("the app", chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(tab.Location()).To(Equal(appURL + "/again"))
	g.Expect(tab.Text("#user")).To(Equal(email))
	g.Expect(tab.Text("#multifactor")).To(Equal("google-authenticator"))

	// 5. Another user of the IdP, whom a rule on a claim of the token lets
	// through without a second factor.
	if err := harness.ClearCookies(browser); err != nil {
		t.Fatal(err)
	}
	tab.Do("open the app as another user", chromedp.Navigate(appURL+"/reports"))
	sso.SignIn(tab, sso.Settings["SSO_USER2"], sso.Settings["SSO_PASSWORD2"])
	sso.Continue(tab)
	tab.Do("the app", chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(tab.Text("#user")).To(Equal(sso.Settings["SSO_USER2"] + "@example.com"))
	g.Expect(tab.Text("#multifactor")).To(BeEmpty())

	// 6. The first factor stops: a clear page, never the app.
	sso.Stop(t)
	if err := harness.ForgetSSOSession(browser, appURL); err != nil {
		t.Fatal(err)
	}
	tab.Do("visit with the first factor down", chromedp.Navigate(appURL+"/reports"), chromedp.WaitVisible(chromedp.CSS("h1")))
	g.Expect(tab.Text("body")).To(ContainSubstring("single sign-on service cannot be reached"))
	g.Expect(tab.Has("#user")).To(BeFalse())
	tab.Screenshot("sso-down.png")
}
