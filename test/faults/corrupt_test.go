//go:build e2e

package faults

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// readyz returns the challenge server's /readyz status and body.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET %s/readyz: %v", base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s/readyz: %v", base, err)
	}
	return resp.StatusCode, string(b)
}

var bundleInForceRE = regexp.MustCompile(`bundle ([0-9a-f]{12})`)

// bundleInForce is the short hash /readyz names.
func bundleInForce(t *testing.T, base string) string {
	t.Helper()
	_, body := readyz(t, base)
	m := bundleInForceRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/readyz names no bundle:\n%s", body)
	}
	return m[1]
}

// secretData reads the data of a Secret of the operator's namespace.
func secretData(t *testing.T, env *harness.Env, name string) map[string]string {
	t.Helper()
	out := env.MustKubectl(t, "", "-n", env.Setting("DEMO_NAMESPACE"), "get", "secret", name, "-o", "jsonpath={.data}")
	data := map[string]string{}
	if err := json.Unmarshal([]byte(out), &data); err != nil {
		t.Fatalf("Secret %s data: %v\n%s", name, err, out)
	}
	return data
}

// setSecretData replaces a Secret's data (values are plain, not base64).
func setSecretData(t *testing.T, env *harness.Env, name string, plain map[string]string) {
	t.Helper()
	enc := map[string]string{}
	for k, v := range plain {
		enc[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	patch, _ := json.Marshal([]map[string]any{{"op": "replace", "path": "/data", "value": enc}})
	env.MustKubectl(t, "", "-n", env.Setting("DEMO_NAMESPACE"), "patch", "secret", name, "--type=json", "-p", string(patch))
}

// restoreSecretData puts back data read by secretData (base64 values).
func restoreSecretData(t *testing.T, env *harness.Env, name string, data map[string]string) {
	t.Helper()
	patch, _ := json.Marshal([]map[string]any{{"op": "replace", "path": "/data", "value": data}})
	env.MustKubectl(t, "", "-n", env.Setting("DEMO_NAMESPACE"), "patch", "secret", name, "--type=json", "-p", string(patch))
}

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCorruptSecrets writes broken bundle and keyring Secrets with
// kubectl: the challenge server refuses each, keeps the last good one in
// force (remembered users pass, others are challenged) and says so on
// /readyz; the controller, started again, writes the same bundle back.
func TestCorruptSecrets(t *testing.T) {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller, harness.Webhook}})
	wh := env.WebhookURL
	g := NewWithT(t)
	env.Apply(t, namespaceYAML+objectsYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
	waitForPolicy(t, wh)
	ana := newBrowser("ana@example.com")
	ana.enrol(t, wh)
	goodBundle := secretData(t, env, "mfa-bundle")
	goodKeyring := secretData(t, env, "mfa-keyring")
	goodHash := decodeB64(t, goodBundle["hash"])
	eventually(t, time.Minute, "the challenge server on the controller's bundle", func() bool {
		return bundleInForce(t, wh) == goodHash[:12]
	})
	// The controller would write the bundle back at once: stop it while
	// the Secrets are broken by hand.
	env.Stop(t, harness.Controller)

	// stillServing checks that the last good configuration is in force.
	stillServing := func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(ana.auth(t, wh, "/reports").Status).To(Equal(http.StatusOK), "a remembered user passes")
		p := newBrowser("dave@example.com").auth(t, wh, "/reports")
		g.Expect(p.Status).To(Equal(http.StatusUnauthorized), "another user is challenged")
		g.Expect(p.Header.Get("Location")).To(HavePrefix(env.URL + policyPath))
		g.Expect(newBrowser("dave@example.com").challenge(t, wh, rdFor("/reports")).Status).To(Equal(http.StatusOK), "the challenge page works")
		g.Expect(bundleInForce(t, wh)).To(Equal(goodHash[:12]))
	}
	// refused waits until /readyz reports the refusal, then checks that
	// nothing else changed.
	refused := func(t *testing.T, want string) {
		t.Helper()
		var body string
		eventually(t, time.Minute, "/readyz to report "+want, func() bool {
			_, body = readyz(t, wh)
			return strings.Contains(body, want)
		})
		code, body := readyz(t, wh)
		NewWithT(t).Expect(code).To(Equal(http.StatusOK), body)
		NewWithT(t).Expect(body).To(HavePrefix("ok, with warnings: serving the last good configuration (bundle " + goodHash[:12] + ")"))
		t.Logf("/readyz: %s", strings.TrimSpace(body))
		stillServing(t)
	}
	// healed waits until /readyz has no warning left.
	healed := func(t *testing.T) {
		t.Helper()
		eventually(t, time.Minute, "/readyz without warnings", func() bool {
			_, body := readyz(t, wh)
			return !strings.Contains(body, "warning")
		})
		stillServing(t)
	}

	missingShard := `{"buckets":1,"shards":[{"name":"mfa-bundle-00000000000000aa","bucket":0,"sha256":"00000000000000aa` + strings.Repeat("0", 48) + `","policies":1}],"providers":[]}`
	brokenPolicy := `{"policies":[{"namespace":"apps","name":"admin","spec":{"identity":{"header":{}},"rules":[{"name":"r","when":"request.hots == 1","action":"Allow"}]}}],"providers":[]}`
	for _, tc := range []struct {
		name  string
		data  map[string]string
		words string
	}{
		{"bundle that is not JSON", map[string]string{"bundle.json": "{not json", "hash": "x"},
			"warning: Secret mfa-system/mfa-bundle refused: decoding bundle: invalid character 'n'"},
		{"bundle whose policy does not compile", map[string]string{"bundle.json": brokenPolicy, "hash": "y"},
			`warning: bundle from Secret mfa-system/mfa-bundle refused: MFAPolicy apps/admin: rule "r" (spec.rules[0].when): ERROR: <input>:1:8: undefined field 'hots'`},
		{"bundle Secret without manifest.json or bundle.json", map[string]string{"hash": goodHash},
			`warning: Secret mfa-system/mfa-bundle has no key "manifest.json" (nor "bundle.json", the single-key form)`},
		{"bundle manifest truncated", map[string]string{"manifest.json": decodeB64(t, goodBundle["manifest.json"])[:40], "hash": "z"},
			"warning: Secret mfa-system/mfa-bundle refused: decoding the bundle manifest: unexpected end of JSON input"},
		{"bundle manifest naming a shard that does not exist", map[string]string{"manifest.json": missingShard, "hash": "w"},
			`warning: Secret mfa-system/mfa-bundle refused: bundle shard mfa-bundle-00000000000000aa (1 policies): secrets "mfa-bundle-00000000000000aa" not found`},
	} {
		t.Run(tc.name+" is refused, the last good one stays", func(t *testing.T) {
			setSecretData(t, env, "mfa-bundle", tc.data)
			defer func() {
				restoreSecretData(t, env, "mfa-bundle", goodBundle)
				healed(t)
			}()
			refused(t, tc.words)
		})
	}

	t.Run("bundle Secret deleted: the last good one stays", func(t *testing.T) {
		env.MustKubectl(t, "", "-n", env.Setting("DEMO_NAMESPACE"), "delete", "secret", "mfa-bundle")
		refused(t, "warning: Secret mfa-system/mfa-bundle not found; the controller writes it")
	})

	for _, tc := range []struct {
		name  string
		data  map[string]string
		words string
	}{
		{"keyring that is not JSON", map[string]string{"keyring.json": "]["},
			"warning: keyring from Secret mfa-system/mfa-keyring refused: decoding keyring: invalid character ']'"},
		{"keyring without keys", map[string]string{"keyring.json": `{"symmetricKeys":[],"signingKeys":[]}`},
			"warning: keyring from Secret mfa-system/mfa-keyring refused: keyring has no symmetric key"},
		{"keyring with a short key", map[string]string{"keyring.json": `{"symmetricKeys":[{"id":"k","secret":"c2hvcnQ="}],"signingKeys":[{"id":"s","privateKeyPEM":"x"}]}`},
			`warning: keyring from Secret mfa-system/mfa-keyring refused: keyring symmetric key "k" is 5 bytes, want 32`},
		{"keyring Secret without keyring.json", map[string]string{"other": "x"},
			`warning: Secret mfa-system/mfa-keyring has no key "keyring.json"`},
	} {
		t.Run(tc.name+" is refused, the last good one stays", func(t *testing.T) {
			setSecretData(t, env, "mfa-keyring", tc.data)
			defer func() {
				restoreSecretData(t, env, "mfa-keyring", goodKeyring)
				// The bundle Secret is still deleted: its warning stays.
				eventually(t, time.Minute, "the keyring warning gone", func() bool {
					_, body := readyz(t, wh)
					return !strings.Contains(body, "mfa-keyring")
				})
				stillServing(t)
			}()
			refused(t, tc.words)
		})
	}

	t.Run("the controller started again writes the same bundle back", func(t *testing.T) {
		g := NewWithT(t)
		env.Restart(harness.Controller)
		eventually(t, time.Minute, "the bundle Secret written again", func() bool {
			out, err := env.Kubectl("", "-n", env.Setting("DEMO_NAMESPACE"), "get", "secret", "mfa-bundle", "-o", "jsonpath={.data.hash}")
			return err == nil && out != ""
		})
		g.Expect(decodeB64(t, secretData(t, env, "mfa-bundle")["hash"])).To(Equal(goodHash))
		healed(t)
	})

	t.Run("a bundle broken while the controller runs is repaired, and the server never stops serving", func(t *testing.T) {
		g := NewWithT(t)
		var stop atomic.Bool
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		wg.Go(func() {
			b := newBrowser("ana@example.com")
			for _, c := range ana.jar.Cookies(mustParseURL(wh)) {
				setCookie(b, wh, c.Name, c.Value)
			}
			for !stop.Load() {
				p, err := b.tryAuth(wh, "/reports")
				mu.Lock()
				if err != nil {
					codes[0]++
				} else {
					codes[p.Status]++
				}
				mu.Unlock()
			}
		})
		setSecretData(t, env, "mfa-bundle", map[string]string{"bundle.json": "{not json", "hash": "x"})
		eventually(t, time.Minute, "the controller repairing the bundle", func() bool {
			return decodeB64(t, secretData(t, env, "mfa-bundle")["hash"]) == goodHash
		})
		healed(t)
		stop.Store(true)
		wg.Wait()
		t.Logf("ana's /auth answers while the bundle was broken and repaired: %v", codes)
		g.Expect(codes).To(HaveLen(1))
		g.Expect(codes).To(HaveKey(http.StatusOK))
	})
	g.Expect(bundleInForce(t, wh)).To(Equal(goodHash[:12]))
}
