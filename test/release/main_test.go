//go:build e2e

// Package release checks what make release writes, against the local API
// server: install.yaml and the Helm chart's output applied with a
// server-side dry run and then for real, the image's config and files,
// and the operator binary taken out of the image reconciling a policy with
// nothing but its ServiceAccount's token.
//
// TestMain runs make release once (VERSION=v0.0.0-e2e) into a scratch
// folder; the cross-compiles reuse the Go build cache, and helm and the
// control plane are built once into bin/ (make helm, make control-plane).
package release

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// releaseVersion is what the tests build and expect everywhere.
const releaseVersion = "v0.0.0-e2e"

var (
	repoRoot string
	distDir  string
	// image is install.yaml's image reference, REPO:VERSION@sha256:...
	image   string
	kubectl string
	helm    string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// envtest logs through controller-runtime; its output is not needed.
	ctrllog.SetLogger(logr.Discard())
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	tmp, err := os.MkdirTemp("", "mfa-release-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	distDir = filepath.Join(tmp, "dist")
	kubectl = makeVar("KUBECTL")
	helm = makeVar("HELM")
	cmd := exec.Command("make", "-s", "--no-print-directory", "release", "VERSION="+releaseVersion, "DIST="+distDir)
	cmd.Dir = repoRoot
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "make release: %v\n", err)
		return 1
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	image = lines[len(lines)-1]
	return m.Run()
}

// makeVar is a variable of the Makefile, as make computes it.
func makeVar(name string) string {
	cmd := exec.Command("make", "-s", "--no-print-directory", "print-"+name)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		panic(fmt.Sprintf("make print-%s: %v", name, err))
	}
	return strings.TrimSpace(string(out))
}

func distFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(distDir, name))
	if err != nil {
		t.Fatalf("make release did not write %s: %v", name, err)
	}
	return b
}
