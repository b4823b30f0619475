//go:build e2e

package faults

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// revocationDeadline is the requirement: a revocation takes effect on
// every replica within 5 s of the command returning.
const revocationDeadline = 5 * time.Second

// helpdeskCLI is the kubectl plugin (the operator's binary installed as
// kubectl-mfa) with a kubeconfig for one ServiceAccount.
type helpdeskCLI struct {
	bin, kubeconfig string
}

// run runs `kubectl mfa args...` and returns its exit code, stdout and stderr.
func (h helpdeskCLI) run(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.kubeconfig)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", h.bin, err)
	}
	return code, out.String(), errb.String()
}

// pluginFor installs the operator's binary as kubectl-mfa and writes a
// kubeconfig with a TokenRequest token of ServiceAccount mfa-system/sa.
func pluginFor(t *testing.T, env *harness.Env, sa string) helpdeskCLI {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-mfa")
	NewWithT(t).Expect(os.Symlink(harness.OperatorBinary(t), bin)).To(Succeed())
	token := strings.TrimSpace(env.MustKubectl(t, "", "-n", "mfa-system", "create", "token", sa, "--duration=1h"))
	kc := filepath.Join(dir, "kubeconfig")
	raw := env.MustKubectl(t, "", "config", "view", "--raw", "--minify")
	NewWithT(t).Expect(os.WriteFile(kc, []byte(raw), 0o600)).To(Succeed())
	for _, args := range [][]string{
		{"config", "set-credentials", sa, "--token=" + token},
		{"config", "set-context", "--current", "--user=" + sa},
	} {
		cmd := exec.Command(env.KubectlPath, append([]string{"--kubeconfig", kc}, args...)...)
		out, err := cmd.CombinedOutput()
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s", out)
	}
	return helpdeskCLI{bin: bin, kubeconfig: kc}
}

const helpdeskAccountsYAML = `apiVersion: v1
kind: ServiceAccount
metadata: {name: helpdesk, namespace: mfa-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: intern, namespace: mfa-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: helpdesk, namespace: mfa-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: mfa-helpdesk}
subjects: [{kind: ServiceAccount, name: helpdesk, namespace: mfa-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: helpdesk}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mfa-helpdesk}
subjects: [{kind: ServiceAccount, name: helpdesk, namespace: mfa-system}]
`

// TestHelpdeskRevocationAndReset: three challenge-server replicas in
// cluster mode, each behind its own server of a real nginx (auth_request);
// `kubectl mfa
// revoke`, run as a ServiceAccount holding only the helpdesk Role, makes
// every replica refuse the user's remembered browser within 5 s while
// other users stay remembered; `reset` leads to a fresh enrolment with a
// new secret; a ServiceAccount without the Role is refused clearly; the
// audit lines are checked field by field.
func TestHelpdeskRevocationAndReset(t *testing.T) {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller}})
	env.Apply(t, namespaceYAML+objectsYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfaprovider/google-authenticator", "mfapolicy/admin")
	var servers []string
	for _, name := range []string{"replica-a", "replica-b", "replica-c"} {
		servers = append(servers, env.StartWebhookReplica(t, name).URL)
	}
	waitForPolicy(t, servers...)
	fronts := startNginxFronts(t, servers)
	env.Apply(t, helpdeskAccountsYAML)
	helpdesk, intern := pluginFor(t, env, "helpdesk"), pluginFor(t, env, "intern")

	// Another user, remembered everywhere, all along.
	bob := newBrowser("bob@example.com")
	bob.enrol(t, servers[0])
	bobRemembered := func(t *testing.T) {
		for _, f := range fronts {
			p, err := bob.viaFront(f, "/reports/")
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			NewWithT(t).Expect(p.Status).To(Equal(http.StatusOK), "bob through %s", f)
		}
	}

	t.Run("revoke: every replica refuses the browser within 5 s, 20 times", func(t *testing.T) {
		g := NewWithT(t)
		var took []time.Duration
		for i := range 20 {
			user := "leaver-" + string(rune('a'+i)) + "@example.com"
			b := newBrowser(user)
			b.enrol(t, servers[i%len(servers)])
			for _, f := range fronts {
				p, err := b.viaFront(f, "/reports/")
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Status).To(Equal(http.StatusOK), "%s remembered through %s", user, f)
				g.Expect(p.Body).To(Equal("the app\n"))
			}
			code, out, errOut := helpdesk.run(t, "revoke", user)
			returned := time.Now()
			g.Expect(code).To(BeZero(), "%s%s", out, errOut)
			g.Expect(out).To(ContainSubstring("revoked every session and remembered browser"))
			if i == 0 {
				checkAudit(t, errOut, "revocation", user, "system:serviceaccount:mfa-system:helpdesk")
			}
			refused := map[string]bool{}
			eventually(t, revocationDeadline, user+" refused by every replica", func() bool {
				for _, f := range fronts {
					if !refused[f] {
						p, err := b.viaFront(f, "/reports/")
						refused[f] = err == nil && p.Status == http.StatusUnauthorized
					}
				}
				return len(refused) == len(fronts) && !slices.Contains(mapValues(refused), false)
			})
			took = append(took, time.Since(returned))
		}
		slices.Sort(took)
		t.Logf("revocation: time from `kubectl mfa revoke` returning to the last of %d replicas refusing, over %d runs: median %s, max %s",
			len(servers), len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		bobRemembered(t)
	})

	t.Run("reset: a fresh enrolment with a new secret; the old secret's codes are refused", func(t *testing.T) {
		g := NewWithT(t)
		ana := newBrowser("ana@example.com")
		old, _ := ana.enrol(t, servers[0])
		code, out, errOut := helpdesk.run(t, "reset", "ana@example.com")
		g.Expect(code).To(BeZero(), "%s%s", out, errOut)
		g.Expect(out).To(ContainSubstring("apps/google-authenticator"))
		checkAudit(t, errOut, "reset", "ana@example.com", "system:serviceaccount:mfa-system:helpdesk")
		for _, s := range servers {
			eventually(t, revocationDeadline, "ana's browser refused on "+s, func() bool {
				p, err := ana.tryAuth(s, "/reports")
				return err == nil && p.Status == http.StatusUnauthorized
			})
		}
		p := ana.challenge(t, servers[1], rdFor("/reports"))
		g.Expect(p.Status).To(Equal(http.StatusOK))
		fresh := scanEnrolment(t, p)
		g.Expect(fresh.Secret).NotTo(Equal(old.Secret), "a new secret")
		oldCode, _ := old.NextCode(t)
		refused := ana.submit(t, servers[1], p.FormWith(t, "code"), map[string]string{"code": oldCode})
		g.Expect(refused.Status).To(Equal(http.StatusUnprocessableEntity), "the old secret's code is refused")
		p = ana.challenge(t, servers[1], rdFor("/reports"))
		newCode, _ := fresh.NextCode(t)
		p = ana.submit(t, servers[1], p.FormWith(t, "code"), map[string]string{"code": newCode})
		g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
		for _, s := range servers {
			g.Expect(ana.auth(t, s, "/reports").Status).To(Equal(http.StatusOK), "enrolled again, seen on %s", s)
		}
		bobRemembered(t)
	})

	t.Run("Security page: signing out of every other browser reaches every replica", func(t *testing.T) {
		g := NewWithT(t)
		phone := newBrowser("carol@example.com")
		otp, _ := phone.enrol(t, servers[0])
		laptop := newBrowser("carol@example.com")
		p := laptop.challenge(t, servers[1], rdFor("/reports"))
		code, _ := otp.NextCode(t)
		p = laptop.submit(t, servers[1], p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusSeeOther), "%s", p.Body)
		for _, f := range fronts {
			p, err := laptop.viaFront(f, "/reports/")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status).To(Equal(http.StatusOK), "the laptop remembered through %s", f)
		}
		req, _ := http.NewRequest(http.MethodGet, servers[2]+"/security/apps/admin", nil)
		p = phone.do(t, req)
		g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
		var signout *harness.Form
		for _, f := range p.Forms() {
			if strings.HasSuffix(f.Action, "/security/apps/admin/signout") {
				signout = &f
			}
		}
		g.Expect(signout).NotTo(BeNil(), "%s", p.Body)
		p = phone.submit(t, servers[2], *signout, nil)
		g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)
		g.Expect(p.Body).To(ContainSubstring("Every other browser is signed out"))
		refused := map[string]bool{}
		eventually(t, revocationDeadline, "the laptop refused through every front door", func() bool {
			for _, f := range fronts {
				if !refused[f] {
					p, err := laptop.viaFront(f, "/reports/")
					refused[f] = err == nil && p.Status == http.StatusUnauthorized
				}
			}
			return len(refused) == len(fronts) && !slices.Contains(mapValues(refused), false)
		})
		for _, f := range fronts {
			p, err := phone.viaFront(f, "/reports/")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status).To(Equal(http.StatusOK), "the phone stays signed in through %s", f)
		}
		bobRemembered(t)
	})

	t.Run("users and unlock with the helpdesk Role", func(t *testing.T) {
		g := NewWithT(t)
		code, out, errOut := helpdesk.run(t, "users", "--policy", "apps/admin")
		g.Expect(code).To(BeZero(), errOut)
		g.Expect(out).To(MatchRegexp(`(?m)^bob@example\.com\s+apps/google-authenticator\s+totp\s`))
		code, out, errOut = helpdesk.run(t, "unlock", "bob@example.com")
		g.Expect(code).To(BeZero(), errOut)
	})

	t.Run("a ServiceAccount without the helpdesk Role is refused", func(t *testing.T) {
		for _, args := range [][]string{{"users"}, {"revoke", "bob@example.com"}, {"reset", "bob@example.com"}, {"unlock", "bob@example.com"}} {
			g := NewWithT(t)
			code, _, errOut := intern.run(t, args...)
			g.Expect(code).To(Equal(1), "%v", args)
			g.Expect(errOut).To(ContainSubstring("not allowed"))
			g.Expect(errOut).To(ContainSubstring(`"system:serviceaccount:mfa-system:intern" cannot`))
			g.Expect(errOut).To(ContainSubstring("config/rbac/helpdesk_role.yaml"))
		}
		bobRemembered(t)
	})
}

func mapValues(m map[string]bool) []bool {
	var out []bool
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// checkAudit finds the audit line of event in the command's stderr and
// checks it field by field.
func checkAudit(t *testing.T, stderr, event, user, actor string) {
	t.Helper()
	g := NewWithT(t)
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["event"] != event {
			continue
		}
		g.Expect(rec).To(HaveKeyWithValue("audit", true))
		g.Expect(rec).To(HaveKeyWithValue("msg", "audit"))
		g.Expect(rec).To(HaveKeyWithValue("user", user))
		g.Expect(rec).To(HaveKeyWithValue("outcome", "success"))
		g.Expect(rec).To(HaveKeyWithValue("actor", actor))
		g.Expect(rec).To(HaveKeyWithValue("user_agent", "kubectl-mfa"))
		g.Expect(rec).To(HaveKeyWithValue("client_ip", ""))
		g.Expect(rec).To(HaveKeyWithValue("policy", ""))
		g.Expect(rec["provider"]).To(ContainSubstring("apps/google-authenticator"))
		return
	}
	t.Fatalf("no %q audit line in:\n%s", event, stderr)
}
