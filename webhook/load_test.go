package webhook

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
)

// standalonePolicy is an MFAPolicy apps/app for app.example.com whose only
// rule takes action.
func standalonePolicy(action string) string {
	return coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: apps }
spec:
  hosts: [app.example.com]
  identity: { header: {} }
  rules: [{ name: all, when: 'true', action: ` + action + ` }]
`
}

// newStandalone is a server without anything loaded, on a config dir and
// a data dir in t.TempDir().
func newStandalone(t *testing.T) (*coreFixture, string) {
	dir := t.TempDir()
	cfg, data := filepath.Join(dir, "config"), filepath.Join(dir, "data")
	NewWithT(t).Expect(os.Mkdir(cfg, 0o755)).To(Succeed())
	f := &coreFixture{t: t}
	full := newCoreServer(t, "", func(o *Options) { o.Source = &source.Dir{ConfigDir: cfg, DataDir: data, Now: o.Now, Log: o.Logger} })
	// Start from nothing loaded, as a fresh process does.
	s, err := NewServer(full.s.opts)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	f.s, f.clock, f.logs = s, full.clock, full.logs
	return f, cfg
}

func (f *coreFixture) readyz() (int, string) {
	w := f.serve(httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return w.Code, w.Body.String()
}

func (f *coreFixture) appDecision() int {
	return f.serve(authRequest("/auth", "https://app.example.com/", map[string]string{"X-Auth-Request-Email": ana})).Code
}

func TestStandaloneLoadsConfigDirAndGeneratesKeyring(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	code, body := f.readyz()
	g.Expect(code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(body).To(ContainSubstring("no bundle loaded yet"))
	g.Expect(f.appDecision()).To(Equal(http.StatusForbidden)) // nothing loaded: refused, not a 5xx

	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	writeFile(t, filepath.Join(cfg, "notes.txt"), "not read")
	reloadConfigDir(f.s)

	code, body = f.readyz()
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(HavePrefix("ok: bundle "))
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))

	fi, err := os.Stat(filepath.Join(f.s.opts.Source.(*source.Dir).DataDir, source.KeyringFileName))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.Mode().Perm()).To(Equal(os.FileMode(0o600)))
	// The same keyring is read back next time.
	raw, _ := os.ReadFile(filepath.Join(f.s.opts.Source.(*source.Dir).DataDir, source.KeyringFileName))
	again, err := f.s.opts.Source.(*source.Dir).ReadOrCreateKeyring()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(raw))
}

func TestStandaloneWatchReloadsAChangedConfigDir(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.s.watch(ctx) }()
	defer func() { cancel(); <-done }()

	g.Eventually(f.appDecision, 5*time.Second, 20*time.Millisecond).Should(Equal(http.StatusOK))
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Deny")+"\n# changed\n")
	g.Eventually(f.appDecision, 5*time.Second, 20*time.Millisecond).Should(Equal(http.StatusForbidden))
}

func TestStandaloneCorruptConfigKeepsTheLastGood(t *testing.T) {
	tests := []struct {
		name    string
		content string
		warning string
	}{
		{"YAML that does not parse", "kind: [unclosed", "app.yaml"},
		{"an unknown field", strings.Replace(standalonePolicy("Deny"), "hosts:", "hostz:", 1), `unknown field "hostz"`},
		{"an object without kind", "metadata: { name: x }\n", "no kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f, cfg := newStandalone(t)
			writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
			reloadConfigDir(f.s)
			g.Expect(f.appDecision()).To(Equal(http.StatusOK))

			writeFile(t, filepath.Join(cfg, "app.yaml"), tt.content)
			reloadConfigDir(f.s)
			g.Expect(f.appDecision()).To(Equal(http.StatusOK)) // the last good stays
			code, body := f.readyz()
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(body).To(And(ContainSubstring("with warnings"), ContainSubstring(tt.warning)))

			// Fixed: the warning goes.
			writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Deny"))
			reloadConfigDir(f.s)
			g.Expect(f.appDecision()).To(Equal(http.StatusForbidden))
			_, body = f.readyz()
			g.Expect(body).NotTo(ContainSubstring("warning"))
		})
	}
}

func TestStandaloneInvalidPolicyKeepsItsLastGoodVersion(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	reloadConfigDir(f.s)
	// A CEL error in the new version: the object is invalid, logged, and
	// its previous version stays in force.
	writeFile(t, filepath.Join(cfg, "app.yaml"), strings.Replace(standalonePolicy("Deny"), "'true'", "'request.hots == 1'", 1))
	reloadConfigDir(f.s)
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))
	g.Expect(f.logs.String()).To(And(ContainSubstring("MFAPolicy is not valid"), ContainSubstring("spec.rules[0].when")))
}

func TestBundleSecretThatDoesNotCompileIsRefusedWhole(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, "")
	good := bundleFromYAML(t, standalonePolicy("Allow"))
	data, hash, err := good.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	secret := func(data []byte, hash string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.BundleSecretName, Namespace: "mfa-system"},
			Data: map[string][]byte{policy.BundleKey: data, policy.BundleHashKey: []byte(hash)}}
	}
	code, _ := f.readyz()
	g.Expect(code).To(Equal(http.StatusServiceUnavailable)) // a keyring but no bundle yet

	source.ApplySecret(f.s.config, secret(data, hash))
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))

	// A bundle whose second policy does not compile: nothing of it is used.
	bad := bundleFromYAML(t, standalonePolicy("Deny"))
	broken := bad.Policies[0]
	broken.Name = "broken"
	broken.Spec.Hosts = nil
	broken.Spec.Rules = append(broken.Spec.Rules[:0:0], broken.Spec.Rules...)
	broken.Spec.Rules[0].When = "request.hots"
	bad.Policies = append(bad.Policies, broken)
	badData, badHash, err := bad.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	source.ApplySecret(f.s.config, secret(badData, badHash))
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))
	code, body := f.readyz()
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(And(ContainSubstring("with warnings"), ContainSubstring("MFAPolicy apps/broken"), ContainSubstring("spec.rules[0].when")))

	// Not JSON at all.
	source.ApplySecret(f.s.config, secret([]byte("{not json"), "x"))
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))
	_, body = f.readyz()
	g.Expect(body).To(ContainSubstring("decoding bundle"))
}

func TestKeyringThatDoesNotParseIsRefused(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, standalonePolicy("Allow"))
	source.ApplySecret(f.s.config, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.KeyringSecretName, Namespace: "mfa-system"},
		Data: map[string][]byte{policy.KeyringKey: []byte(`{"symmetricKeys":[],"signingKeys":[]}`)}})
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))
	code, body := f.readyz()
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("keyring from Secret mfa-system/mfa-keyring refused: keyring has no symmetric key"))
}

func TestHealthz(t *testing.T) {
	g := NewWithT(t)
	f, _ := newStandalone(t)
	w := f.serve(httptest.NewRequest(http.MethodGet, "/healthz", nil))
	g.Expect(w.Code).To(Equal(http.StatusOK))
}

func TestServeAnswersUntilCancelledThenShutsDown(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.s.serve(ctx, ln, metricsLn) }()

	url := "http://" + ln.Addr().String()
	metricsURL := "http://" + metricsLn.Addr().String()
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	g.Eventually(func() int { return get(url + "/readyz") }, 10*time.Second, 20*time.Millisecond).Should(Equal(http.StatusOK))

	// Bodies are bounded.
	resp, err := http.Post(url+"/auth/apps/app", "text/plain", strings.NewReader(strings.Repeat("x", maxBodyBytes+1)))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusRequestEntityTooLarge))

	// Metrics are served on their own listener, and only there.
	g.Expect(get(metricsURL + "/metrics")).To(Equal(http.StatusOK))
	g.Expect(get(url + "/metrics")).To(Equal(http.StatusNotFound))
	g.Expect(get(metricsURL + "/readyz")).To(Equal(http.StatusNotFound))
	g.Expect(get(metricsURL + "/auth/apps/app")).To(Equal(http.StatusNotFound))

	cancel()
	g.Eventually(done, 15*time.Second).Should(Receive(BeNil()))
	_, err = http.Get(url + "/healthz")
	g.Expect(err).To(HaveOccurred())
	_, err = http.Get(metricsURL + "/metrics")
	g.Expect(err).To(HaveOccurred(), "the metrics listener stops with the server")
}

func TestListenOpensAMetricsListenerOnlyWhenAsked(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	defer taken.Close()
	for _, tt := range []struct {
		metricsAddr string
		want        bool
		err         string
	}{
		{"", false, ""},
		{"0", false, ""},
		{"127.0.0.1:0", true, ""},
		{taken.Addr().String(), false, "(--metrics-addr)"},
	} {
		t.Run(strconv.Quote(tt.metricsAddr), func(t *testing.T) {
			g := NewWithT(t)
			f, _ := newStandalone(t)
			f.s.opts.ListenAddr, f.s.opts.MetricsAddr = "127.0.0.1:0", tt.metricsAddr
			ln, metricsLn, err := f.s.listen()
			if tt.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			defer ln.Close()
			g.Expect(metricsLn != nil).To(Equal(tt.want))
			if metricsLn != nil {
				metricsLn.Close()
			}
		})
	}
}
