//go:build e2e

package release

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// cluster is a fresh local control plane (kube-apiserver and etcd of
// bin/k8s, RBAC enforced) with an admin kubeconfig for kubectl.
type cluster struct {
	env        *envtest.Environment
	admin      *rest.Config
	kubeconfig string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: filepath.Dir(kubectl)}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "release-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, admin: cfg, kubeconfig: path}
}

// kubectl runs kubectl as admin with stdin; it returns standard output,
// or standard error in the error.
func (c *cluster) kubectl(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &cmdError{args: args, err: err, stderr: errb.String()}
	}
	return out.String(), nil
}

func (c *cluster) mustKubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := c.kubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyDryRunThenForReal applies manifests with a server-side dry run,
// checks that the dry run created nothing, then applies them for real, as
// a careful administrator does. The namespace is created first: a dry
// run does not create it, so the namespaced objects of a dry run need it.
func (c *cluster) applyDryRunThenForReal(t *testing.T, manifests []byte, namespace string) {
	t.Helper()
	c.mustKubectl(t, nil, "create", "namespace", namespace)
	out := c.mustKubectl(t, manifests, "apply", "--server-side", "--dry-run=server", "-f", "-")
	if !strings.Contains(out, "(server dry run)") {
		t.Fatalf("kubectl did not report a server dry run:\n%s", out)
	}
	if got, err := c.kubectl(nil, "get", "crd", "-o", "name"); err != nil || strings.TrimSpace(got) != "" {
		t.Fatalf("the dry run created CRDs: %q %v", got, err)
	}
	c.mustKubectl(t, manifests, "apply", "--server-side", "-f", "-")
	c.mustKubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/mfapolicies.mfa.operator.dev", "crd/mfaproviders.mfa.operator.dev")
}

type cmdError struct {
	args   []string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

// runIn runs a program in dir and returns its combined output.
func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
