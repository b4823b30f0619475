// Package storetest holds what the tests of stores and their users share: a
// real control plane (envtest) and the conformance suite every Store
// implementation passes.
package storetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the control plane `make control-plane` builds.
const K8sVersion = "v1.37.2"

// AssetsDir is KUBEBUILDER_ASSETS, or bin/k8s/<K8sVersion> at the root of
// the module.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin", "k8s", K8sVersion), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory; set KUBEBUILDER_ASSETS")
		}
		dir = parent
	}
}

// StartControlPlane starts etcd and kube-apiserver from AssetsDir. It fails,
// saying to run `make control-plane`, when the binaries are not there.
func StartControlPlane() (*envtest.Environment, *rest.Config, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return nil, nil, fmt.Errorf("%s is missing from %s: run make control-plane", bin, dir)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		// Two shared cores: the first start can be slow.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the control plane from %s: %w", dir, err)
	}
	return env, cfg, nil
}

// CoreClient starts a control plane for the test (stopped when it ends)
// and returns a client of it that can watch the core types, with the
// namespace ns created.
func CoreClient(t testing.TB, ns string) client.WithWatch {
	t.Helper()
	env, cfg, err := StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return c
}
