//go:build e2e

package faults

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// authLoad keeps asking a challenge server's /auth, one goroutine per kind
// of request, and counts the answers by status (0: a transport error).
type authLoad struct {
	stop  atomic.Bool
	total atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	// counts by kind, then status.
	counts map[string]map[int]int
	want   map[string]int
}

// startAuthLoad sends, until stopped: a remembered user's requests (200),
// a user without a second factor's (401) and an open path's (200).
func startAuthLoad(base string, remembered *browser) *authLoad {
	l := &authLoad{counts: map[string]map[int]int{}, want: map[string]int{}}
	kinds := []struct {
		name string
		b    *browser
		path string
		want int
	}{
		{"remembered user", remembered, "/reports", http.StatusOK},
		{"user without a second factor", newBrowser("dave@example.com"), "/reports", http.StatusUnauthorized},
		{"open path", newBrowser("dave@example.com"), "/public/logo.png", http.StatusOK},
	}
	for _, k := range kinds {
		l.counts[k.name] = map[int]int{}
		l.want[k.name] = k.want
		l.wg.Go(func() {
			for !l.stop.Load() {
				status := 0
				if p, err := k.b.tryAuth(base, k.path); err == nil {
					status = p.Status
				}
				l.mu.Lock()
				l.counts[k.name][status]++
				l.mu.Unlock()
				l.total.Add(1)
			}
		})
	}
	return l
}

// answersMeanwhile waits until the load got n more answers.
func (l *authLoad) answersMeanwhile(t *testing.T, n int64, what string) {
	t.Helper()
	from := l.total.Load()
	eventually(t, time.Minute, fmt.Sprintf("%d /auth answers %s", n, what), func() bool {
		return l.total.Load() >= from+n
	})
}

// finish stops the load and returns the answers that were not the one
// wanted, by kind.
func (l *authLoad) finish(t *testing.T) map[string]map[int]int {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	bad := map[string]map[int]int{}
	for kind, byStatus := range l.counts {
		t.Logf("%-30s %v (want only %d)", kind+":", byStatus, l.want[kind])
		for status, n := range byStatus {
			if status != l.want[kind] {
				if bad[kind] == nil {
					bad[kind] = map[int]int{}
				}
				bad[kind][status] = n
			}
		}
	}
	return bad
}

// secretUID is the uid of a Secret of the operator's namespace, "" when
// there is none.
func secretUID(env *harness.Env, name string) string {
	out, err := env.Kubectl("", "-n", env.Setting("DEMO_NAMESPACE"), "get", "secret", name, "--ignore-not-found", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// TestOwnSecretsDeletedUnderLoad deletes the bundle Secret, then the
// keyring Secret, while clients keep asking /auth: the challenge server
// (a local process here, as in the demo; in a cluster, the pods of the
// challenge Deployment) keeps serving the last good bundle and keys while
// each Secret is missing, and picks up the one the controller writes back:
// the same bundle, the same keys. Not one /auth answer differs from the
// expected one, and the challenge server is never restarted. The
// controller is frozen (SIGSTOP) while a Secret is missing, so that the
// window is certain to be seen by the server and by the load; then it runs
// on with its memory. A controller started afresh, with no copy of the
// keys, refuses to make new ones while users are enrolled.
//
// Nothing here runs the challenge Deployment (no kubelet): that its pods
// are neither garbage-collected nor rolled is proven by the envtest tests
// of controllers/ (no owner reference, the same Deployment and generation).
func TestOwnSecretsDeletedUnderLoad(t *testing.T) {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller, harness.Webhook}})
	wh, ns := env.WebhookURL, env.Setting("DEMO_NAMESPACE")
	g := NewWithT(t)
	env.Apply(t, namespaceYAML+objectsYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
	waitForPolicy(t, wh)
	ana := newBrowser("ana@example.com")
	anaOTP, _ := ana.enrol(t, wh)
	goodBundle := secretData(t, env, "mfa-bundle")
	goodKeyring := secretData(t, env, "mfa-keyring")
	goodHash := decodeB64(t, goodBundle["hash"])
	eventually(t, time.Minute, "the challenge server on the controller's bundle", func() bool {
		return bundleInForce(t, wh) == goodHash[:12]
	})
	webhookPID := env.PID(t, harness.Webhook)

	remembered := newBrowser("ana@example.com")
	for _, c := range ana.jar.Cookies(mustParseURL(wh)) {
		setCookie(remembered, wh, c.Name, c.Value)
	}
	load := startAuthLoad(wh, remembered)
	t.Cleanup(func() { load.stop.Store(true); load.wg.Wait() })

	frozen := false
	resume := func() {
		if frozen {
			frozen = false
			env.Signal(t, harness.Controller, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	missing := func(t *testing.T, name string) {
		t.Helper()
		eventually(t, time.Minute, "/readyz to report "+name+" missing", func() bool {
			_, body := readyz(t, wh)
			return strings.Contains(body, "warning: Secret "+ns+"/"+name+" not found")
		})
		load.answersMeanwhile(t, 300, "while "+name+" is missing")
		NewWithT(t).Expect(secretUID(env, name)).To(BeEmpty(), "%s is still missing", name)
		code, body := readyz(t, wh)
		NewWithT(t).Expect(code).To(Equal(http.StatusOK), body)
		NewWithT(t).Expect(body).To(HavePrefix("ok, with warnings: serving the last good configuration (bundle " + goodHash[:12] + ")"))
	}
	healed := func(t *testing.T) {
		t.Helper()
		eventually(t, time.Minute, "/readyz without warnings", func() bool {
			_, body := readyz(t, wh)
			return !strings.Contains(body, "warning")
		})
		NewWithT(t).Expect(bundleInForce(t, wh)).To(Equal(goodHash[:12]))
		load.answersMeanwhile(t, 100, "after the repair")
	}
	deleteAndRepair := func(t *testing.T, name string, want map[string]string) {
		g := NewWithT(t)
		uid := secretUID(env, name)
		g.Expect(uid).NotTo(BeEmpty())
		env.Signal(t, harness.Controller, syscall.SIGSTOP)
		frozen = true
		env.MustKubectl(t, "", "-n", ns, "delete", "secret", name)
		missing(t, name)
		resume()
		eventually(t, time.Minute, "the controller writing "+name+" back", func() bool {
			u := secretUID(env, name)
			return u != "" && u != uid
		})
		g.Expect(secretData(t, env, name)).To(Equal(want), "%s is written back as it was", name)
		healed(t)
	}

	t.Run("bundle Secret deleted: the last good bundle serves, the same one is written back", func(t *testing.T) {
		deleteAndRepair(t, "mfa-bundle", goodBundle)
	})
	t.Run("keyring Secret deleted: the keys in force serve, the same keys are written back", func(t *testing.T) {
		deleteAndRepair(t, "mfa-keyring", goodKeyring)
	})
	t.Run("keyring Secret deleted, controller started afresh: no new keyring while users are enrolled", func(t *testing.T) {
		g := NewWithT(t)
		env.Stop(t, harness.Controller)
		env.MustKubectl(t, "", "-n", ns, "delete", "secret", "mfa-keyring")
		env.Restart(harness.Controller)
		eventually(t, time.Minute, "a KeyringMissing event", func() bool {
			out, err := env.Kubectl("", "-n", ns, "get", "events", "--field-selector", "reason=KeyringMissing", "-o", "name")
			return err == nil && strings.TrimSpace(out) != ""
		})
		missing(t, "mfa-keyring")
		g.Expect(env.Log(harness.Controller)).To(ContainSubstring("no new keyring generated"))

		// The administrator restores the Secret from a backup.
		var data strings.Builder
		for k, v := range goodKeyring {
			fmt.Fprintf(&data, "  %s: %s\n", k, v)
		}
		env.Apply(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: mfa-keyring, namespace: "+ns+"}\ndata:\n"+data.String())
		healed(t)
	})

	bad := load.finish(t)
	g.Expect(bad).To(BeEmpty(), "/auth answers other than the expected one")
	g.Expect(env.PID(t, harness.Webhook)).To(Equal(webhookPID), "the challenge server was never restarted")

	t.Run("a challenge server started afresh reads the keys written back: cookies and enrolments are intact", func(t *testing.T) {
		g := NewWithT(t)
		env.Restart(harness.Webhook)
		waitForPolicy(t, wh)
		g.Expect(remembered.auth(t, wh, "/reports").Status).To(Equal(http.StatusOK), "the remembered-browser cookie opens")
		other := newBrowser("ana@example.com")
		form := other.verifyForm(t, wh)
		code, _ := anaOTP.NextCode(t)
		p := other.submit(t, wh, form, map[string]string{"code": code})
		g.Expect(outcome(p)).To(Equal("accepted"), "the stored TOTP secret opens: %s", p.Body)
	})
}
