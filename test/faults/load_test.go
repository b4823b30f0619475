//go:build e2e

package faults

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

const (
	// loadDuration is how long /auth is held under load.
	loadDuration = 60 * time.Second
	// reloadEvery: the config directory is rewritten this often.
	reloadEvery = 5 * time.Second
	// rotateAt: a keyring key is added this far into the run.
	rotateAt = 20 * time.Second
	// maxRSSGrowth bounds how much the server's resident memory may grow
	// between the end of the warm-up and the end of the run.
	maxRSSGrowth = 64 << 20
)

// maintenanceRule is the rule each reload changes: a different name and
// path each time, never a path the load asks for.
func maintenanceRule(n int) string {
	return fmt.Sprintf(`  - name: maintenance-%d
    when: request.path.startsWith("/maintenance/%d")
    action: Deny
`, n, n)
}

// loadKind is one kind of auth request of the load, and what it must get.
type loadKind struct {
	name    string
	user    string
	path    string
	cookies []*http.Cookie
	// want is the only acceptable status.
	want int
	// after: the kind starts once the keyring rotated.
	after bool
}

// countingScript makes wrk count the answers by status, over all its
// threads, and print them with its socket errors when done.
const countingScript = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("socket-errors %d\n", e.connect + e.read + e.write + e.timeout))
end
`

// wrkRun is one wrk process sending one kind of request.
type wrkRun struct {
	kind *loadKind
	cmd  *exec.Cmd
	out  bytes.Buffer
	// counts by status; -1 counts socket errors.
	counts map[int]int64
}

// startWrk runs wrk against /auth for d with the headers of kind k.
func startWrk(t *testing.T, wrk, script, base string, k *loadKind, d time.Duration, connections int) *wrkRun {
	t.Helper()
	args := []string{"-t1", "-c" + strconv.Itoa(connections), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "--timeout", "5s", "-s", script,
		"-H", "X-Original-URL: " + rdFor(k.path), "-H", "X-Original-Method: GET", "-H", "X-Forwarded-For: 198.51.100.7", "-H", userHeader + ": " + k.user}
	if len(k.cookies) > 0 {
		var parts []string
		for _, c := range k.cookies {
			parts = append(parts, c.Name+"="+c.Value)
		}
		args = append(args, "-H", "Cookie: "+strings.Join(parts, "; "))
	}
	r := &wrkRun{kind: k, cmd: exec.Command(wrk, append(args, base+authPath)...)}
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting wrk: %v", err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

// wait waits for wrk to finish and reads its counts.
func (r *wrkRun) wait(t *testing.T) {
	t.Helper()
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("wrk (%s): %v\n%s", r.kind.name, err, r.out.String())
	}
	r.counts = map[int]int64{}
	for _, line := range strings.Split(r.out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "status":
			code, _ := strconv.Atoi(f[1])
			n, _ := strconv.ParseInt(f[2], 10, 64)
			r.counts[code] += n
		case len(f) == 2 && f[0] == "socket-errors":
			if n, _ := strconv.ParseInt(f[1], 10, 64); n > 0 {
				r.counts[-1] = n
			}
		}
	}
	if len(r.counts) == 0 {
		t.Fatalf("wrk (%s) reported nothing:\n%s", r.kind.name, r.out.String())
	}
}

// TestAuthUnderLoad holds /auth of a standalone challenge server at the
// highest rate this machine gives (wrk, one process per kind of request)
// for a minute, while the config directory is rewritten every few seconds
// and a keyring key is added: remembered users (cookies made with the old
// key, then with the new one) never get anything but 200, nothing gets a
// 5xx, and the server's memory stays flat.
func TestAuthUnderLoad(t *testing.T) {
	g := NewWithT(t)
	wrk := harness.RequireBinary(t, "wrk")
	dir := t.TempDir()
	script := filepath.Join(dir, "count.lua")
	g.Expect(os.WriteFile(script, []byte(countingScript), 0o600)).To(Succeed())
	configDir, dataDir := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	g.Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	objects := filepath.Join(configDir, "objects.yaml")
	writeConfig := func(n int) {
		tmp := objects + ".tmp"
		g.Expect(os.WriteFile(tmp, []byte(objectsYAML(maintenanceRule(n))), 0o600)).To(Succeed())
		g.Expect(os.Rename(tmp, objects)).To(Succeed())
	}
	writeConfig(0)
	srv := harness.StartWebhook(t, harness.WebhookOptions{Name: "standalone-load", ConfigDir: configDir, DataDir: dataDir, Flags: []string{"--log-level=warn"}})
	waitForPolicy(t, srv.URL)

	ana := newBrowser("ana@example.com")
	ana.enrol(t, srv.URL)
	anaCookies := ana.jar.Cookies(mustParseURL(srv.URL))
	var anaRemembered []*http.Cookie
	for _, c := range anaCookies {
		if c.Name == "mfa_remember" {
			anaRemembered = append(anaRemembered, c)
		}
	}
	g.Expect(anaRemembered).To(HaveLen(1))

	kinds := []*loadKind{
		{name: "remembered user, key 1, session and remembered cookies", user: "ana@example.com", path: "/reports", cookies: anaCookies, want: http.StatusOK},
		{name: "remembered user, key 1, remembered cookie only", user: "ana@example.com", path: "/reports", cookies: anaRemembered, want: http.StatusOK},
		{name: "remembered user, key 2 (from the rotation on)", user: "bob@example.com", path: "/reports", want: http.StatusOK, after: true},
		{name: "user without a second factor", user: "dave@example.com", path: "/reports", want: http.StatusUnauthorized},
		{name: "open path", user: "dave@example.com", path: "/public/logo.png", want: http.StatusOK},
		{name: "forged cookie", user: "ana@example.com", path: "/reports", want: http.StatusUnauthorized,
			cookies: []*http.Cookie{{Name: "mfa_remember", Value: strings.Repeat("A", len(anaRemembered[0].Value))}}},
	}
	connections := 4 * runtime.GOMAXPROCS(0)

	rssIdle := rss(t, srv)
	start := time.Now()
	var runs []*wrkRun
	for _, k := range kinds {
		if !k.after {
			runs = append(runs, startWrk(t, wrk, script, srv.URL, k, loadDuration, connections))
		}
	}

	// The events of the run, from this goroutine.
	hashes := map[string]bool{bundleInForce(t, srv.URL): true}
	var rssWarm int64
	reloads, rotated := 0, false
	tick := time.NewTicker(reloadEvery)
	for time.Since(start) < loadDuration-reloadEvery {
		<-tick.C
		if rssWarm == 0 {
			rssWarm = rss(t, srv)
		}
		if !rotated && time.Since(start) >= rotateAt {
			rotated = true
			newKey := rotateKeyring(t, srv.URL, filepath.Join(dataDir, "keyring.json"))
			bob := newBrowser("bob@example.com")
			bob.enrol(t, srv.URL)
			c := bob.jar.Cookies(mustParseURL(srv.URL))
			g.Expect(sealedWithKey(t, c, "mfa_remember")).To(Equal(newKey), "bob's cookie is sealed with the new key")
			g.Expect(sealedWithKey(t, anaCookies, "mfa_remember")).NotTo(Equal(newKey), "ana's cookie was sealed with the old key")
			kinds[2].cookies = c
			runs = append(runs, startWrk(t, wrk, script, srv.URL, kinds[2], loadDuration-time.Since(start), connections))
			t.Logf("%s: keyring key %s added in front; bob enrolled under load", time.Since(start).Round(time.Second), newKey)
			continue
		}
		reloads++
		before := bundleInForce(t, srv.URL)
		writeConfig(reloads)
		eventually(t, 30*time.Second, "the rewritten config directory in force", func() bool {
			return bundleInForce(t, srv.URL) != before
		})
		hashes[bundleInForce(t, srv.URL)] = true
	}
	tick.Stop()
	for _, r := range runs {
		r.wait(t)
	}
	elapsed := time.Since(start)
	rssEnd := rss(t, srv)

	var total, bad, fiveXX, socketErrors int64
	for _, r := range runs {
		for code, n := range r.counts {
			total += n
			switch {
			case code == -1:
				socketErrors += n
			case code >= 500:
				fiveXX += n
			}
			if code != r.kind.want {
				bad += n
			}
		}
		t.Logf("%-58s %v (want only %d)", r.kind.name+":", r.counts, r.kind.want)
	}
	t.Logf("%d answers in %s from %d wrk processes of %d connections each: %.0f requests/s; %d reloads (%d bundles seen), 1 key rotation",
		total, elapsed.Round(time.Millisecond), len(runs), connections, float64(total)/elapsed.Seconds(), reloads, len(hashes))
	t.Logf("RSS of the challenge server: %.1f MiB idle before, %.1f MiB after warm-up, %.1f MiB at the end",
		mib(rssIdle), mib(rssWarm), mib(rssEnd))

	g.Expect(socketErrors).To(BeZero(), "socket errors (connect, read, write, timeout)")
	g.Expect(fiveXX).To(BeZero(), "5xx answers")
	g.Expect(bad).To(BeZero(), "answers other than the expected one")
	g.Expect(runs).To(HaveLen(len(kinds)))
	g.Expect(rotated).To(BeTrue())
	g.Expect(reloads).To(BeNumerically(">=", 5))
	g.Expect(len(hashes)).To(Equal(reloads + 1))
	g.Expect(rssEnd-rssWarm).To(BeNumerically("<", maxRSSGrowth), "RSS growth during the run")
}

// rotateKeyring adds a symmetric and a signing key in front of the
// standalone server's keyring file, as an operator rotating keys does, and
// waits until the server publishes the new signing key. It returns the new
// symmetric key's id.
func rotateKeyring(t *testing.T, base, path string) string {
	t.Helper()
	g := NewWithT(t)
	raw, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	var d keyring.Data
	g.Expect(json.Unmarshal(raw, &d)).To(Succeed())
	g.Expect(d.AddSymmetricKey(time.Now())).To(Succeed())
	g.Expect(d.AddSigningKey(time.Now())).To(Succeed())
	out, err := d.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(path+".tmp", out, 0o600)).To(Succeed())
	g.Expect(os.Rename(path+".tmp", path)).To(Succeed())
	eventually(t, 30*time.Second, "the new signing key published", func() bool {
		resp, err := http.Get(base + "/.well-known/jwks.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var jwks struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		return json.NewDecoder(resp.Body).Decode(&jwks) == nil && len(jwks.Keys) == 2 && jwks.Keys[0].Kid == d.SigningKeys[0].ID
	})
	return d.SymmetricKeys[0].ID
}

// sealedWithKey returns the id of the keyring key that sealed a cookie
// (the sealed form starts with the key id's length and bytes).
func sealedWithKey(t *testing.T, cookies []*http.Cookie, name string) string {
	t.Helper()
	for _, c := range cookies {
		if c.Name != name {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(c.Value)
		if err != nil || len(b) < 1 || len(b) < 1+int(b[0]) {
			t.Fatalf("cookie %s is not a sealed value", name)
		}
		return hex.EncodeToString(b[1 : 1+int(b[0])])
	}
	t.Fatalf("no cookie %s", name)
	return ""
}

func rss(t *testing.T, p *harness.WebhookProcess) int64 {
	t.Helper()
	n, err := harness.RSS(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
