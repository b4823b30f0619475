package controllers_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/testcrds"
)

// timeout bounds every wait on the controllers.
const timeout = 30 * time.Second

var controllerLogs = flag.Bool("controller-logs", false, "print the controllers' logs")

var (
	ctx        = context.Background()
	k8sClient  client.Client
	restConfig *rest.Config
	kubeconfig string // a kubeconfig file for kubectl
	manager    ctrl.Manager
	repoRoot   string
	assetsDir  string
	duo        = &duoStub{calls: map[string]int{}}
	opts       = controllers.Options{
		Namespace:        "mfa-system",
		PublicURL:        "https://auth.example.com",
		CookieDomain:     "example.com",
		TrustedProxies:   "10.0.0.0/8",
		WebhookImage:     "mfa-operator:test",
		WebhookReplicas:  2,
		ManageDeployment: true,
	}
	bundleKey  = types.NamespacedName{Namespace: "mfa-system", Name: policy.BundleSecretName}
	keyringKey = types.NamespacedName{Namespace: "mfa-system", Name: policy.KeyringSecretName}
)

// TestMain starts one real control plane (etcd + kube-apiserver), installs
// the CRDs (the product's and Gateway API's, see internal/testcrds),
// and runs the controllers against it for every test.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repoRoot, err = findRepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if assetsDir, err = controlPlaneAssets(repoRoot); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logger := logr.Discard()
	if *controllerLogs {
		logger = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	// Gateway API for every test (the README routes); the other front
	// doors' CRDs, larger, only for the tests that need them
	// (installFrontDoors).
	gatewayAPICRDs, err := testcrds.Load(testcrds.GatewayAPI)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assetsDir,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		CRDs:                  gatewayAPICRDs,
		ErrorIfCRDPathMissing: true,
	}
	started := time.Now()
	if restConfig, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane from %s: %v\n", assetsDir, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "control plane up in %s\n", time.Since(started).Round(time.Millisecond))

	dir, err := os.MkdirTemp("", "mfa-controllers-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := gwapiv1.Install(scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8sClient, err = client.New(restConfig, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(opts),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	manager = mgr
	mgrCtx, cancel := context.WithCancel(ctx)
	if err := controllers.Setup(mgrCtx, mgr, opts, duo.check); err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(mgrCtx) }()

	code := m.Run()

	cancel()
	if err := <-stopped; err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		code = 1
	}
	return code
}

// findRepoRoot walks up from the package directory to go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// controlPlaneAssets returns the directory of etcd and kube-apiserver:
// KUBEBUILDER_ASSETS, or bin/k8s/<version> where the version follows
// k8s.io/client-go in go.mod (v0.X.Y -> v1.X.Y), as `make control-plane`
// builds it. Missing binaries fail the tests: they are never skipped.
func controlPlaneAssets(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		version, err := kubernetesVersion(filepath.Join(root, "go.mod"))
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "k8s", version)
	}
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the control plane for the tests is missing (%s not in %s): run `make control-plane` to build it (once, it takes minutes), or set KUBEBUILDER_ASSETS to a directory holding etcd and kube-apiserver",
			strings.Join(missing, ", "), dir)
	}
	return dir, nil
}

func kubernetesVersion(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "k8s.io/client-go" && strings.HasPrefix(fields[1], "v0.") {
			return "v1." + strings.TrimPrefix(fields[1], "v0."), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s does not require k8s.io/client-go: cannot tell which control plane to use; set KUBEBUILDER_ASSETS", goMod)
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// waitFor gets obj until check passes.
func waitFor[T client.Object](t *testing.T, obj T, check func(g Gomega, obj T)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		check(g, obj)
	}).WithTimeout(timeout).WithPolling(20 * time.Millisecond).Should(Succeed())
}

// verdict is what the conditions of an object should say.
type verdict struct {
	ready   metav1.ConditionStatus
	reason  string
	stalled bool
}

// expectVerdict checks Ready, Stalled and the observed generations.
func expectVerdict(g Gomega, conds []metav1.Condition, generation, observed int64, want verdict) *metav1.Condition {
	ready := meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	g.Expect(ready).NotTo(BeNil(), "no Ready condition")
	g.Expect(ready.Status).To(Equal(want.ready), "Ready: %s", ready.Message)
	g.Expect(ready.Reason).To(Equal(want.reason), "Ready: %s", ready.Message)
	g.Expect(ready.ObservedGeneration).To(Equal(generation))
	g.Expect(observed).To(Equal(generation))
	stalled := meta.FindStatusCondition(conds, v1alpha1.StalledCondition)
	if want.stalled {
		g.Expect(stalled).NotTo(BeNil(), "no Stalled condition")
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(want.reason))
	} else {
		g.Expect(stalled).To(BeNil(), "unexpected Stalled condition")
	}
	return ready
}

var isReady = verdict{ready: metav1.ConditionTrue, reason: v1alpha1.ReasonSucceeded}

// expectWarningEvent waits for a Warning event about an object.
func expectWarningEvent(t *testing.T, ns, name, reason, note string) {
	t.Helper()
	expectEvent(t, ns, name, corev1.EventTypeWarning, reason, note)
}

// expectEvent waits for an event of a type about an object.
func expectEvent(t *testing.T, ns, name, typ, reason, note string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Type == typ && e.Reason == reason {
				notes = append(notes, e.Note)
			}
		}
		g.Expect(notes).To(ContainElement(ContainSubstring(note)))
	}).WithTimeout(timeout).WithPolling(50 * time.Millisecond).Should(Succeed())
}

// expectNoWarningEvents waits for each object's Normal Succeeded event,
// the last of a healthy start, then checks that no Warning event about it
// has been written. The recorder writes events concurrently, so a Warning
// recorded a moment before could still be on its way: this catches what a
// user would see, and TestReadyEventType pins the type of each verdict.
func expectNoWarningEvents(t *testing.T, ns string, names ...string) {
	t.Helper()
	for _, name := range names {
		expectEvent(t, ns, name, corev1.EventTypeNormal, v1alpha1.ReasonSucceeded, "")
	}
	var list eventsv1.EventList
	NewWithT(t).Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	for _, e := range list.Items {
		if e.Type == corev1.EventTypeWarning && slices.Contains(names, e.Regarding.Name) {
			t.Errorf("Warning event about %s %s: %s: %s", e.Regarding.Kind, e.Regarding.Name, e.Reason, e.Note)
		}
	}
}

// bundleInForce reads the bundle Secret and its shards.
func bundleInForce(g Gomega) (*policy.Bundle, string) {
	s := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, bundleKey, s)).To(Succeed())
	b, _, hash, err := policy.ReadStored(s.Data, fetchShard(bundleKey.Namespace), nil)
	g.Expect(err).NotTo(HaveOccurred())
	return b, hash
}

// fetchShard reads bundle shards from the API server.
func fetchShard(namespace string) policy.ShardFetcher {
	return func(name string) ([]byte, error) {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
			return nil, err
		}
		return s.Data[policy.ShardKey], nil
	}
}

func bundlePolicy(b *policy.Bundle, ns, name string) *policy.BundlePolicy {
	for i := range b.Policies {
		if b.Policies[i].Namespace == ns && b.Policies[i].Name == name {
			return &b.Policies[i]
		}
	}
	return nil
}

func bundleProvider(b *policy.Bundle, ns, name string) *policy.BundleProvider {
	for i := range b.Providers {
		if b.Providers[i].Namespace == ns && b.Providers[i].Name == name {
			return &b.Providers[i]
		}
	}
	return nil
}

// Object builders.

func totpProvider(ns, name string) *v1alpha1.MFAProvider {
	return &v1alpha1.MFAProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderTOTP, TOTP: &v1alpha1.TOTPSpec{Issuer: "Example Corp"}},
	}
}

func duoProvider(ns, name, secret string) *v1alpha1.MFAProvider {
	return &v1alpha1.MFAProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderDuo, Duo: &v1alpha1.DuoSpec{
			APIHost:           "api-test.duosecurity.com",
			IntegrationKeyRef: v1alpha1.SecretKeySelector{Name: secret, Key: "ikey"},
			SecretKeyRef:      v1alpha1.SecretKeySelector{Name: secret, Key: "skey"},
		}},
	}
}

func duoSecret(ns, name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
}

// mfaPolicy has an Allow rule "office" with when, then "everyone-else"
// requiring the providers.
func mfaPolicy(ns, name, when string, providers ...string) *v1alpha1.MFAPolicy {
	return &v1alpha1.MFAPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.MFAPolicySpec{
			Identity: v1alpha1.IdentitySpec{Header: &v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email"}},
			Rules: []v1alpha1.Rule{
				{Name: "office", When: when, Action: v1alpha1.ActionAllow},
				{Name: "everyone-else", When: "true", Action: v1alpha1.ActionRequireMFA,
					Multifactor: &v1alpha1.MultifactorSpec{Providers: providers}},
			},
		},
	}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8sClient.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, client.ObjectKeyFromObject(o), err)
		}
	}
}

// update re-reads obj and applies change until the write does not conflict
// with the controllers' status writes.
func update[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return k8sClient.Update(ctx, obj)
	}).WithTimeout(timeout).Should(Succeed())
}
