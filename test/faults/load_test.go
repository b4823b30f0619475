package faults

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
	name string
	// cookies returns the cookies to send; nil while not available yet.
	cookies func() []*http.Cookie
	user    string
	path    string
	// want is the only acceptable status.
	want int
}

// loadCounts counts answers per kind and status; status 0 is a transport
// error.
type loadCounts struct {
	mu sync.Mutex
	m  map[string]map[int]int64
}

func (c *loadCounts) add(kind string, local map[int]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]map[int]int64{}
	}
	if c.m[kind] == nil {
		c.m[kind] = map[int]int64{}
	}
	for code, n := range local {
		c.m[kind][code] += n
	}
}

// TestAuthUnderLoad holds /auth of a standalone challenge server at the
// highest rate this machine gives, for a minute, while the config
// directory is rewritten every few seconds and a keyring key is added:
// remembered users (cookies made with the old key, then with the new one)
// never get anything but 200, nothing gets a 5xx, and the server's memory
// stays flat.
func TestAuthUnderLoad(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
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
	g.Expect(anaCookies).To(ContainElement(HaveField("Name", "mfa_remember")))
	var anaRemembered []*http.Cookie
	for _, c := range anaCookies {
		if c.Name == "mfa_remember" {
			anaRemembered = append(anaRemembered, c)
		}
	}
	var bobCookies atomic.Pointer[[]*http.Cookie]

	kinds := []loadKind{
		{name: "remembered user, key 1, session and remembered cookies", cookies: func() []*http.Cookie { return anaCookies }, user: "ana@example.com", path: "/reports", want: http.StatusOK},
		{name: "remembered user, key 1, remembered cookie only", cookies: func() []*http.Cookie { return anaRemembered }, user: "ana@example.com", path: "/reports", want: http.StatusOK},
		{name: "remembered user, key 2 (after the rotation)", cookies: func() []*http.Cookie {
			if c := bobCookies.Load(); c != nil {
				return *c
			}
			return nil
		}, user: "bob@example.com", path: "/reports", want: http.StatusOK},
		{name: "user without a second factor", cookies: func() []*http.Cookie { return []*http.Cookie{} }, user: "dave@example.com", path: "/reports", want: http.StatusUnauthorized},
		{name: "open path", cookies: func() []*http.Cookie { return []*http.Cookie{} }, user: "dave@example.com", path: "/public/logo.png", want: http.StatusOK},
		{name: "forged cookie", cookies: func() []*http.Cookie {
			return []*http.Cookie{{Name: "mfa_remember", Value: strings.Repeat("A", len(anaRemembered[0].Value))}}
		}, user: "ana@example.com", path: "/reports", want: http.StatusUnauthorized},
	}

	rssIdle := rss(t, srv)
	workers := 8 * runtime.GOMAXPROCS(0)
	transport := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	defer transport.CloseIdleConnections()

	var counts loadCounts
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			local := make([]map[int]int64, len(kinds))
			for i := range local {
				local[i] = map[int]int64{}
			}
			for i := w; !stop.Load(); i++ {
				k := i % len(kinds)
				cookies := kinds[k].cookies()
				if cookies == nil {
					continue
				}
				local[k][authOnce(client, srv.URL, kinds[k], cookies)]++
			}
			for i := range kinds {
				counts.add(kinds[i].name, local[i])
			}
		})
	}

	// The events of the run, from this goroutine.
	hashes := map[string]bool{bundleInForce(t, srv.URL): true}
	var rssWarm int64
	reloads, rotated := 0, false
	tick := time.NewTicker(reloadEvery)
	for time.Since(start) < loadDuration {
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
			bobCookies.Store(&c)
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
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	rssEnd := rss(t, srv)

	var total, bad, fiveXX, transportErrors int64
	for _, k := range kinds {
		for code, n := range counts.m[k.name] {
			total += n
			if code != k.want {
				bad += n
			}
			if code >= 500 {
				fiveXX += n
			}
			if code == 0 {
				transportErrors += n
			}
		}
		t.Logf("%-58s %v (want only %d)", k.name+":", counts.m[k.name], k.want)
	}
	t.Logf("%d requests in %s with %d workers: %.0f requests/s; %d reloads (%d bundles seen), 1 key rotation",
		total, elapsed.Round(time.Millisecond), workers, float64(total)/elapsed.Seconds(), reloads, len(hashes))
	t.Logf("RSS of the challenge server: %.1f MiB idle before, %.1f MiB after warm-up, %.1f MiB at the end",
		mib(rssIdle), mib(rssWarm), mib(rssEnd))

	g.Expect(transportErrors).To(BeZero(), "transport errors")
	g.Expect(fiveXX).To(BeZero(), "5xx answers")
	g.Expect(bad).To(BeZero(), "answers other than the expected one")
	for _, k := range kinds[:3] {
		g.Expect(counts.m[k.name][http.StatusOK]).To(BeNumerically(">", 0), "%s was exercised", k.name)
	}
	g.Expect(rotated).To(BeTrue())
	g.Expect(reloads).To(BeNumerically(">=", 5))
	g.Expect(len(hashes)).To(Equal(reloads + 1))
	g.Expect(rssEnd-rssWarm).To(BeNumerically("<", maxRSSGrowth), "RSS growth during the run")
}

// authOnce asks /auth once and returns the status (0: transport error).
func authOnce(client *http.Client, base string, k loadKind, cookies []*http.Cookie) int {
	req, err := http.NewRequest(http.MethodGet, base+authPath, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("X-Original-URL", rdFor(k.path))
	req.Header.Set("X-Original-Method", http.MethodGet)
	req.Header.Set("X-Real-IP", "198.51.100.7")
	req.Header.Set(userHeader, k.user)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
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
