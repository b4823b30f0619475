//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// duoPhone is the users' phone as Duo's preauth reports it.
var duoPhone = duotest.Device{
	ID:           "DPFZRS9FB0D46QFTM891",
	Type:         "phone",
	Number:       "XXX-XXX-0100",
	DisplayName:  "iOS (XXX-XXX-0100)",
	Capabilities: []string{"auto", "push", "sms", "phone", "mobile_otp"},
}

// duoYAML is the Duo configuration of the test: the credentials and the
// Duo test server's CA in a Secret, a provider failing closed (duo) and
// one failing open (duo-open), a provider whose secret key is wrong, and
// the policy apps/admin asking for duo-open under /open and duo elsewhere.
func duoYAML(s *duotest.Server) string {
	provider := func(name, secret, extra string) string {
		return `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: ` + name + `, namespace: apps}
spec:
  type: duo
  duo:
    apiHost: "` + s.APIHost() + `"
    integrationKeyRef: {name: ` + secret + `, key: ikey}
    secretKeyRef: {name: ` + secret + `, key: skey}
    caBundleRef: {name: ` + secret + `, key: ca.crt}
` + extra
	}
	secret := func(name, skey string) string {
		return `---
apiVersion: v1
kind: Secret
metadata: {name: ` + name + `, namespace: apps}
stringData:
  ikey: ` + strconv.Quote(s.IKey()) + `
  skey: ` + strconv.Quote(skey) + `
  ca.crt: ` + strconv.Quote(s.CAPEM()) + `
`
	}
	return `apiVersion: v1
kind: Namespace
metadata: {name: apps}
` + secret("duo-credentials", s.SKey()) +
		secret("duo-wrong-credentials", strings.Repeat("x", len(s.SKey()))) +
		provider("duo", "duo-credentials", "") +
		provider("duo-open", "duo-credentials", "    failMode: open\n") +
		provider("duo-wrong", "duo-wrong-credentials", "") + `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: admin, namespace: apps}
spec:
  hosts: [app.localhost]
  identity:
    header: {user: X-Auth-Request-Email}
  rules:
  - name: open
    when: request.path.startsWith("/open")
    action: RequireMFA
    multifactor: {providers: [duo-open]}
  - name: everyone
    when: "true"
    action: RequireMFA
    multifactor: {providers: [duo]}
`
}

// TestDuoEndToEnd: Duo as the second factor behind real nginx, with the
// Duo Auth API test server in this process on 127.0.0.1, trusted through
// the providers' caBundleRef; the controller checks the credentials with
// Duo before the providers are Ready.
func TestDuoEndToEnd(t *testing.T) {
	env := harness.Start(t, harness.Options{Policy: "apps/admin"})
	// The first-factor users are the Duo usernames.
	ds := duotest.NewServer(t,
		duotest.WithUser(duotest.User{Username: env.User, Devices: []duotest.Device{duoPhone},
			Push: duotest.PushApprove, PendingPolls: 2, Passcode: duotest.ValidPasscode}),
		duotest.WithUser(duotest.User{Username: env.User2, Devices: []duotest.Device{duoPhone},
			Push: duotest.PushDeny, PendingPolls: 1}),
	)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // every step builds on the previous ones
		}
	}
	readyOf := func(provider string) string {
		out, _ := env.Kubectl("", "-n", "apps", "get", "mfaprovider", provider, "-o",
			`jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}/{.status.conditions[?(@.type=="Stalled")].status}`)
		return out
	}
	// push asks for the app as c, sends a push from the Duo page and
	// returns the waiting page.
	push := func(t *testing.T, c *harness.Client, path string) *harness.Page {
		t.Helper()
		g := NewWithT(t)
		p := c.Get(t, path)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		g.Expect(p.Text("h1", "")).To(Equal("Verify with Duo"))
		p = c.Submit(t, p.FormWith(t, "device"), nil)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.Text("h1", "")).To(Equal("Approve the push"))
		return p
	}

	step("kubectl apply: Duo accepts the credentials, the providers and the policy are Ready", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, duoYAML(ds))
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s",
			"mfaprovider/duo", "mfaprovider/duo-open", "mfapolicy/admin")
		g.Expect(env.MustKubectl(t, "", "-n", "apps", "get", "mfaprovider", "duo", "-o",
			`jsonpath={.status.conditions[?(@.type=="Ready")].message}`)).To(Equal("Duo accepted the credentials"))
		checks := ds.RequestsTo("/auth/v2/check")
		g.Expect(checks).NotTo(BeEmpty(), "the controller asked Duo")
		g.Expect(checks[0].IKey).To(Equal(ds.IKey()))
	})

	step("wrong credentials surface in the MFAProvider's status with Duo's message", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func() string { return readyOf("duo-wrong") }, 60*time.Second, 200*time.Millisecond).
			Should(Equal("False/DuoCheckFailed/True"))
		msg := env.MustKubectl(t, "", "-n", "apps", "get", "mfaprovider", "duo-wrong", "-o",
			`jsonpath={.status.conditions[?(@.type=="Ready")].message}`)
		g.Expect(msg).To(ContainSubstring("40103 Invalid signature in request credentials"))
		g.Expect(msg).To(ContainSubstring("Duo at " + ds.APIHost()))
		g.Expect(msg).NotTo(ContainSubstring(ds.SKey()))
		wide := env.MustKubectl(t, "", "-n", "apps", "get", "mfaproviders", "-o", "wide")
		t.Logf("kubectl get mfaproviders -o wide:\n%s", wide)
		g.Expect(wide).To(MatchRegexp(`duo-wrong\s+duo\s+False\s+DuoCheckFailed`))
	})

	step("a push approved: the script's status endpoint, then the app with X-MFA-Multifactor duo", func(t *testing.T) {
		g := NewWithT(t)
		ana := env.NewClient(env.User, env.Password)
		p := push(t, ana, "/reports?q=1")
		g.Expect(p.Body).To(ContainSubstring("iOS (XXX-XXX-0100)"))
		g.Expect(p.Header.Get("Content-Security-Policy")).To(ContainSubstring("connect-src 'self'"))
		check := p.FormWith(t, "tx")

		// What the page's script does: poll the status endpoint.
		status := func() string {
			s := ana.PostForm(t, strings.TrimSuffix(check.Action, "/check")+"/status", check.Fields)
			g.Expect(s.Status).To(Equal(http.StatusOK), s.Body)
			var a struct{ State string }
			g.Expect(json.Unmarshal([]byte(s.Body), &a)).To(Succeed(), s.Body)
			return a.State
		}
		g.Expect(status()).To(Equal("waiting"))
		g.Expect(status()).To(Equal("waiting"))
		g.Expect(status()).To(Equal("done"))

		p = ana.Submit(t, check, nil)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(Equal(env.URL + "/reports?q=1"))
		var who whoami
		g.Expect(ana.GetJSON(t, "/reports", &who).Status).To(Equal(http.StatusOK))
		g.Expect(who).To(Equal(whoami{User: env.User, Multifactor: "duo", HasAssertion: true}))

		pushes := ds.RequestsTo("/auth/v2/auth")
		g.Expect(pushes).To(HaveLen(1))
		g.Expect(pushes[0].Params.Get("pushinfo")).To(Equal("app=app.localhost%3A" + strings.TrimPrefix(env.Host, "app.localhost:") + "&policy=apps%2Fadmin"))
		g.Expect(pushes[0].Params.Get("ipaddr")).To(Equal("127.0.0.1"), "the client's address as nginx reports it")
	})

	step("a push denied: a clear page, a way to retry, and no way in", func(t *testing.T) {
		g := NewWithT(t)
		bob := env.NewClient(env.User2, env.Password2)
		p := push(t, bob, "/reports")
		// Without a script, "Continue" before the answer shows the waiting
		// page again.
		p = bob.Submit(t, p.FormWith(t, "tx"), nil)
		g.Expect(p.Text("h1", "")).To(Equal("Approve the push"))
		g.Expect(p.Text("p", "alert")).To(ContainSubstring("Duo has no answer from your device yet"))
		p = bob.Submit(t, p.FormWith(t, "tx"), nil)
		g.Expect(p.Status).To(Equal(http.StatusForbidden), p.Body)
		g.Expect(p.Text("h1", "")).To(Equal("Request denied"))
		g.Expect(p.Body).To(ContainSubstring("Duo says: Login request denied."))
		g.Expect(p.Link("Try again")).To(HavePrefix(env.URL + "/challenge/apps/admin?"))
		g.Expect(bob.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound))
	})

	step("a passcode", func(t *testing.T) {
		g := NewWithT(t)
		ana := env.NewClient(env.User, env.Password)
		p := ana.Get(t, "/passcode")
		g.Expect(p.Text("h1", "")).To(Equal("Verify with Duo"))
		p = ana.Submit(t, p.FormWith(t, "passcode"), map[string]string{"passcode": "000000"})
		g.Expect(p.Status).To(Equal(http.StatusUnprocessableEntity))
		g.Expect(p.Text("p", "alert")).To(ContainSubstring("Incorrect passcode"))
		p = ana.Submit(t, p.FormWith(t, "passcode"), map[string]string{"passcode": duotest.ValidPasscode})
		g.Expect(p.URL.String()).To(Equal(env.URL + "/passcode"))
		var who whoami
		g.Expect(ana.GetJSON(t, "/passcode", &who).Status).To(Equal(http.StatusOK))
		g.Expect(who).To(Equal(whoami{User: env.User, Multifactor: "duo", HasAssertion: true}))
	})

	step("in Chromium, the waiting page's script follows the push to the app", func(t *testing.T) {
		g := NewWithT(t)
		browser := harness.NewBrowser(t)
		if err := harness.BasicLogin(browser, env.User, env.Password); err != nil {
			t.Fatal(err)
		}
		before := len(ds.RequestsTo("/auth/v2/auth_status"))
		ctx, cancel := context.WithTimeout(browser, 60*time.Second)
		defer cancel()
		err := chromedp.Do(ctx,
			chromedp.Navigate(env.URL+"/browser"),
			chromedp.WaitVisible(chromedp.CSS(`form[action$="/duo/push"] button`)),
			chromedp.Click(chromedp.CSS(`form[action$="/duo/push"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#duo-status")),
			chromedp.WaitVisible(chromedp.CSS("#user")))
		g.Expect(err).NotTo(HaveOccurred())
		loc, err := chromedp.Run(ctx, chromedp.Location())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc).To(Equal(env.URL + "/browser"))
		mf, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#multifactor")))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(mf).To(Equal("duo"))
		// Two "waiting" answers and the final one came to the script; the
		// form it then submitted asked once more.
		g.Expect(len(ds.RequestsTo("/auth/v2/auth_status")) - before).To(Equal(4))
	})

	step("Duo stopped: failMode closed refuses, failMode open lets the user in without claiming duo", func(t *testing.T) {
		g := NewWithT(t)
		ds.Stop()
		defer ds.Start()

		closed := env.NewClient(env.User, env.Password)
		p := closed.Get(t, "/reports")
		g.Expect(p.Status).To(Equal(http.StatusServiceUnavailable), p.Body)
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		g.Expect(p.Text("h1", "")).To(Equal("Duo cannot be reached"))
		g.Expect(closed.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound))

		open := env.NewClient(env.User, env.Password)
		p = open.Get(t, "/open/reports")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(Equal(env.URL + "/open/reports"))
		var who whoami
		g.Expect(open.GetJSON(t, "/open/reports", &who).Status).To(Equal(http.StatusOK))
		g.Expect(who).To(Equal(whoami{User: env.User, Multifactor: "", HasAssertion: true}), "no second factor is claimed")
		g.Expect(open.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound), "the closed provider's rule still asks")
		g.Expect(env.Log(harness.Webhook)).To(MatchRegexp(
			`"level":"WARN","msg":"DUO UNREACHABLE: failMode open lets the user through WITHOUT a second factor; the session does not claim duo","policy":"apps/admin","rule":"open","provider":"apps/duo-open","user":"` + env.User + `"`))
	})

	for _, r := range ds.Requests() {
		p := r.Params
		if p.Has("passcode") {
			p.Set("passcode", "******")
		}
		t.Logf("Duo received: %s %s %s ikey=%t HTTP %d %s", r.Method, r.Path, p.Encode(), r.IKey == ds.IKey(), r.HTTPStatus, r.UserAgent)
	}
}
