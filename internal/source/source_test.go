package source

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// recorder is a Sink that keeps what it is given.
type recorder struct {
	mu       sync.Mutex
	bundles  []*policy.Bundle
	hashes   []string
	keyrings [][]byte
	refused  []error
}

func (r *recorder) ApplyBundle(b *policy.Bundle, hash, origin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bundles, r.hashes = append(r.bundles, b), append(r.hashes, hash)
	return nil
}

func (r *recorder) ApplyKeyring(raw []byte, origin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keyrings = append(r.keyrings, raw)
	return nil
}

func (r *recorder) RefuseBundle(err error) {
	r.mu.Lock()
	r.refused = append(r.refused, err)
	r.mu.Unlock()
}
func (r *recorder) RefuseKeyring(err error) {
	r.mu.Lock()
	r.refused = append(r.refused, err)
	r.mu.Unlock()
}

func (r *recorder) last() (*policy.Bundle, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bundles) == 0 {
		return nil, 0, len(r.refused)
	}
	return r.bundles[len(r.bundles)-1], len(r.bundles), len(r.refused)
}

func policyYAML(action, when string) string {
	return `
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app }
spec:
  hosts: [app.example.com]
  identity: { header: {} }
  rules: [{ name: all, when: '` + when + `', action: ` + action + ` }]
`
}

func newDir(t *testing.T) (*Dir, *bytes.Buffer) {
	dir := t.TempDir()
	logs := &bytes.Buffer{}
	d := &Dir{ConfigDir: filepath.Join(dir, "config"), DataDir: filepath.Join(dir, "data"), Log: slog.New(slog.NewTextHandler(logs, nil))}
	NewWithT(t).Expect(os.Mkdir(d.ConfigDir, 0o755)).To(Succeed())
	return d, logs
}

func TestDirBuildsTheBundleAndGeneratesTheKeyringOnce(t *testing.T) {
	g := NewWithT(t)
	d, _ := newDir(t)
	g.Expect(os.WriteFile(filepath.Join(d.ConfigDir, "app.yaml"), []byte(policyYAML("Allow", "true")), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(d.ConfigDir, "notes.txt"), []byte("not read"), 0o600)).To(Succeed())
	sink := &recorder{}
	d.Reload(sink)

	b, n, refused := sink.last()
	g.Expect(refused).To(Equal(0))
	g.Expect(n).To(Equal(1))
	g.Expect(b.Policies).To(HaveLen(1))
	g.Expect(b.Policies[0].Key()).To(Equal("default/app"), "an object without a namespace is in default, as with kubectl")
	g.Expect(sink.keyrings).To(HaveLen(1))
	_, err := keyring.Parse(sink.keyrings[0])
	g.Expect(err).NotTo(HaveOccurred())

	fi, err := os.Stat(filepath.Join(d.DataDir, KeyringFileName))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.Mode().Perm()).To(Equal(os.FileMode(0o600)))
	again, err := d.ReadOrCreateKeyring()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(sink.keyrings[0]), "the same keyring is read back")
}

func TestDirKeepsTheLastGoodVersionOfAnInvalidPolicy(t *testing.T) {
	g := NewWithT(t)
	d, logs := newDir(t)
	path := filepath.Join(d.ConfigDir, "app.yaml")
	sink := &recorder{}
	g.Expect(os.WriteFile(path, []byte(policyYAML("Allow", "true")), 0o600)).To(Succeed())
	d.Reload(sink)
	g.Expect(os.WriteFile(path, []byte(policyYAML("Deny", "request.hots == 1")), 0o600)).To(Succeed())
	d.Reload(sink)

	b, n, _ := sink.last()
	g.Expect(n).To(Equal(2))
	g.Expect(b.Policies).To(HaveLen(1))
	g.Expect(b.Policies[0].Spec.Default).NotTo(Equal("Deny"))
	g.Expect(string(b.Policies[0].Spec.Rules[0].Action)).To(Equal("Allow"), "the previous version stays in force")
	g.Expect(logs.String()).To(And(ContainSubstring("MFAPolicy is not valid"), ContainSubstring("spec.rules[0].when")))
}

func TestDirRefusesAFileThatDoesNotParse(t *testing.T) {
	g := NewWithT(t)
	for name, content := range map[string]string{
		"YAML that does not parse": "kind: [unclosed",
		"an unknown field":         strings.Replace(policyYAML("Allow", "true"), "hosts:", "hostz:", 1),
		"an object without kind":   "metadata: { name: x }\n",
		"an old apiVersion":        "apiVersion: mfa.operator.dev/v1\nkind: MFAPolicy\n",
	} {
		d, _ := newDir(t)
		g.Expect(os.WriteFile(filepath.Join(d.ConfigDir, "app.yaml"), []byte(content), 0o600)).To(Succeed())
		sink := &recorder{}
		d.Reload(sink)
		_, n, refused := sink.last()
		g.Expect(n).To(Equal(0), name)
		g.Expect(refused).To(Equal(1), name)
		g.Expect(sink.refused[0].Error()).To(ContainSubstring("config directory "+d.ConfigDir+" refused"), name)
	}
}

func TestDirRunReloadsAChangedDirectory(t *testing.T) {
	g := NewWithT(t)
	d, _ := newDir(t)
	path := filepath.Join(d.ConfigDir, "app.yaml")
	g.Expect(os.WriteFile(path, []byte(policyYAML("Allow", "true")), 0o600)).To(Succeed())
	sink := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx, sink) }()
	defer func() { cancel(); <-done }()

	g.Eventually(func() int { _, n, _ := sink.last(); return n }, 5*time.Second, 20*time.Millisecond).Should(Equal(1))
	g.Expect(os.WriteFile(path, []byte(policyYAML("Deny", "true")+"\n# changed\n"), 0o600)).To(Succeed())
	g.Eventually(func() int { _, n, _ := sink.last(); return n }, 5*time.Second, 20*time.Millisecond).Should(Equal(2))
}

func bundleSecret(data []byte, hash string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.BundleSecretName, Namespace: "mfa-system"}, Data: map[string][]byte{policy.BundleKey: data}}
	if hash != "" {
		s.Data[policy.BundleHashKey] = []byte(hash)
	}
	return s
}

func TestApplySecretHandsOnTheBundleAndTheKeyring(t *testing.T) {
	g := NewWithT(t)
	objs := NewObjects()
	g.Expect(objs.AddFile("app.yaml", []byte(policyYAML("Allow", "true")))).To(Succeed())
	b, _ := objs.Build(nil, nil)
	data, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())

	sink := &recorder{}
	ApplySecret(sink, bundleSecret(data, hash))
	ApplySecret(sink, bundleSecret(data, ""))
	g.Expect(sink.hashes).To(Equal([]string{hash, hash}), "without a hash, the bundle's own")

	ApplySecret(sink, bundleSecret([]byte("{not json"), "x"))
	ApplySecret(sink, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.BundleSecretName, Namespace: "mfa-system"}})
	ApplySecret(sink, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.KeyringSecretName, Namespace: "mfa-system"}})
	g.Expect(sink.refused).To(HaveLen(3))
	g.Expect(sink.refused[0].Error()).To(ContainSubstring("Secret mfa-system/mfa-bundle refused"))
	g.Expect(sink.refused[1].Error()).To(ContainSubstring(`has no key "` + policy.ManifestKey + `" (nor "` + policy.BundleKey + `"`))
	g.Expect(sink.refused[2].Error()).To(ContainSubstring(`has no key "` + policy.KeyringKey + `"`))

	ApplySecret(sink, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.KeyringSecretName, Namespace: "mfa-system"},
		Data: map[string][]byte{policy.KeyringKey: []byte("raw")}})
	ApplySecret(sink, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "mfa-system"}})
	g.Expect(sink.keyrings).To(Equal([][]byte{[]byte("raw")}))
}

func TestClusterSaysWhichSecretIsMissing(t *testing.T) {
	g := NewWithT(t)
	scheme := runtime.NewScheme()
	g.Expect(corev1.AddToScheme(scheme)).To(Succeed())
	// A client that cannot watch is polled.
	polled := struct{ client.Client }{fake.NewClientBuilder().WithScheme(scheme).Build()}
	c := &Cluster{Client: polled, Namespace: "mfa-system", Log: slog.New(slog.DiscardHandler)}
	sink := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx, sink) }()
	defer func() { cancel(); <-done }()
	g.Eventually(func() int { _, _, refused := sink.last(); return refused }, 5*time.Second, 20*time.Millisecond).Should(BeNumerically(">=", 2))
	sink.mu.Lock()
	defer sink.mu.Unlock()
	g.Expect(sink.refused[0].Error()).To(ContainSubstring("not found; the controller writes it (is it running with --namespace mfa-system?)"))
	g.Expect(errors.Is(sink.refused[0], ErrMissing)).To(BeTrue(), "a missing Secret is told apart from an invalid one")
}
