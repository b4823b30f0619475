//go:build e2e

package faults

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// denyReports is a rule applied during the test to see that policy changes
// still reach the challenge server after an outage.
const denyReports = `  - name: deny-reports
    when: request.path.startsWith("/reports")
    action: Deny
`

// TestAPIServerOutage stops the API server (and etcd) under a running
// challenge server: /auth keeps answering from the loaded bundle and the
// cookies, the challenge pages answer "try again" (503) and lose nothing,
// and once the API server is back everything works without a restart.
// Then the API server hangs (SIGSTOP) instead of going away.
func TestAPIServerOutage(t *testing.T) {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller, harness.Webhook}})
	wh := env.WebhookURL
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	var (
		ana, anaRemembered *browser // enrolled; the second has only the remembered-browser cookie
		bob                *browser // began enrolling before the outage
		bobOTP             *harness.OTP
		bobForm            harness.Form
		carol              *browser // enrolled elsewhere; opened the code form before the outage
		carolOTP           *harness.OTP
		carolForm          harness.Form
		webhookPID         = env.PID(t, harness.Webhook)
		controllerPID      = env.PID(t, harness.Controller)
	)

	step("before: policy in force, users enrolled or enrolling", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, namespaceYAML+objectsYAML(""))
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
		waitForPolicy(t, wh)

		ana = newBrowser("ana@example.com")
		ana.enrol(t, wh)
		anaRemembered = newBrowser("ana@example.com")
		remember := ana.cookie(wh, "mfa_remember")
		g.Expect(remember).NotTo(BeEmpty())
		setCookie(anaRemembered, wh, "mfa_remember", remember)
		g.Expect(anaRemembered.auth(t, wh, "/reports").Status).To(Equal(http.StatusOK))

		bob = newBrowser("bob@example.com")
		p := bob.challenge(t, wh, rdFor("/reports"))
		g.Expect(p.Status).To(Equal(http.StatusOK))
		bobOTP = scanEnrolment(t, p)
		bobForm = p.FormWith(t, "code")

		carolOTP, _ = newBrowser("carol@example.com").enrol(t, wh)
		carol = newBrowser("carol@example.com") // another browser: asked for a code
		carolForm = carol.verifyForm(t, wh)
	})

	step("API server stopped: /auth answers from the bundle and the cookies", func(t *testing.T) {
		g := NewWithT(t)
		env.StopControlPlane(t)
		dave := newBrowser("dave@example.com")
		const rounds = 50
		codes := map[string]map[int]int{"ana (session cookie)": {}, "ana (remembered cookie only)": {}, "dave (no cookie)": {}, "ana /public": {}}
		for range rounds {
			codes["ana (session cookie)"][ana.auth(t, wh, "/reports").Status]++
			codes["ana (remembered cookie only)"][anaRemembered.auth(t, wh, "/reports").Status]++
			codes["ana /public"][ana.auth(t, wh, "/public/x").Status]++
			p := dave.auth(t, wh, "/reports")
			codes["dave (no cookie)"][p.Status]++
			g.Expect(p.Header.Get("Location")).To(HavePrefix(env.URL + policyPath + "?rd="))
		}
		t.Logf("answers while the API server is stopped (%d rounds): %v", rounds, codes)
		g.Expect(codes).To(Equal(map[string]map[int]int{
			"ana (session cookie)":         {http.StatusOK: rounds},
			"ana (remembered cookie only)": {http.StatusOK: rounds},
			"ana /public":                  {http.StatusOK: rounds},
			"dave (no cookie)":             {http.StatusUnauthorized: rounds},
		}))
		g.Expect(httpStatus(t, wh+"/readyz")).To(Equal(http.StatusOK), "the challenge server still serves its bundle")
	})

	step("API server stopped: enrolment and verification answer try again, nothing is counted", func(t *testing.T) {
		g := NewWithT(t)
		dave := newBrowser("dave@example.com")
		p := dave.challenge(t, wh, rdFor("/reports"))
		expectTryAgain(g, p)

		code, _ := bobOTP.NextCode(t)
		p = bob.submit(t, wh, bobForm, map[string]string{"code": code})
		expectTryAgain(g, p)
		g.Expect(p.Body).To(ContainSubstring("Nothing was changed."))

		// More attempts than the lockout allows: none may count.
		carolCode, _ := carolOTP.NextCode(t)
		for range 7 {
			p = carol.submit(t, wh, carolForm, map[string]string{"code": carolCode})
			expectTryAgain(g, p)
		}
		p = carol.submit(t, wh, carolForm, map[string]string{"code": wrongCode(carolCode)})
		expectTryAgain(g, p)
		bobOTP.Last--   // not accepted: the same step is still unused
		carolOTP.Last-- // likewise
	})

	step("API server back: enrolment and verification work, nothing was lost, nothing restarted", func(t *testing.T) {
		g := NewWithT(t)
		env.StartControlPlane(t)
		// The pending secret shown before the outage is still the one.
		code, _ := bobOTP.NextCode(t)
		var p *harness.Page
		eventually(t, time.Minute, "the store answering again", func() bool {
			p = bob.submit(t, wh, bobForm, map[string]string{"code": code})
			return p.Status != http.StatusServiceUnavailable
		})
		g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
		g.Expect(p.Texts("ol", "codes", "li")).To(HaveLen(10))

		// The code refused with 503 eight times is accepted now: no
		// failure was counted, so carol is not locked.
		carolCode, _ := carolOTP.NextCode(t)
		p = carol.submit(t, wh, carolForm, map[string]string{"code": carolCode})
		g.Expect(outcome(p)).To(Equal("accepted"), "%s", p.Body)

		g.Expect(ana.auth(t, wh, "/reports").Status).To(Equal(http.StatusOK))
		g.Expect(env.PID(t, harness.Webhook)).To(Equal(webhookPID), "the challenge server was not restarted")
		g.Expect(env.PID(t, harness.Controller)).To(Equal(controllerPID), "the controller was not restarted")
	})

	step("API server back: a policy change with kubectl reaches the challenge server without a restart", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, objectsYAML(denyReports))
		eventually(t, 90*time.Second, "the Deny rule in force", func() bool {
			return ana.auth(t, wh, "/reports").Status == http.StatusForbidden
		})
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
		g.Expect(ana.auth(t, wh, "/other").Status).To(Equal(http.StatusOK))
		env.Apply(t, objectsYAML(""))
		eventually(t, 90*time.Second, "the Deny rule removed", func() bool {
			return ana.auth(t, wh, "/reports").Status == http.StatusOK
		})
	})

	step("API server hung (SIGSTOP): /auth still answers, the pages answer try again in bounded time", func(t *testing.T) {
		g := NewWithT(t)
		env.Signal(t, harness.KubeAPIServer, syscall.SIGSTOP)
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				env.Signal(t, harness.KubeAPIServer, syscall.SIGCONT)
			}
		}
		t.Cleanup(resume)

		for range 20 {
			g.Expect(ana.auth(t, wh, "/reports").Status).To(Equal(http.StatusOK))
			g.Expect(newBrowser("dave@example.com").auth(t, wh, "/reports").Status).To(Equal(http.StatusUnauthorized))
		}
		// The browser's client gives up after 30s; the page must come first.
		start := time.Now()
		p := newBrowser("dave@example.com").challenge(t, wh, rdFor("/reports"))
		t.Logf("challenge page with the API server hung: %d after %s", p.Status, time.Since(start).Round(time.Millisecond))
		expectTryAgain(g, p)

		resume()
		eventually(t, time.Minute, "the challenge page working again", func() bool {
			return newBrowser("dave@example.com").challenge(t, wh, rdFor("/reports")).Status == http.StatusOK
		})
		g.Expect(env.PID(t, harness.Webhook)).To(Equal(webhookPID), "the challenge server was not restarted")
	})
}

func expectTryAgain(g Gomega, p *harness.Page) {
	g.ExpectWithOffset(1, p.Status).To(Equal(http.StatusServiceUnavailable), "%s", p.Body)
	g.ExpectWithOffset(1, p.Body).To(ContainSubstring("Please try again"))
	g.ExpectWithOffset(1, p.Header.Get("Retry-After")).NotTo(BeEmpty())
}

// setCookie gives the browser a cookie for server base.
func setCookie(b *browser, base, name, value string) {
	u := mustParseURL(base)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
