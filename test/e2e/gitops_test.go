//go:build e2e

package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

const providerYAML = `apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: google-authenticator, namespace: apps}
spec:
  type: totp
  totp: {issuer: Example Corp}
`

// policyYAML is the MFAPolicy apps/admin: a second factor for every new
// browser session under /admin (ignoreCookie), once a month per browser
// elsewhere; first is an extra rule placed before them.
func policyYAML(first string) string {
	return `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: admin, namespace: apps}
spec:
  hosts: [app.localhost]
  identity:
    header: {user: X-Auth-Request-Email}
  rules:
` + first + `  - name: admin-pages
    when: request.path.startsWith("/admin")
    action: RequireMFA
    multifactor: {providers: [google-authenticator], ignoreCookie: true}
  - name: everyone
    when: "true"
    action: RequireMFA
    multifactor: {providers: [google-authenticator], rememberFor: 720h}
`
}

const denyReportsRule = `  - name: deny-reports
    when: request.path.startsWith("/reports")
    action: Deny
`

// invalidRule does not type-check: a rule's `when` must be a bool.
const invalidRule = `  - name: broken
    when: request.path.size()
    action: Deny
`

// whoami is what the sample app saw.
type whoami struct {
	User         string `json:"user"`
	Multifactor  string `json:"multifactor"`
	HasAssertion bool   `json:"hasAssertion"`
}

// TestGitOps drives the product the way an operator and users meet it:
// policies applied with kubectl, users going through nginx to the
// challenge pages and back, policy changes taking effect live.
func TestGitOps(t *testing.T) {
	env := harness.Start(t, harness.Options{Policy: "apps/admin"})
	signin := env.URL + "/challenge/apps/admin"

	var (
		otp      *harness.OTP
		recovery []string
		ana      *harness.Client // the browser that enrolled
		anaTwo   *harness.Client // a second browser of ana's, verified with a code
	)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // every step builds on the previous ones
		}
	}

	step("kubectl apply makes the policy Ready with its URLs", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, providerYAML)
		env.Apply(t, policyYAML(""))
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
		status := env.MustKubectl(t, "", "-n", "apps", "get", "mfapolicy", "admin", "-o", "jsonpath={.status.signinURL} {.status.ruleCount}")
		g.Expect(status).To(Equal(signin + " 2"))
	})

	step("a request through nginx is sent to the challenge", func(t *testing.T) {
		g := NewWithT(t)
		ana = env.NewClient(env.User, env.Password)
		p := ana.GetNoRedirect(t, "/reports?q=1")
		g.Expect(p.Status).To(Equal(http.StatusFound))
		loc, err := url.Parse(p.Location())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(signin))
		g.Expect(loc.Query().Get("rd")).To(Equal(env.URL + "/reports?q=1"))
	})

	step("enrolment: QR code read by zbarimg, a code from oathtool, recovery codes, back to the app", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.Get(t, "/reports?q=1")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		png := ana.Image(t, p, p.Find("img", "qr", "src"))
		otp = harness.ParseOTPAuth(t, harness.DecodeQR(t, png))
		g.Expect(otp.Issuer).To(Equal("Example Corp"))
		g.Expect(otp.Account).To(Equal(env.User))
		g.Expect([]any{otp.Algorithm, otp.Digits, otp.Period}).To(Equal([]any{"SHA1", 6, 30 * time.Second}))

		code, _ := otp.NextCode(t)
		p = ana.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		recovery = p.Texts("ol", "codes", "li")
		g.Expect(len(recovery)).To(BeNumerically(">=", 5), p.Body)

		p = ana.Submit(t, p.FormWith(t, "csrf"), nil)
		g.Expect(p.Status).To(Equal(http.StatusOK))
		g.Expect(p.URL.String()).To(Equal(env.URL + "/reports?q=1"))
		g.Expect(p.Text("dd", "")).To(Equal(env.User))
	})

	step("the app answers with the user and the second factor", func(t *testing.T) {
		g := NewWithT(t)
		var who whoami
		p := ana.GetJSON(t, "/reports", &who)
		g.Expect(p.Status).To(Equal(http.StatusOK))
		g.Expect(who).To(Equal(whoami{User: env.User, Multifactor: "google-authenticator", HasAssertion: true}))
	})

	step("the app's assertion verifies with the published keys and names the user and the factor", func(t *testing.T) {
		g := NewWithT(t)
		var app struct {
			Assertion         string `json:"assertion"`
			AssertionVerified bool   `json:"assertionVerified"`
			AssertionError    string `json:"assertionError"`
		}
		g.Expect(ana.GetJSON(t, "/reports", &app).Status).To(Equal(http.StatusOK))
		g.Expect(app.AssertionVerified).To(BeTrue(), "the sample app's check: %s", app.AssertionError)
		claims := env.VerifyAssertion(t, app.Assertion)
		g.Expect(claims["sub"]).To(Equal(env.User))
		aud, err := claims.GetAudience()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect([]string(aud)).To(ContainElement(HavePrefix("app.localhost")))
		g.Expect(claims["multifactor"]).To(ConsistOf("google-authenticator"))
		g.Expect(claims["amr"]).To(ContainElement("mfa"))
	})

	step("a second request needs no challenge", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(ana.GetNoRedirect(t, "/reports/2").Status).To(Equal(http.StatusOK))
		g.Expect(ana.GetNoRedirect(t, "/admin").Status).To(Equal(http.StatusOK))
	})

	step("a reused code is refused", func(t *testing.T) {
		g := NewWithT(t)
		anaTwo = env.NewClient(env.User, env.Password)
		p := anaTwo.Get(t, "/reports")
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		g.Expect(p.Has("img", "qr")).To(BeFalse(), "an enrolled user is asked for a code, not enrolled again")
		p = anaTwo.Submit(t, p.FormWith(t, "code"), map[string]string{"code": otp.CodeAt(t, otp.Last)})
		g.Expect(p.URL.Path).To(HavePrefix("/challenge/apps/admin"))
		g.Expect(p.Has("p", "alert")).To(BeTrue(), p.Body)
		g.Expect(anaTwo.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound))

		code, _ := otp.NextCode(t)
		p = anaTwo.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.URL.String()).To(Equal(env.URL + "/reports"))
		g.Expect(anaTwo.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusOK))
	})

	step("a recovery code works once", func(t *testing.T) {
		g := NewWithT(t)
		use := func(c *harness.Client) *harness.Page {
			p := c.Get(t, "/reports")
			g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
			link := p.Link("recovery code")
			g.Expect(link).NotTo(BeEmpty(), p.Body)
			p = c.Get(t, link)
			return c.Submit(t, p.FormWith(t, "code"), map[string]string{"code": recovery[0]})
		}
		first := env.NewClient(env.User, env.Password)
		p := use(first)
		g.Expect(p.URL.String()).To(Equal(env.URL+"/reports"), p.Body)
		g.Expect(first.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusOK))

		second := env.NewClient(env.User, env.Password)
		p = use(second)
		g.Expect(p.URL.Path).To(HavePrefix("/challenge/apps/admin"))
		g.Expect(p.Has("p", "alert")).To(BeTrue(), p.Body)
		g.Expect(second.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound))
	})

	step("the remembered cookie is honoured after the session cookie is dropped, not where the rule says ignoreCookie", func(t *testing.T) {
		g := NewWithT(t)
		_, remembered := anaTwo.Jar.Get("mfa_remember")
		g.Expect(remembered).To(BeTrue(), "cookies: %+v", anaTwo.Jar.All())
		anaTwo.Jar.DropSession()
		g.Expect(anaTwo.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusOK))
		p := anaTwo.GetNoRedirect(t, "/admin")
		g.Expect(p.Status).To(Equal(http.StatusFound))
		g.Expect(p.Location()).To(HavePrefix(signin + "?"))
	})

	step("a forged cookie or another user's cookie gets 401", func(t *testing.T) {
		g := NewWithT(t)
		forged := env.NewClient(env.User, env.Password)
		bob := env.NewClient(env.User2, env.Password2)
		for _, c := range ana.Jar.All() {
			bob.Jar.Put(c)
			f := c
			f.Value = strings.Repeat("A", len(c.Value))
			forged.Jar.Put(f)
		}
		for name, c := range map[string]*harness.Client{"forged": forged, "other user's": bob} {
			p := c.GetNoRedirect(t, "/reports")
			g.Expect(p.Status).To(Equal(http.StatusFound), name)
			g.Expect(p.Location()).To(HavePrefix(signin+"?"), name)
			g.Expect(authStatus(t, env, c, "/reports")).To(Equal(http.StatusUnauthorized), name)
		}
	})

	step("a Deny rule applied with kubectl answers 403 within seconds, nothing restarted", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, policyYAML(denyReportsRule))
		g.Eventually(func() int { return ana.GetNoRedirect(t, "/reports").Status }, 15*time.Second, 200*time.Millisecond).
			Should(Equal(http.StatusForbidden))
		g.Expect(ana.GetNoRedirect(t, "/other").Status).To(Equal(http.StatusOK))
	})

	step("an invalid CEL expression shows Ready=False and the last good policy stays enforced", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, policyYAML(denyReportsRule+invalidRule))
		g.Eventually(func() string {
			out, _ := env.Kubectl("", "-n", "apps", "get", "mfapolicy", "admin", "-o",
				`jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}`)
			return out
		}, 15*time.Second, 200*time.Millisecond).Should(Equal("False/InvalidExpression"))
		msg := env.MustKubectl(t, "", "-n", "apps", "get", "mfapolicy", "admin", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`)
		g.Expect(msg).To(ContainSubstring("broken"))
		g.Consistently(func() []int {
			return []int{ana.GetNoRedirect(t, "/reports").Status, ana.GetNoRedirect(t, "/other").Status}
		}, 2*time.Second, 250*time.Millisecond).Should(Equal([]int{http.StatusForbidden, http.StatusOK}))
	})

	step("deleting the policy makes its auth URL fail closed", func(t *testing.T) {
		g := NewWithT(t)
		env.MustKubectl(t, "", "-n", "apps", "delete", "mfapolicy", "admin", "--wait=true")
		g.Eventually(func() int { return authStatus(t, env, ana, "/other") }, 15*time.Second, 200*time.Millisecond).
			Should(BeElementOf(http.StatusUnauthorized, http.StatusForbidden))
		g.Expect(ana.GetNoRedirect(t, "/other").Status).NotTo(Equal(http.StatusOK))
		g.Expect(ana.GetNoRedirect(t, "/admin").Status).NotTo(Equal(http.StatusOK))
	})

	step("restarting the challenge server loses no enrolment and no replay guard", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, policyYAML(""))
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
		env.Restart(harness.Webhook)

		previous := otp.CodeAt(t, otp.Last)
		c := env.NewClient(env.User, env.Password)
		p := c.Get(t, "/reports")
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		g.Expect(p.Has("img", "qr")).To(BeFalse(), "the enrolment survived the restart")
		p = c.Submit(t, p.FormWith(t, "code"), map[string]string{"code": previous})
		g.Expect(p.Has("p", "alert")).To(BeTrue(), "the previous step is refused as a replay: %s", p.Body)

		code, _ := otp.NextCode(t)
		p = c.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.URL.String()).To(Equal(env.URL + "/reports"))
		var who whoami
		g.Expect(c.GetJSON(t, "/reports", &who).Status).To(Equal(http.StatusOK))
		g.Expect(who.User).To(Equal(env.User))
	})
}

// authStatus asks the challenge server's auth URL directly, as nginx does,
// about path for client c (its cookies and first-factor user).
func authStatus(t *testing.T, env *harness.Env, c *harness.Client, path string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.WebhookURL+"/auth/apps/admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Original-URL", env.URL+path)
	req.Header.Set("X-Original-Method", http.MethodGet)
	req.Header.Set("X-Auth-Request-Email", c.User)
	u, _ := url.Parse(env.URL + path)
	for _, ck := range c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}
