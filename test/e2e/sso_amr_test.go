//go:build e2e

package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/examples"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// readmeSSOPolicy is the MFAPolicy apps/sso of README.md's single sign-on
// section, as a reader would copy it: its rules and default unchanged,
// its hosts and identity.forwardAuth pointed at the test's front door,
// oauth2-proxy and glewlwyd.
func readmeSSOPolicy(t *testing.T, sso *harness.SSO, host string) []byte {
	t.Helper()
	blocks, err := examples.YAML(filepath.Join(harness.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		for _, doc := range b.Documents {
			var obj map[string]any
			if err := json.Unmarshal(doc, &obj); err != nil {
				t.Fatalf("README.md:%d: %v", b.Line, err)
			}
			meta, _ := obj["metadata"].(map[string]any)
			spec, _ := obj["spec"].(map[string]any)
			identity, _ := spec["identity"].(map[string]any)
			if obj["kind"] != "MFAPolicy" || meta["namespace"] != "apps" || meta["name"] != "sso" || identity["forwardAuth"] == nil {
				continue
			}
			s := sso.Settings
			spec["hosts"] = []string{host}
			spec["identity"] = map[string]any{"forwardAuth": map[string]any{
				"url": s["SSO_AUTH_URL"], "signinURL": s["SSO_SIGNIN_URL"],
				"token": map[string]any{"issuer": s["SSO_ISSUER"], "audiences": []string{s["SSO_CLIENT_ID"]},
					"jwksURL": s["SSO_JWKS_URL"], "userClaim": "email"},
			}}
			t.Logf("README.md:%d: the MFAPolicy apps/sso, its rules as written", b.Line)
			out, err := json.Marshal(obj) // JSON is YAML
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	t.Fatal("README.md has no MFAPolicy apps/sso with identity.forwardAuth")
	return nil
}

const ssoProviderYAML = `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp, totp: { issuer: Example Corp } }
`

// TestSSOLoginTypeRule runs the README's "how the user logged in" rules on
// real tokens, in headless Chromium: glewlwyd's ID token for a password
// login says "amr": ["password"], and the front door asks for the second
// factor; for a user whose IdP login asks for a code of an authenticator
// app too (glewlwyd's OTP scheme), it says ["password", "otp"], and the
// app opens without the challenge.
func TestSSOLoginTypeRule(t *testing.T) {
	g := NewWithT(t)
	port := harness.FreePort(t)
	host := "app.localhost"
	appURL := "http://" + host + ":" + strconv.Itoa(port)
	sso := harness.StartSSO(t, appURL)
	s := sso.Settings

	cfg := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(cfg, "provider.yaml"), []byte(ssoProviderYAML), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(cfg, "sso.yaml"), readmeSSOPolicy(t, sso, host), 0o600)).To(Succeed())
	// At debug level its log names the rule of every decision.
	wh := harness.StartWebhook(t, harness.WebhookOptions{Name: "webhook-sso-amr", ConfigDir: cfg, DataDir: t.TempDir(), PublicURL: appURL,
		Flags: []string{"--log-level=debug"}})
	whPort, err := strconv.Atoi(wh.URL[len("http://127.0.0.1:"):])
	g.Expect(err).NotTo(HaveOccurred())
	sso.Nginx(t, port, host, startEchoApp(t), whPort, "apps/sso")
	tab := harness.NewTab(t)

	// 1. A password login: rule password-logins, the second factor.
	tab.Do("open the app", chromedp.Navigate(appURL+"/reports"))
	sso.SignIn(tab, s["SSO_USER"], s["SSO_PASSWORD"])
	sso.Continue(tab)
	tab.Do("the challenge page", chromedp.WaitVisible(chromedp.CSS("img.qr")))
	loc, err := url.Parse(tab.Location())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Path).To(Equal("/challenge/apps/sso"))
	claims := sso.IDToken(t, tab, appURL)
	t.Logf("a password login: amr %v", claims["amr"])
	g.Expect(claims["amr"]).To(Equal([]any{"password"}))
	g.Expect(claims["email"]).To(Equal(s["SSO_USER"] + "@example.com"))
	tab.Screenshot("sso-amr-password.png")
	otp := tab.EnrolTOTP()
	g.Expect(otp.Account).To(Equal(s["SSO_USER"] + "@example.com"))
	tab.Do("the app", chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(tab.Location()).To(Equal(appURL + "/reports"))
	g.Expect(tab.Text("#user")).To(Equal(s["SSO_USER"] + "@example.com"))
	g.Expect(tab.Text("#multifactor")).To(Equal("google-authenticator"))

	// 2. Another browser, a login with the password and a code at the
	// IdP: rule strong-login lets it through, no challenge.
	if err := harness.ClearCookies(tab.Context()); err != nil {
		t.Fatal(err)
	}
	tab.Do("open the app", chromedp.Navigate(appURL+"/reports"))
	sso.SignIn(tab, s["SSO_USER3"], s["SSO_PASSWORD3"])
	tab.Do("the IdP asks for a code", chromedp.WaitVisible(chromedp.CSS("#otpSchemeForm #value")))
	tab.Screenshot("sso-amr-idp-code.png")
	idpCode := sso.TOTP()
	code, _ := idpCode.NextCode(t)
	sso.EnterCode(tab, code)
	start := time.Now()
	sso.Continue(tab)
	tab.Do("the app", chromedp.WaitVisible(chromedp.CSS("#user")))
	t.Logf("from the IdP's Continue to the app: %s", time.Since(start).Round(time.Millisecond))
	g.Expect(tab.Location()).To(Equal(appURL + "/reports"))
	g.Expect(tab.Text("#user")).To(Equal(s["SSO_USER3"] + "@example.com"))
	g.Expect(tab.Text("#multifactor")).To(BeEmpty(), "no second factor was asked by the front door")
	claims = sso.IDToken(t, tab, appURL)
	t.Logf("a login with a code at the IdP: amr %v", claims["amr"])
	g.Expect(claims["amr"]).To(Equal([]any{"password", "otp"}))
	tab.Screenshot("sso-amr-strong.png")

	// The rules that decided, as the challenge server logged them. Her
	// token says "password" too: only strong-login, before
	// password-logins, lets her through.
	g.Expect(decisions(t, wh.Log, s["SSO_USER"]+"@example.com")).To(ContainElement("challenge password-logins"))
	strong := decisions(t, wh.Log, s["SSO_USER3"]+"@example.com")
	g.Expect(strong).To(ContainElement("allow strong-login"))
	g.Expect(strong).To(HaveEach("allow strong-login"))
}

// decisions are the "decision rule" pairs of the challenge server's
// debug log for a user, in order.
func decisions(t *testing.T, log, user string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var e struct{ Msg, Decision, Rule, User string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "auth decision" && e.User == user {
			out = append(out, e.Decision+" "+e.Rule)
		}
	}
	return out
}
