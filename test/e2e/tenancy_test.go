//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// TestTenantsCannotTouchEachOther runs two teams on one operator: the
// platform team team-a (a TOTP provider and a policy for a.example.test,
// behind nginx configured as ingress-nginx renders it and behind Caddy's
// forward_auth) and team-b, a tenant that may write MFAPolicies and
// MFAProviders in its own namespace only. Whatever team-b writes, it cannot
// use team-a's provider, read identities from a header the front door does
// not set, enrol or lock out team-a's users, answer for team-a's host, or
// mint an assertion team-a's app would take for its own.
func TestTenantsCannotTouchEachOther(t *testing.T) {
	caddy := harness.RequireBinary(t, "caddy")
	harness.RequireBinary(t, "oathtool")
	harness.RequireBinary(t, "zbarimg")

	// nginx serves a.example.test and is the challenge server's public URL;
	// cookies are for example.test, so that one sign-in serves every site
	// (and every team's cookies reach every team's hosts).
	env := harness.Start(t, harness.Options{
		Policy: "team-a/app",
		Env:    map[string]string{"DEMO_HOST": hostA, "DEMO_COOKIE_DOMAIN": "example.test"},
	})
	nginxPort := env.Setting("DEMO_PORT")
	nginxA := env.URL
	nginxB := "http://" + hostB + ":" + nginxPort
	nginxBorrowed := "http://" + hostBorrowed + ":" + nginxPort
	jwksURL := env.WebhookURL + "/.well-known/jwks.json"

	// Caddy in front of the same sample app: a.example.test for team-a
	// (with one route a tenant's misconfiguration sends to team-b's policy),
	// b.example.test for team-b, borrowed.b.example.test for team-b's policy
	// that names team-a's provider.
	dir := t.TempDir()
	caddyPort := harness.FreePort(t)
	out, err := exec.Command(caddy, "hash-password", "--plaintext", env.Password).Output()
	if err != nil {
		t.Fatalf("caddy hash-password: %v", err)
	}
	hash := strings.TrimSpace(string(out))
	webhook := strings.TrimPrefix(env.WebhookURL, "http://")
	app := strings.TrimPrefix(env.AppURL, "http://")
	caddyConf := "{\n\tadmin off\n\tauto_https off\n}\n" +
		tenantCaddySite(hostA, caddyPort, env.User, hash, webhook, app,
			caddyRoute{"/via-team-b/*", "team-b/b-app"}, caddyRoute{"", "team-a/app"}) +
		tenantCaddySite(hostB, caddyPort, env.User, hash, webhook, app, caddyRoute{"", "team-b/b-app"}) +
		tenantCaddySite(hostBorrowed, caddyPort, env.User, hash, webhook, app, caddyRoute{"", "team-b/borrowed"})
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyConf), 0o644); err != nil {
		t.Fatal(err)
	}
	startCaddy(t, caddy, conf, dir, caddyPort)
	caddyA := "http://" + hostA + ":" + strconv.Itoa(caddyPort)
	caddyB := "http://" + hostB + ":" + strconv.Itoa(caddyPort)
	caddyBorrowed := "http://" + hostBorrowed + ":" + strconv.Itoa(caddyPort)

	// Every browser comes from its own loopback address (the challenge
	// server limits form submissions per client address).
	browsers := 0
	browser := func() *harness.Client {
		browsers++
		from := netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + browsers%240)})
		return env.NewSiteClient(from, env.User, env.Password, hostA, hostB, hostBorrowed)
	}
	// signedIn is ana with her first factor and no cookies, for auth
	// requests that carry no second factor.
	signedIn := browser()
	asTenant := func(t *testing.T, manifest string) {
		t.Helper()
		env.MustKubectl(t, manifest, "--as", tenantB, "apply", "-f", "-")
	}

	var (
		otpA, otpB *harness.OTP
		anaB       *harness.Client // enrolled with team-b, then with team-a
		bOnly      *harness.Client // ana's cookies right after her team-b enrolment
		anaLock    *harness.Client // locked out of team-b's provider
	)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow() // every step builds on the previous ones
		}
	}

	step("team-a's policy is Ready and in force; team-b may write in team-b only", func(t *testing.T) {
		g := NewWithT(t)
		env.Apply(t, teamAYAML)
		verdict, msg := decidedVerdict(t, env, "team-a", "app")
		g.Expect(verdict).To(Equal("True/"+v1alpha1.ReasonSucceeded), msg)

		canI := func(verb, resource, ns string) string {
			out, _ := env.Kubectl("", "auth", "can-i", verb, resource, "-n", ns, "--as", tenantB)
			return strings.TrimSpace(out)
		}
		g.Expect(canI("create", "mfapolicies.mfa.operator.dev", "team-b")).To(Equal("yes"))
		g.Expect(canI("create", "mfaproviders.mfa.operator.dev", "team-b")).To(Equal("yes"))
		g.Expect(canI("create", "mfapolicies.mfa.operator.dev", "team-a")).To(Equal("no"))
		g.Expect(canI("patch", "mfaproviders.mfa.operator.dev", "team-a")).To(Equal("no"))
		_, err := env.Kubectl("", "--as", tenantB, "-n", "team-a", "patch", "mfaprovider", "google-authenticator",
			"--type=merge", "-p", `{"spec":{"allowedNamespaces":["shop","team-b"]}}`)
		g.Expect(err).To(MatchError(ContainSubstring("forbidden")), "team-b cannot make team-a's provider admit it")

		ana := browser()
		g.Eventually(func() string { return ana.GetNoRedirect(t, nginxA+"/").Location() }).
			WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).
			Should(HavePrefix(nginxA+"/challenge/team-a/app?"), "nginx sends ana to team-a's challenge")
	})

	step("1. team-b's policy naming team-a's provider is ProviderNotAdmitted and not in force", func(t *testing.T) {
		g := NewWithT(t)
		asTenant(t, teamBPolicy("borrowed", []string{hostBorrowed}, "X-Auth-Request-Email", "team-a/google-authenticator"))
		verdict, msg := decidedVerdict(t, env, "team-b", "borrowed")
		g.Expect(verdict).To(Equal("False/"+v1alpha1.ReasonProviderNotAdmitted), msg)
		g.Expect(msg).To(ContainSubstring("team-a/google-authenticator"))

		a := askAuth(t, env, "/auth/team-b/borrowed", "https://"+hostBorrowed+"/", signedIn, nil)
		g.Expect(a.Status).To(Equal(http.StatusForbidden), a.Body)
		g.Expect(a.Body).To(ContainSubstring("no MFAPolicy team-b/borrowed is in force"))

		p := browser().Get(t, nginxA+"/challenge/team-b/borrowed?rd="+url.QueryEscape("https://"+hostBorrowed+"/"))
		g.Expect(p.Status).To(BeNumerically(">=", 400), p.Body)
		g.Expect(p.Has("img", "qr")).To(BeFalse(), "no enrolment with team-a's provider through team-b's pages")
		for _, f := range p.Forms() {
			g.Expect(f.Fields).NotTo(HaveKey("code"), "no code form of team-a's provider on team-b's pages")
		}
	})

	step("2a. a team-b policy reading identities from X-Evil-User is IdentityHeaderNotAllowed", func(t *testing.T) {
		g := NewWithT(t)
		asTenant(t, teamBProviderYAML)
		env.MustKubectl(t, "", "-n", "team-b", "wait", "--for=condition=Ready", "--timeout=60s", "mfaprovider/google-authenticator")
		asTenant(t, teamBPolicy("evil-header", []string{hostEvil}, "X-Evil-User", "google-authenticator"))
		verdict, msg := decidedVerdict(t, env, "team-b", "evil-header")
		g.Expect(verdict).To(Equal("False/"+v1alpha1.ReasonIdentityHeaderNotAllowed), msg)
		g.Expect(msg).To(ContainSubstring("X-Evil-User"))

		a := askAuth(t, env, "/auth/team-b/evil-header", "https://"+hostEvil+"/", signedIn,
			map[string]string{"X-Evil-User": "ana@example.com"})
		g.Expect(a.Status).To(Equal(http.StatusForbidden), a.Body)
		g.Expect(a.Body).To(ContainSubstring("no MFAPolicy team-b/evil-header is in force"))
	})

	step("2b. team-b's own policy with its own provider is Ready and in force; the refused ones still are not", func(t *testing.T) {
		g := NewWithT(t)
		asTenant(t, teamBPolicy("b-app", []string{hostB}, "X-Auth-Request-Email", "google-authenticator"))
		verdict, msg := decidedVerdict(t, env, "team-b", "b-app")
		g.Expect(verdict).To(Equal("True/"+v1alpha1.ReasonSucceeded), msg)
		g.Eventually(func() int { return askAuth(t, env, "/auth/team-b/b-app", "https://"+hostB+"/", signedIn, nil).Status }).
			WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).
			Should(Equal(http.StatusUnauthorized), "b-app is in force: a second factor is asked for")

		// The bundle in force now was built after the refused policies were
		// written: they are left out, not merely late.
		a := askAuth(t, env, "/auth/team-b/borrowed", "https://"+hostBorrowed+"/", signedIn, nil)
		g.Expect(a.Status).To(Equal(http.StatusForbidden))
		g.Expect(a.Body).To(ContainSubstring("no MFAPolicy team-b/borrowed is in force"))
		a = askAuth(t, env, "/auth/team-b/evil-header", "https://"+hostEvil+"/", signedIn, map[string]string{"X-Evil-User": "ana@example.com"})
		g.Expect(a.Status).To(Equal(http.StatusForbidden))
		g.Expect(a.Body).To(ContainSubstring("no MFAPolicy team-b/evil-header is in force"))
	})

	step("2c. ana enrols with team-b through Caddy; team-a still shows her its own enrolment", func(t *testing.T) {
		g := NewWithT(t)
		anaB = browser()
		p := anaB.Get(t, caddyB+"/")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(HavePrefix(nginxA + "/challenge/team-b/b-app"))
		otpB = harness.ParseOTPAuth(t, harness.DecodeQR(t, anaB.Image(t, p, p.Find("img", "qr", "src"))))
		g.Expect(otpB.Issuer).To(Equal("Team B"))
		g.Expect(otpB.Account).To(Equal(env.User))

		code, _ := otpB.NextCode(t)
		p = anaB.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.Texts("ol", "codes", "li")).NotTo(BeEmpty(), "recovery codes are shown")
		p = anaB.Submit(t, p.FormWith(t, "csrf"), nil)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(Equal(caddyB + "/"))
		var seen tenantApp
		g.Expect(anaB.GetJSON(t, caddyB+"/", &seen).Status).To(Equal(http.StatusOK))
		g.Expect(seen.User).To(Equal(env.User))
		g.Expect(seen.Multifactor).To(Equal("google-authenticator"))
		g.Expect(seen.AssertionVerified).To(BeTrue(), seen.AssertionError)

		bOnly = browser()
		for _, c := range anaB.Jar.All() {
			bOnly.Jar.Put(c)
		}

		// team-b's session reaches a.example.test (cookie domain example.test)
		// and counts for nothing there.
		g.Expect(askAuth(t, env, "/auth/team-a/app", "https://"+hostA+"/", bOnly, nil).Status).To(Equal(http.StatusUnauthorized))
		p = anaB.GetNoRedirect(t, caddyA+"/")
		g.Expect(p.Status).To(Equal(http.StatusFound), p.Body)
		g.Expect(p.Location()).To(HavePrefix(nginxA + "/challenge/team-a/app?"))

		p = anaB.Get(t, nginxA+"/")
		g.Expect(p.URL.Path).To(Equal("/challenge/team-a/app"))
		g.Expect(p.Has("img", "qr")).To(BeTrue(), "ana is not enrolled with team-a: its enrolment page, not its code form:\n%s", p.Body)
		otpA = harness.ParseOTPAuth(t, harness.DecodeQR(t, anaB.Image(t, p, p.Find("img", "qr", "src"))))
		g.Expect(otpA.Issuer).To(Equal("Team A"))
		g.Expect(otpA.Account).To(Equal(env.User))
		g.Expect(otpA.Secret).NotTo(Equal(otpB.Secret))
	})

	step("2d. five wrong codes lock ana out of team-b's provider, not out of team-a's", func(t *testing.T) {
		g := NewWithT(t)
		anaLock = browser()
		p := anaLock.Get(t, caddyB+"/")
		g.Expect(p.URL.Path).To(Equal("/challenge/team-b/b-app"))
		g.Expect(p.Has("img", "qr")).To(BeFalse(), "ana is enrolled with team-b: its code form")
		wrong := codeOfNoStep(t, otpB)
		for i := range 5 {
			p = anaLock.Submit(t, p.FormWith(t, "code"), map[string]string{"code": wrong})
			g.Expect(p.Status).To(BeElementOf(http.StatusUnprocessableEntity, http.StatusTooManyRequests), "wrong code %d: %s", i+1, p.Body)
		}
		code, _ := otpB.NextCode(t)
		p = anaLock.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusTooManyRequests), "locked out: even the right code is refused\n%s", p.Body)
		g.Expect(p.Text("p", "alert")).To(ContainSubstring("Too many attempts"))

		// team-a: the same pending secret in the same browser, then enrolled.
		p = anaB.Get(t, nginxA+"/")
		g.Expect(p.URL.Path).To(Equal("/challenge/team-a/app"))
		g.Expect(p.Has("img", "qr")).To(BeTrue(), p.Body)
		again := harness.ParseOTPAuth(t, harness.DecodeQR(t, anaB.Image(t, p, p.Find("img", "qr", "src"))))
		g.Expect(again.Secret).To(Equal(otpA.Secret), "the pending secret is the same on every reload in one browser")
		code, _ = otpA.NextCode(t)
		p = anaB.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusOK), "team-a's enrolment is not locked:\n%s", p.Body)
		g.Expect(p.Texts("ol", "codes", "li")).NotTo(BeEmpty(), p.Body)
		p = anaB.Submit(t, p.FormWith(t, "csrf"), nil)
		g.Expect(p.URL.String()).To(Equal(nginxA + "/"))

		var seen tenantApp
		g.Expect(anaB.GetJSON(t, nginxA+"/", &seen).Status).To(Equal(http.StatusOK))
		g.Expect(seen.User).To(Equal(env.User))
		g.Expect(seen.AssertionVerified).To(BeTrue(), seen.AssertionError)
		claims := harness.VerifyAssertionAt(t, jwksURL, seen.Assertion)
		g.Expect(claims["policy"]).To(Equal("team-a/app"))
		aud, err := claims.GetAudience()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect([]string(aud)).To(Equal([]string{hostA}))

		// Another browser of ana's is asked for a team-a code and passes.
		other := browser()
		p = other.Get(t, nginxA+"/")
		g.Expect(p.URL.Path).To(Equal("/challenge/team-a/app"))
		g.Expect(p.Has("img", "qr")).To(BeFalse(), "enrolled with team-a now: its code form")
		code, _ = otpA.NextCode(t)
		p = other.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.URL.String()).To(Equal(nginxA+"/"), p.Body)
		g.Expect(other.GetNoRedirect(t, nginxA+"/").Status).To(Equal(http.StatusOK))

		// team-b's lockout stands: team-a's success did not lift it.
		p = anaLock.Get(t, caddyB+"/")
		g.Expect(p.URL.Path).To(Equal("/challenge/team-b/b-app"))
		code, _ = otpB.NextCode(t)
		p = anaLock.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusTooManyRequests), p.Body)

		audits := lockoutAudits(env.Log(harness.Webhook))
		g.Expect(audits).NotTo(BeEmpty(), "the lockout is in the audit log")
		g.Expect(audits).To(HaveEach(Equal("team-b/google-authenticator")))
	})

	step("3a. team-b's policy refuses team-a's host; its assertion names team-b's policy and host", func(t *testing.T) {
		g := NewWithT(t)
		a := askAuth(t, env, "/auth/team-b/b-app", "https://"+hostA+"/", bOnly, nil)
		g.Expect(a.Status).To(Equal(http.StatusForbidden), a.Body)
		g.Expect(a.Body).To(ContainSubstring("does not list the host " + hostA))
		g.Expect(a.Header.Get("X-Mfa-Assertion")).To(BeEmpty())

		a = askAuth(t, env, "/auth/team-b/b-app", "https://"+hostB+"/", bOnly, nil)
		g.Expect(a.Status).To(Equal(http.StatusOK), a.Body)
		assertion := a.Header.Get("X-Mfa-Assertion")
		g.Expect(assertion).NotTo(BeEmpty())
		claims := harness.VerifyAssertionAt(t, jwksURL, assertion)
		g.Expect(claims["policy"]).To(Equal("team-b/b-app"))
		g.Expect(claims["sub"]).To(Equal(env.User))
		aud, err := claims.GetAudience()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect([]string(aud)).To(Equal([]string{hostB}))

		// An app on a.example.test that checks aud (the sample app does)
		// refuses it; on b.example.test it verifies.
		check := func(host string) tenantApp {
			req, err := http.NewRequest(http.MethodGet, env.AppURL+"/", nil)
			g.Expect(err).NotTo(HaveOccurred())
			req.Host = host
			req.Header.Set("Accept", "application/json")
			req.Header.Set("X-MFA-User", env.User)
			req.Header.Set("X-MFA-Assertion", assertion)
			resp, err := http.DefaultClient.Do(req)
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			var seen tenantApp
			g.Expect(json.NewDecoder(resp.Body).Decode(&seen)).To(Succeed())
			return seen
		}
		onA := check(hostA)
		g.Expect(onA.AssertionVerified).To(BeFalse())
		g.Expect(onA.AssertionError).To(ContainSubstring("audience"))
		onB := check(hostB)
		g.Expect(onB.AssertionVerified).To(BeTrue(), onB.AssertionError)
	})

	step("3b. through Caddy: team-b's refused policy answers 403, and team-b's policy refuses team-a's host", func(t *testing.T) {
		g := NewWithT(t)
		p := bOnly.GetNoRedirect(t, caddyBorrowed+"/")
		g.Expect(p.Status).To(Equal(http.StatusForbidden), p.Body)
		g.Expect(p.Body).To(ContainSubstring("no MFAPolicy team-b/borrowed is in force"))

		p = bOnly.GetNoRedirect(t, caddyA+"/via-team-b/")
		g.Expect(p.Status).To(Equal(http.StatusForbidden), p.Body)
		g.Expect(p.Body).To(ContainSubstring("does not list the host " + hostA))

		var seen tenantApp
		g.Expect(bOnly.GetJSON(t, caddyB+"/", &seen).Status).To(Equal(http.StatusOK))
		g.Expect(seen.AssertionVerified).To(BeTrue(), seen.AssertionError)
		claims := harness.VerifyAssertionAt(t, jwksURL, seen.Assertion)
		g.Expect(claims["policy"]).To(Equal("team-b/b-app"))
		aud, _ := claims.GetAudience()
		g.Expect([]string(aud)).To(Equal([]string{hostB}))
	})

	step("3c. through nginx wired to team-b's policies: the same refusals, then team-a's wiring back", func(t *testing.T) {
		g := NewWithT(t)
		rewired := true
		t.Cleanup(func() {
			if rewired {
				env.WireNginx(t, env.WebhookURL+"/auth/team-a/app", nginxA+"/challenge/team-a/app")
			}
		})
		env.WireNginx(t, env.WebhookURL+"/auth/team-b/borrowed", nginxA+"/challenge/team-b/borrowed")
		g.Expect(bOnly.GetNoRedirect(t, nginxBorrowed+"/").Status).To(Equal(http.StatusForbidden))

		// team-b's Ingress takes a.example.test: its policy refuses the host.
		env.WireNginx(t, env.WebhookURL+"/auth/team-b/b-app", nginxA+"/challenge/team-b/b-app")
		g.Expect(bOnly.GetNoRedirect(t, nginxA+"/").Status).To(Equal(http.StatusForbidden))
		var seen tenantApp
		g.Expect(bOnly.GetJSON(t, nginxB+"/", &seen).Status).To(Equal(http.StatusOK))
		g.Expect(seen.AssertionVerified).To(BeTrue(), seen.AssertionError)
		claims := harness.VerifyAssertionAt(t, jwksURL, seen.Assertion)
		g.Expect(claims["policy"]).To(Equal("team-b/b-app"))
		aud, _ := claims.GetAudience()
		g.Expect([]string(aud)).To(Equal([]string{hostB}))

		env.WireNginx(t, env.WebhookURL+"/auth/team-a/app", nginxA+"/challenge/team-a/app")
		rewired = false
		g.Expect(anaB.GetJSON(t, nginxA+"/", &seen).Status).To(Equal(http.StatusOK))
		g.Expect(seen.User).To(Equal(env.User))
	})

	// 4. Host claims: team-b lists team-a's host under another spelling or
	// under a wildcard. Each case is its own subtest, and each facet too,
	// so that every facet is reported.
	g := NewWithT(t)
	base := askAuth(t, env, "/auth", "https://"+hostA+"/", anaB, nil)
	g.Expect(base.Status).To(Equal(http.StatusOK), "host-based lookup finds team-a's policy before any claim: %s", base.Body)
	for _, claim := range []struct{ name, host string }{
		{"claim-port", hostA + ":443"},
		{"claim-wild", "*.example.test"},
	} {
		t.Run("4. team-b's policy listing "+claim.host, func(t *testing.T) {
			key := "team-b/" + claim.name
			asTenant(t, teamBPolicy(claim.name, []string{claim.host}, "X-Auth-Request-Email", "google-authenticator"))
			t.Cleanup(func() {
				g := NewWithT(t)
				env.MustKubectl(t, "", "--as", tenantB, "-n", "team-b", "delete", "mfapolicy", claim.name, "--wait=true")
				g.Eventually(func() string { v, _, _ := readyOf(env, "team-a", "app"); return v }).
					WithTimeout(60*time.Second).WithPolling(250*time.Millisecond).
					Should(Equal("True/"+v1alpha1.ReasonSucceeded), "team-a's policy is Ready again once the claim is gone")
				g.Eventually(func() int { return askAuth(t, env, "/auth", "https://"+hostA+"/", anaB, nil).Status }).
					WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).
					Should(Equal(http.StatusOK), "host-based lookup serves a.example.test again")
			})

			t.Run("it reports HostConflict naming team-a's policy", func(t *testing.T) {
				g := NewWithT(t)
				verdict, msg := decidedVerdict(t, env, "team-b", claim.name)
				// In force by name, so Ready stays True; the reason says why
				// its hosts fail closed on host-based lookup.
				g.Expect(verdict).To(Equal("True/"+v1alpha1.ReasonHostConflict), msg)
				g.Expect(msg).To(ContainSubstring("team-a/app"))
			})
			t.Run("team-a's policy reports HostConflict naming it", func(t *testing.T) {
				g := NewWithT(t)
				g.Eventually(func() string { v, m, _ := readyOf(env, "team-a", "app"); return v + " " + m }).
					WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).
					Should(And(HavePrefix("True/"+v1alpha1.ReasonHostConflict+" "), ContainSubstring(key)))
			})
			t.Run("host-based lookup fails closed for a.example.test", func(t *testing.T) {
				g := NewWithT(t)
				var last authAnswer
				g.Eventually(func() int { last = askAuth(t, env, "/auth", "https://"+hostA+"/", anaB, nil); return last.Status }).
					WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).
					Should(Equal(http.StatusForbidden), func() string { return last.Body })
				g.Expect(last.Body).To(ContainSubstring(key))
			})
			t.Run("team-b's policy does not answer for a.example.test by name", func(t *testing.T) {
				g := NewWithT(t)
				// Asked before the challenge server has the policy, the answer
				// is "not in force": wait for any other answer, if one comes.
				var last authAnswer
				deadline := time.Now().Add(20 * time.Second)
				for {
					last = askAuth(t, env, "/auth/"+key, "https://"+hostA+"/", bOnly, nil)
					if !strings.Contains(last.Body, "is in force") || time.Now().After(deadline) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				g.Expect(last.Status).To(Equal(http.StatusForbidden), "team-b answered for team-a's host: %d %s (assertion claims %s)",
					last.Status, last.Body, jwtPayload(last.Header.Get("X-Mfa-Assertion")))
				g.Expect(last.Header.Get("X-Mfa-Assertion")).To(BeEmpty())
			})
			t.Run("team-a's front door still lets ana in, with team-a's assertion", func(t *testing.T) {
				g := NewWithT(t)
				var seen tenantApp
				g.Expect(anaB.GetJSON(t, nginxA+"/", &seen).Status).To(Equal(http.StatusOK))
				claims := harness.VerifyAssertionAt(t, jwksURL, seen.Assertion)
				g.Expect(claims["policy"]).To(Equal("team-a/app"))
			})
		})
	}
}
