//go:build e2e

package faults

import (
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// killable is a challenge server a test can SIGKILL and start again.
type killable struct {
	url   string
	kill  func(t *testing.T)
	start func(t *testing.T)
}

// lockoutOff keeps a burst of reused codes from locking the user, so that
// every answer says whether the code itself was taken.
const lockoutOff = "100"

func clusterKillable(t *testing.T) killable {
	env := harness.Start(t, harness.Options{
		Components: []string{harness.Controller, harness.Webhook},
		Env:        map[string]string{"MFA_LOCKOUT_MAX_FAILURES": lockoutOff},
	})
	env.Apply(t, namespaceYAML+objectsYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
	waitForPolicy(t, env.WebhookURL)
	return killable{
		url:  env.WebhookURL,
		kill: func(t *testing.T) { env.Signal(t, harness.Webhook, syscall.SIGKILL) },
		start: func(t *testing.T) {
			env.Restart(harness.Webhook)
			waitForPolicy(t, env.WebhookURL)
		},
	}
}

func standaloneKillable(t *testing.T) killable {
	dir := t.TempDir()
	configDir, dataDir := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	NewWithT(t).Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	NewWithT(t).Expect(os.WriteFile(filepath.Join(configDir, "objects.yaml"), []byte(objectsYAML("")), 0o600)).To(Succeed())
	p := harness.StartWebhook(t, harness.WebhookOptions{Name: "standalone", ConfigDir: configDir, DataDir: dataDir,
		Flags: []string{"--lockout-max-failures=" + lockoutOff}})
	waitForPolicy(t, p.URL)
	return killable{
		url:  p.URL,
		kill: func(t *testing.T) { p.Kill(t) },
		start: func(t *testing.T) {
			p.Start(t)
			waitForPolicy(t, p.URL)
		},
	}
}

// TestKilledChallengeServer SIGKILLs the challenge server right after it
// accepted a code, and in the middle of a burst of submissions of one
// code: started again, it has lost no enrolment (pending or confirmed)
// and accepts no code twice.
func TestKilledChallengeServer(t *testing.T) {
	for _, d := range []struct {
		name  string
		setup func(t *testing.T) killable
	}{
		{"cluster mode, Secret store", clusterKillable},
		{"standalone, file store", standaloneKillable},
	} {
		t.Run(d.name, func(t *testing.T) {
			g := NewWithT(t)
			k := d.setup(t)

			// ana is enrolled; bob is half-way (the QR code shown).
			anaOTP, _ := newBrowser("ana@example.com").enrol(t, k.url)
			bob := newBrowser("bob@example.com")
			p := bob.challenge(t, k.url, rdFor("/reports"))
			bobOTP := scanEnrolment(t, p)

			// A code accepted, then the process killed at once.
			first := newBrowser("ana@example.com")
			code, _ := anaOTP.NextCode(t)
			g.Expect(outcome(first.submit(t, k.url, first.verifyForm(t, k.url), map[string]string{"code": code}))).To(Equal("accepted"))
			k.kill(t)
			k.start(t)

			again := newBrowser("ana@example.com")
			form := again.verifyForm(t, k.url) // enrolled still: the code form, no QR code
			g.Expect(outcome(again.submit(t, k.url, form, map[string]string{"code": code}))).To(Equal("reused"), "the code accepted before the kill")
			g.Expect(first.auth(t, k.url, "/reports").Status).To(Equal(http.StatusOK), "the cookie issued before the kill")

			// bob's pending secret survived: the same QR code, and its code confirms it.
			p = bob.challenge(t, k.url, rdFor("/reports"))
			g.Expect(scanEnrolment(t, p).Secret).To(Equal(bobOTP.Secret))
			bobCode, _ := bobOTP.NextCode(t)
			p = bob.submit(t, k.url, p.FormWith(t, "code"), map[string]string{"code": bobCode})
			g.Expect(p.Status).To(Equal(http.StatusOK), "%s", p.Body)

			// A burst of one code with a SIGKILL in the middle.
			erinOTP, _ := newBrowser("erin@example.com").enrol(t, k.url)
			const n = 16
			browsers := make([]*browser, n)
			forms := make([]harness.Form, n)
			for i := range browsers {
				browsers[i] = newBrowser("erin@example.com")
				forms[i] = browsers[i].verifyForm(t, k.url)
			}
			burst, _ := erinOTP.NextCode(t)
			var mu sync.Mutex
			before := map[string]int{}
			// The kill goes out as soon as the first answer comes back, with
			// the other submissions in flight.
			done, answered := make(chan struct{}), make(chan struct{})
			var once sync.Once
			go func() {
				defer close(done)
				race(n, func(i int) {
					req := browsers[i].formRequest(t, k.url, forms[i], map[string]string{"code": burst})
					o := "no answer (killed)"
					if p, err := browsers[i].try(req); err == nil {
						o = outcome(p)
						once.Do(func() { close(answered) })
					}
					mu.Lock()
					before[o]++
					mu.Unlock()
				})
			}()
			select {
			case <-answered:
			case <-done:
			}
			k.kill(t)
			<-done
			k.start(t)
			after := map[string]int{}
			for range 3 {
				b := newBrowser("erin@example.com")
				after[outcome(b.submit(t, k.url, b.verifyForm(t, k.url), map[string]string{"code": burst}))]++
			}
			t.Logf("one code, %d submissions with a SIGKILL among them: %v; the same code after the restart, 3 times: %v", n, before, after)
			g.Expect(before["accepted"]+after["accepted"]).To(BeNumerically("<=", 1), "a code is never accepted twice")
			if before["accepted"] == 1 {
				g.Expect(after).To(Equal(map[string]int{"reused": 3}))
			} else {
				g.Expect(after["reused"]).To(BeNumerically(">=", 2))
			}
			for o := range before {
				g.Expect(o).To(BeElementOf("accepted", "reused", "try-again", "no answer (killed)"))
			}
		})
	}
}
