package webhook

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
)

// TestClusterFollowsBundleAndKeyringSecrets runs against a real API server:
// the server loads the Secrets the controller writes and reloads them on
// change, refusing a corrupt bundle while keeping the last good one.
func TestClusterFollowsBundleAndKeyringSecrets(t *testing.T) {
	g := NewWithT(t)
	ns := "mfa-system"
	c := storetest.CoreClient(t, ns)
	ctx, cancel := context.WithCancel(context.Background())

	f := newCoreServer(t, "")
	s, err := NewServer(Options{
		PublicURL: f.s.opts.PublicURL, TrustedProxies: f.s.opts.TrustedProxies,
		Source: &source.Cluster{Client: c, Namespace: ns, Log: f.s.log},
		Store:  store.NewSecretStore(c, ns), Now: f.clock.Now, Logger: f.s.log,
	})
	g.Expect(err).NotTo(HaveOccurred())
	f.s = s
	done := make(chan error)
	go func() { done <- s.watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	code, body := f.readyz()
	g.Expect(code).To(Equal(http.StatusServiceUnavailable), body)

	kd, err := keyring.Generate(f.clock.Now())
	g.Expect(err).NotTo(HaveOccurred())
	kraw, err := kd.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.KeyringSecretName, Namespace: ns},
		Data: map[string][]byte{policy.KeyringKey: kraw}})).To(Succeed())

	bundleSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: policy.BundleSecretName, Namespace: ns}}
	setBundle := func(action string) {
		data, hash, err := bundleFromYAML(t, standalonePolicy(action)).Marshal()
		g.Expect(err).NotTo(HaveOccurred())
		bundleSecret.Data = map[string][]byte{policy.BundleKey: data, policy.BundleHashKey: []byte(hash)}
	}
	setBundle("Allow")
	g.Expect(c.Create(ctx, bundleSecret)).To(Succeed())

	g.Eventually(func() int { code, _ := f.readyz(); return code }, time.Minute, 50*time.Millisecond).Should(Equal(http.StatusOK))
	g.Expect(f.appDecision()).To(Equal(http.StatusOK))

	// A change is picked up without a restart.
	setBundle("Deny")
	g.Expect(c.Update(ctx, bundleSecret)).To(Succeed())
	g.Eventually(f.appDecision, time.Minute, 50*time.Millisecond).Should(Equal(http.StatusForbidden))

	// A corrupt bundle is refused; the last good stays and /readyz says so.
	bundleSecret.Data[policy.BundleKey] = []byte(`{"policies":[{"namespace":"apps","name":"x","spec":{"identity":{"header":{}},"rules":[{"name":"r","when":"nope(","action":"Allow"}]}}]}`)
	bundleSecret.Data[policy.BundleHashKey] = []byte("corrupt")
	g.Expect(c.Update(ctx, bundleSecret)).To(Succeed())
	g.Eventually(func() string { _, body := f.readyz(); return body }, time.Minute, 50*time.Millisecond).Should(ContainSubstring("MFAPolicy apps/x"))
	code, _ = f.readyz()
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(f.appDecision()).To(Equal(http.StatusForbidden))

	// A rotated keyring is loaded too.
	g.Expect(kd.AddSigningKey(f.clock.Now())).To(Succeed())
	kraw, _ = kd.Marshal()
	var ks corev1.Secret
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: policy.KeyringSecretName}, &ks)).To(Succeed())
	ks.Data[policy.KeyringKey] = kraw
	g.Expect(c.Update(ctx, &ks)).To(Succeed())
	g.Eventually(func() int { return len(s.config.snapshot().Keyring.Signers()) }, time.Minute, 50*time.Millisecond).Should(Equal(2))
}
