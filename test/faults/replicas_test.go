//go:build e2e

package faults

import (
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// maxFailures is the lockout the replicas here are configured with (the
// default is 5: a different number shows the setting is what counts).
const maxFailures = 4

var lockoutFlags = []string{"--lockout-max-failures=4", "--lockout-window=5m", "--lockout-duration=5m"}

// startClusterReplicas runs the control plane and the controller, applies
// the objects, and starts three challenge servers in cluster mode sharing
// the Secret store.
func startClusterReplicas(t *testing.T, objects string) []string {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller}})
	env.Apply(t, namespaceYAML+objects)
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfaprovider/duo", "mfapolicy/admin")
	var servers []string
	for _, name := range []string{"replica-a", "replica-b", "replica-c"} {
		servers = append(servers, env.StartWebhookReplica(t, name, lockoutFlags...).URL)
	}
	waitForPolicy(t, servers...)
	return servers
}

// startStandalone runs one standalone challenge server (file store); the
// same process stands for the three "replicas", so requests race as
// concurrent goroutines on one bbolt file.
func startStandalone(t *testing.T, objects string) []string {
	dir := t.TempDir()
	configDir, dataDir := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	NewWithT(t).Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	NewWithT(t).Expect(os.WriteFile(filepath.Join(configDir, "objects.yaml"), []byte(objects), 0o600)).To(Succeed())
	p := harness.StartWebhook(t, harness.WebhookOptions{Name: "standalone", ConfigDir: configDir, DataDir: dataDir, Flags: lockoutFlags})
	waitForPolicy(t, p.URL)
	return []string{p.URL, p.URL, p.URL}
}

// waitForPolicy waits until every server has apps/admin in force: a user
// without a cookie is sent to the challenge (401), not refused (403).
func waitForPolicy(t *testing.T, servers ...string) {
	t.Helper()
	b := newBrowser("nobody@example.com")
	for _, s := range servers {
		eventually(t, time.Minute, "apps/admin in force on "+s, func() bool {
			p, err := b.tryAuth(s, "/reports")
			return err == nil && p.Status == http.StatusUnauthorized
		})
	}
}

// TestReplicas: several challenge servers on one store behave as one.
// Codes and approved Duo pushes are accepted once, failures are all
// counted, an enrolment is seen everywhere at once. The same checks run
// against the standalone server's file store with concurrent requests.
func TestReplicas(t *testing.T) {
	ds := newDuoServer(t)
	objects := objectsYAML(duoRule) + duoObjectsYAML(ds)
	for _, d := range []struct {
		name  string
		start func(t *testing.T, objects string) []string
	}{
		{"cluster mode, three replicas sharing the Secret store", startClusterReplicas},
		{"standalone, one process and its file store, concurrent requests", startStandalone},
	} {
		t.Run(d.name, func(t *testing.T) {
			servers := d.start(t, objects)
			t.Run("an enrolment made on one is honoured by the others at once", func(t *testing.T) {
				testEnrolmentSeenEverywhere(t, servers)
			})
			t.Run("the same code submitted to all at once is accepted exactly once", func(t *testing.T) {
				testSameCodeAcceptedOnce(t, servers)
			})
			t.Run("failed attempts spread over all lock the user after the configured count", func(t *testing.T) {
				testSpreadFailuresLock(t, servers)
			})
			t.Run("concurrent failed attempts spread over all are each counted", func(t *testing.T) {
				testConcurrentFailuresCounted(t, servers)
			})
			t.Run("an approved Duo push completed on one is refused by the others", func(t *testing.T) {
				testDuoPushCompletedOnceIsRefusedElsewhere(t, servers)
			})
			t.Run("an approved Duo push sent to all at once issues exactly one session", func(t *testing.T) {
				testDuoPushRacedIssuesOneSession(t, servers)
			})
		})
	}
}

func testEnrolmentSeenEverywhere(t *testing.T, servers []string) {
	g := NewWithT(t)
	carol := newBrowser("carol@example.com")
	_, recovery := carol.enrol(t, servers[0])
	for _, s := range servers {
		// No wait: the enrolment is in the store the moment it is confirmed.
		g.Expect(carol.auth(t, s, "/reports").Status).To(Equal(http.StatusOK), "carol's cookie on %s", s)
		other := newBrowser("carol@example.com")
		other.verifyForm(t, s)
	}
	// A recovery code used on one replica is spent on all.
	first := newBrowser("carol@example.com")
	p := first.challenge(t, servers[1], rdFor("/reports"))
	p = first.submit(t, servers[1], recoveryForm(t, first, servers[1], p), map[string]string{"code": recovery[0]})
	g.Expect(outcome(p)).To(Equal("accepted"), "%s", p.Body)
	second := newBrowser("carol@example.com")
	p = second.challenge(t, servers[2], rdFor("/reports"))
	p = second.submit(t, servers[2], recoveryForm(t, second, servers[2], p), map[string]string{"code": recovery[0]})
	g.Expect(p.Status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(p.Body).To(ContainSubstring("That recovery code is not valid, or it was already used."))
}

// recoveryForm follows the code page's link to the recovery code form.
func recoveryForm(t *testing.T, b *browser, base string, p *harness.Page) harness.Form {
	t.Helper()
	link := p.Link("recovery code")
	if link == "" {
		t.Fatalf("no recovery code link on the page:\n%s", p.Body)
	}
	req, err := http.NewRequest(http.MethodGet, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req).FormWith(t, "code")
}

// racers per server: every server gets several submissions of the code.
const racersPerServer = 4

func testSameCodeAcceptedOnce(t *testing.T, servers []string) {
	totals := map[string]int{}
	for _, user := range []string{"ana@example.com", "dan@example.com", "eve@example.com"} {
		g := NewWithT(t)
		otp, _ := newBrowser(user).enrol(t, servers[0])
		n := racersPerServer * len(servers)
		browsers := make([]*browser, n)
		forms := make([]harness.Form, n)
		for i := range browsers {
			browsers[i] = newBrowser(user)
			forms[i] = browsers[i].verifyForm(t, servers[i%len(servers)])
		}
		code, _ := otp.NextCode(t)
		outcomes := make([]string, n)
		race(n, func(i int) {
			s := servers[i%len(servers)]
			outcomes[i] = outcome(browsers[i].submit(t, s, forms[i], map[string]string{"code": code}))
		})
		counts := map[string]int{}
		for _, o := range outcomes {
			counts[o]++
			totals[o]++
		}
		t.Logf("%s: %d submissions of one code: %v", user, n, counts)
		g.Expect(counts["accepted"]).To(Equal(1), "accepted exactly once: %v", outcomes)
		// Every other submission is a reuse or, past the lockout, locked; a
		// writer that lost the compare-and-swap race too often is asked to
		// try again, with nothing written.
		g.Expect(counts["reused"]+counts["locked"]+counts["try-again"]).To(Equal(n-1), "%v", outcomes)
		// The one accepted browser is let in; the others are not.
		in := 0
		for i, b := range browsers {
			if b.auth(t, servers[i%len(servers)], "/reports").Status == http.StatusOK {
				in++
			}
		}
		g.Expect(in).To(Equal(1))
	}
	t.Logf("totals over 3 users: %v", totals)
}

func testSpreadFailuresLock(t *testing.T, servers []string) {
	g := NewWithT(t)
	otp, _ := newBrowser("bob@example.com").enrol(t, servers[0])
	code, _ := otp.NextCode(t)
	for i := range maxFailures {
		s := servers[i%len(servers)]
		b := newBrowser("bob@example.com")
		p := b.submit(t, s, b.verifyForm(t, s), map[string]string{"code": wrongCode(code)})
		want := "invalid"
		if i == maxFailures-1 {
			want = "locked"
		}
		g.Expect(outcome(p)).To(Equal(want), "failure %d on %s", i+1, s)
	}
	// Locked everywhere: the right code is not even checked.
	for _, s := range servers {
		b := newBrowser("bob@example.com")
		p := b.submit(t, s, b.verifyForm(t, s), map[string]string{"code": code})
		g.Expect(outcome(p)).To(Equal("locked"), "the right code on %s while locked", s)
		g.Expect(p.Header.Get("Retry-After")).NotTo(BeEmpty())
		g.Expect(b.auth(t, s, "/reports").Status).To(Equal(http.StatusUnauthorized))
	}
}

func testConcurrentFailuresCounted(t *testing.T, servers []string) {
	g := NewWithT(t)
	otp, _ := newBrowser("frank@example.com").enrol(t, servers[0])
	code, _ := otp.NextCode(t)
	n := 3 * len(servers)
	browsers := make([]*browser, n)
	forms := make([]harness.Form, n)
	for i := range browsers {
		browsers[i] = newBrowser("frank@example.com")
		forms[i] = browsers[i].verifyForm(t, servers[i%len(servers)])
	}
	var mu sync.Mutex
	counts := map[string]int{}
	race(n, func(i int) {
		// Different wrong codes, so that none is a reuse of another.
		wrong := []byte(code)
		wrong[len(wrong)-1] = '0' + byte(i%10)
		if string(wrong) == code {
			wrong[0] = '0' + (wrong[0]-'0'+1)%10
		}
		o := outcome(browsers[i].submit(t, servers[i%len(servers)], forms[i], map[string]string{"code": string(wrong)}))
		mu.Lock()
		counts[o]++
		mu.Unlock()
	})
	t.Logf("%d concurrent wrong codes: %v", n, counts)
	// Each failure is counted: exactly maxFailures-1 are refused as wrong
	// before the one that locks; the rest find the user locked (or, having
	// lost the compare-and-swap race too often, are asked to try again,
	// with nothing written).
	g.Expect(counts["invalid"]).To(Equal(maxFailures-1), "%v", counts)
	g.Expect(counts["locked"]+counts["try-again"]).To(Equal(n-maxFailures+1), "%v", counts)
	g.Expect(counts["locked"]).To(BeNumerically(">=", 1), "%v", counts)
	for _, s := range servers {
		b := newBrowser("frank@example.com")
		p := b.submit(t, s, b.verifyForm(t, s), map[string]string{"code": code})
		g.Expect(outcome(p)).To(Equal("locked"), "the right code on %s while locked", s)
	}
}
