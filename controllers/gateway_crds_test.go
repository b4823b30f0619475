package controllers_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/testcrds"
)

// TestGatewayCRDsArriveLater runs the controllers on a control plane of
// their own that starts without any front door CRD: a target is
// CRDMissing (not an error); installing Gateway API makes it
// TargetNotFound, then FilterRequired once the HTTPRoute exists, with the
// exact filter, which the route's author adds (the API server accepts it
// against the real HTTPRoute CRD) to make it Attached; installing Traefik
// afterwards makes the controller write the policy's Middleware. No
// restart: CRDs are discovered as they come.
func TestGatewayCRDsArriveLater(t *testing.T) {
	g := NewWithT(t)
	env := &envtest.Environment{
		BinaryAssetsDirectory: assetsDir,
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the second control plane: %v", err)
		}
	})
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())
	g.Expect(gwapiv1.Install(scheme)).To(Succeed())
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}})).To(Succeed())
	// The controllers run as the operator's ServiceAccount, with the
	// ClusterRole and Role that make manifests generates: what they do
	// here, their RBAC markers allow.
	g.Expect(applyFile(c, filepath.Join(repoRoot, "config", "rbac", "role.yaml"))).To(Succeed())
	g.Expect(applyFile(c, filepath.Join(repoRoot, "config", "rbac", "role_binding.yaml"))).To(Succeed())
	asOperator := rest.CopyConfig(cfg)
	asOperator.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + opts.Namespace + ":mfa-operator",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + opts.Namespace, "system:authenticated"},
	}
	mgr, err := ctrl.NewManager(asOperator, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controllers.CacheOptions(opts),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The suite's manager runs controllers of the same names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	mgrCtx, cancel := context.WithCancel(ctx)
	g.Expect(controllers.Setup(mgrCtx, mgr, opts, nil)).To(Succeed())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("second manager: %v", err)
		}
	})

	ns := "portal"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(c.Create(ctx, totpProvider(ns, "totp"))).To(Succeed())
	p := mfaPolicy(ns, "portal", "false", "totp")
	p.Spec.TargetRefs = []v1alpha1.TargetRef{targetRef("HTTPRoute", "portal")}
	g.Expect(c.Create(ctx, p)).To(Succeed())
	wait := func(check func(g Gomega, st v1alpha1.TargetStatus)) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(p.Status.Targets).To(HaveLen(1))
			check(g, p.Status.Targets[0])
		}).WithTimeout(timeout).Should(Succeed())
	}

	wait(func(g Gomega, st v1alpha1.TargetStatus) {
		g.Expect(st.State).To(Equal(v1alpha1.TargetCRDMissing))
		g.Expect(st.Message).To(Equal("spec.targetRefs[0]: the HTTPRoute CRD (gateway.networking.k8s.io/v1) is not installed in the cluster; install Gateway API to attach to HTTPRoute portal/portal"))
	})

	g.Expect(testcrds.Install(cfg, testcrds.GatewayAPI)).To(Succeed())
	wait(func(g Gomega, st v1alpha1.TargetStatus) {
		g.Expect(st.State).To(Equal(v1alpha1.TargetNotFound), st.Message)
	})

	route := httpRoute(ns, "portal", "gw", "portal.example.com")
	g.Expect(c.Create(ctx, route)).To(Succeed())
	var shown string
	wait(func(g Gomega, st v1alpha1.TargetStatus) {
		g.Expect(st.State).To(Equal(v1alpha1.TargetFilterRequired), st.Message)
		_, shown, _ = strings.Cut(st.Message, ":\n")
		g.Expect(shown).To(ContainSubstring("type: ExternalAuth"))
	})
	var filters []gwapiv1.HTTPRouteFilter
	g.Expect(yaml.UnmarshalStrict([]byte(shown), &filters)).To(Succeed(), shown)
	g.Expect(filters).To(HaveLen(1))
	g.Expect(filters[0].ExternalAuth.HTTPAuthConfig.Path).To(Equal("/ext-authz/portal/portal"))
	g.Expect(filters[0].ExternalAuth.HTTPAuthConfig.AllowedResponseHeaders).To(Equal([]string{"X-MFA-User", "X-MFA-Multifactor", "X-MFA-Assertion"}))
	grant := getGeneratedWith(g, c, gvkReferenceGrant, opts.Namespace, "mfa-challenge-from-"+ns)
	g.Expect(grant.Object["spec"]).To(HaveKeyWithValue("from", []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": ns}}))

	// The route's author adds the filter shown, as is.
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(route), route)).To(Succeed())
	route.Spec.Rules[0].Filters = filters
	g.Expect(c.Update(ctx, route)).To(Succeed())
	wait(func(g Gomega, st v1alpha1.TargetStatus) {
		g.Expect(st.State).To(Equal(v1alpha1.TargetAttached), st.Message)
		g.Expect(st.Message).To(Equal("spec.targetRefs[0]: every rule of HTTPRoute portal/portal carries the filter to this policy"))
	})

	g.Expect(testcrds.Install(cfg, testcrds.Traefik)).To(Succeed())
	NewWithT(t).Eventually(func(g Gomega) {
		mw := getGeneratedWith(g, c, gvkMiddleware, ns, "mfa-portal")
		g.Expect(mw.Object["spec"]).To(HaveKeyWithValue("forwardAuth", HaveKeyWithValue("address", "http://mfa-challenge.mfa-system.svc:80/forward-auth/portal/portal")))
	}).WithTimeout(timeout).Should(Succeed())
}

// applyFile creates the objects of a YAML file.
func applyFile(c client.Client, name string) error {
	raw, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, u); err != nil {
			return fmt.Errorf("%s: %s %s: %w", name, u.GetKind(), u.GetName(), err)
		}
	}
}
