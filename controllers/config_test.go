package controllers_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/controllers"
)

// TestKustomizeDefaultIsAcceptedByAPIServer: `kubectl apply -k
// config/default --dry-run=server` passes the real API server's validation
// and admission (every object, in its namespace, with its schema).
func TestKustomizeDefaultIsAcceptedByAPIServer(t *testing.T) {
	g := NewWithT(t)
	kubectl := filepath.Join(assetsDir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl is missing in %s: run `make control-plane` to build it", assetsDir)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server",
		"-k", filepath.Join(repoRoot, "config", "default"))
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	for _, want := range []string{
		"namespace/mfa-system",
		"customresourcedefinition.apiextensions.k8s.io/mfapolicies.mfa.operator.dev",
		"customresourcedefinition.apiextensions.k8s.io/mfaproviders.mfa.operator.dev",
		"clusterrole.rbac.authorization.k8s.io/mfa-operator",
		"role.rbac.authorization.k8s.io/mfa-operator",
		"rolebinding.rbac.authorization.k8s.io/mfa-challenge",
		"serviceaccount/mfa-challenge",
		"deployment.apps/mfa-operator",
		"networkpolicy.networking.k8s.io/mfa-challenge",
	} {
		g.Expect(string(out)).To(ContainSubstring(want))
	}
	t.Logf("kubectl apply -k config/default --dry-run=server:\n%s", out)
}

// TestManagerSettingsPatch: config/default/manager_settings_patch.yaml,
// listed in an overlay of config/default as README shows, sets the
// operator's required settings once each, and the API server accepts the
// result.
func TestManagerSettingsPatch(t *testing.T) {
	g := NewWithT(t)
	kubectl := filepath.Join(assetsDir, "kubectl")
	overlay := t.TempDir()
	base, err := filepath.Rel(overlay, filepath.Join(repoRoot, "config", "default"))
	g.Expect(err).NotTo(HaveOccurred())
	patch, err := os.ReadFile(filepath.Join(repoRoot, "config", "default", "manager_settings_patch.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(overlay, "manager_settings_patch.yaml"), patch, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(overlay, "kustomization.yaml"),
		[]byte("resources:\n- "+base+"\npatches:\n- path: manager_settings_patch.yaml\n"), 0o600)).To(Succeed())

	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rendered, err := exec.CommandContext(cctx, kubectl, "kustomize", overlay).Output()
	g.Expect(err).NotTo(HaveOccurred())
	env := map[string][]string{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		var d appsv1.Deployment
		if dec.Decode(&d) != nil {
			break
		}
		if d.Kind != "Deployment" || d.Name != "mfa-operator" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				env[e.Name] = append(env[e.Name], e.Value)
			}
		}
	}
	g.Expect(env).To(HaveKeyWithValue("MFA_PUBLIC_URL", []string{"https://auth.example.com"}))
	g.Expect(env).To(HaveKeyWithValue("MFA_COOKIE_DOMAIN", []string{"example.com"}))
	g.Expect(env).To(HaveKeyWithValue("MFA_TRUSTED_PROXIES", []string{"10.0.0.0/8"}))

	out, err := exec.CommandContext(cctx, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-k", overlay).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(string(out)).To(ContainSubstring("deployment.apps/mfa-operator"))
}

// TestMissingControlPlaneSaysMakeControlPlane: without the binaries the
// tests fail (never skip) with the command that builds them.
func TestMissingControlPlaneSaysMakeControlPlane(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n\nrequire (\n\tk8s.io/client-go v0.99.1\n)\n"), 0o600)).To(Succeed())
	t.Setenv("KUBEBUILDER_ASSETS", "")
	_, err := controlPlaneAssets(root)
	g.Expect(err).To(MatchError(And(
		ContainSubstring(filepath.Join(root, "bin", "k8s", "v1.99.1")),
		ContainSubstring("run `make control-plane`"),
	)))
}

// TestNetworkPolicyFitsTheChallengeServer: the NetworkPolicy of
// config/network-policy selects the pods the controller creates and names
// their ports: one namespace (the front doors') the page port, another
// (monitoring) the metrics port, nothing else.
func TestNetworkPolicyFitsTheChallengeServer(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "network-policy", "challenge_network_policy.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var np networkingv1.NetworkPolicy
	g.Expect(yaml.UnmarshalStrict(raw, &np)).To(Succeed())

	d := controllers.ChallengeDeployment(controllers.Options{Namespace: "mfa-system"})
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sel.Matches(labels.Set(d.Spec.Template.Labels))).To(BeTrue(), "the policy selects the challenge pods")
	g.Expect(sel.Matches(labels.Set{"app.kubernetes.io/name": "mfa-operator", "app.kubernetes.io/part-of": "mfa-operator"})).To(BeFalse(),
		"and not the controller's")
	g.Expect(np.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}))

	containerPorts := map[string]bool{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		containerPorts[p.Name] = true
	}
	// One rule per port: the page port's clients never read the metrics.
	var ports []string
	for _, rule := range np.Spec.Ingress {
		g.Expect(rule.From).To(HaveLen(1))
		g.Expect(rule.From[0].PodSelector).To(BeNil())
		g.Expect(rule.From[0].NamespaceSelector.MatchLabels).To(HaveKeyWithValue("kubernetes.io/metadata.name", Not(BeEmpty())))
		g.Expect(rule.Ports).To(HaveLen(1))
		g.Expect(containerPorts).To(HaveKey(rule.Ports[0].Port.String()), "a port of the challenge container")
		ports = append(ports, rule.Ports[0].Port.String())
	}
	g.Expect(ports).To(ConsistOf(controllers.ChallengePortName, controllers.ChallengeMetricsPortName))
}
