package controllers_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
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
	} {
		g.Expect(string(out)).To(ContainSubstring(want))
	}
	t.Logf("kubectl apply -k config/default --dry-run=server:\n%s", out)
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
