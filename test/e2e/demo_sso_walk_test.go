//go:build e2e

package e2e

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// TestDemoSingleSignOnWalk runs hack/demo.sh up as `make demo` does, with
// no first factor chosen (the default: the single sign-on), and walks it
// in headless Chromium as its printout tells a person to: open the app,
// sign in at glewlwyd with the printed user and password, come back,
// enrol the authenticator app, and reach the sample app, which shows the
// IdP's user, the second factor and a verified assertion.
func TestDemoSingleSignOnWalk(t *testing.T) {
	g := NewWithT(t)
	demo := harness.RunDemo(t, harness.Options{Policy: "default/admin", Env: map[string]string{
		// The tests' default (basic) undone: make demo sets neither.
		"DEMO_FIRST_FACTOR":   "",
		"FIRST_FACTOR":        "",
		"DEMO_SSO_IDP_PORT":   strconv.Itoa(harness.FreePort(t)),
		"DEMO_SSO_PROXY_PORT": strconv.Itoa(harness.FreePort(t)),
	}})
	g.Expect(demo.Setting("DEMO_FIRST_FACTOR")).To(Equal("sso"))
	out := demo.Output()
	open := regexp.MustCompile(`(?m)^  Open +(\S+)$`).FindStringSubmatch(out)
	login := regexp.MustCompile(`through oauth2-proxy; user (\S+)  password (\S+)`).FindStringSubmatch(out)
	g.Expect(open).NotTo(BeNil(), out)
	g.Expect(login).NotTo(BeNil(), out)
	appURL, user, password := open[1], login[1], login[2]
	g.Expect(appURL).To(Equal(demo.URL + "/"))
	sso := harness.RunningSSO(t, filepath.Join(demo.State, "sso"))

	tab := harness.NewTab(t)
	tab.Do("open the app", chromedp.Navigate(appURL))
	idp, err := url.Parse(sso.Settings["SSO_ISSUER"])
	g.Expect(err).NotTo(HaveOccurred())
	tab.Do("glewlwyd's login page", chromedp.WaitVisible(chromedp.CSS("#username")))
	g.Expect(tab.Location()).To(HavePrefix(idp.Scheme + "://" + idp.Host + "/"))
	tab.Screenshot("demo-sso-idp-login.png")
	sso.SignIn(tab, user, password)
	sso.Continue(tab)
	tab.Do("the enrolment page", chromedp.WaitVisible(chromedp.CSS("img.qr")))
	loc, err := url.Parse(tab.Location())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Path).To(Equal("/challenge/default/admin"))
	tab.Screenshot("demo-sso-enroll.png")
	otp := tab.EnrolTOTP()
	g.Expect(otp.Account).To(Equal(user + "@example.com"))
	tab.Do("the sample app", chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(tab.Location()).To(Equal(appURL))
	g.Expect(tab.Text("#user")).To(Equal(user + "@example.com"))
	g.Expect(tab.Text("#multifactor")).To(Equal("google-authenticator"))
	g.Expect(tab.Text("#assertion")).To(Equal("present, signature verified with the published keys"))
	tab.Screenshot("demo-sso-app.png")

	// The token the front door reads: glewlwyd's, a password login.
	g.Expect(sso.IDToken(t, tab, demo.URL)["amr"]).To(Equal([]any{"password"}))
}
