package harness

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Kubectl runs kubectl against the local API server as admin and returns
// its standard output; on failure the error carries standard error.
func (e *Env) Kubectl(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.KubectlPath, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &KubectlError{Args: args, Err: err, Stderr: strings.TrimSpace(errb.String())}
	}
	return out.String(), nil
}

// MustKubectl is Kubectl that fails the test on error.
func (e *Env) MustKubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, err := e.Kubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Apply is `kubectl apply -f -` of manifests (YAML).
func (e *Env) Apply(t testing.TB, manifests string) string {
	t.Helper()
	return e.MustKubectl(t, manifests, "apply", "-f", "-")
}

// KubectlError is a failed kubectl run.
type KubectlError struct {
	Args   []string
	Err    error
	Stderr string
}

func (k *KubectlError) Error() string {
	return "kubectl " + strings.Join(k.Args, " ") + ": " + k.Err.Error() + ": " + k.Stderr
}
