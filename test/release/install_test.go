//go:build e2e

package release

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestInstallYAML applies install.yaml to a fresh API server, then runs
// the linux/amd64 binary of the released image as the operator's
// ServiceAccount: the RBAC of install.yaml is all it has.
func TestInstallYAML(t *testing.T) {
	install := distFile(t, "install.yaml")
	c := startCluster(t)

	t.Run("pins the released image", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(image).To(MatchRegexp(`^ghcr\.io/mfa-operator/mfa-operator:` + releaseVersion + `@sha256:[0-9a-f]{64}$`))
		// The operator's and the challenge server's image.
		g.Expect(strings.Count(string(install), image)).To(Equal(2))
		g.Expect(string(install)).NotTo(ContainSubstring(":latest"))
		g.Expect(string(distFile(t, "crds.yaml"))).To(ContainSubstring("name: mfapolicies.mfa.operator.dev"))
	})

	t.Run("applies with a server-side dry run, then for real", func(t *testing.T) {
		c.applyDryRunThenForReal(t, install, "mfa-system")
		g := NewWithT(t)
		out := c.mustKubectl(t, nil, "-n", "mfa-system", "get", "deployment/mfa-operator", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		g.Expect(out).To(Equal(image))
	})

	t.Run("the image's operator reconciles a policy with its ServiceAccount's token", func(t *testing.T) {
		operatorFromImage(t, c)
	})

	t.Run("uninstalling as README says keeps the namespace's Secrets and the CRDs", func(t *testing.T) {
		uninstallKeepsSecrets(t, c, install)
	})
}

// uninstallKeepsSecrets runs README "Uninstalling" for install.yaml: the
// operator, its RBAC and the challenge server go; the namespace with its
// Secrets (enrolments, keyring), the CRDs and the policies stay.
func uninstallKeepsSecrets(t *testing.T, c *cluster, install []byte) {
	g := NewWithT(t)
	c.mustKubectl(t, nil, "-n", "mfa-system", "create", "secret", "generic", "enrolment-sample", "--from-literal=k=v")
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "secret/mfa-keyring", "-o", "name")).To(Equal("secret/mfa-keyring\n"))
	c.mustKubectl(t, install, "delete", "-f", "-", "-l", "app.kubernetes.io/part-of=mfa-operator,!pod-security.kubernetes.io/enforce")
	c.mustKubectl(t, nil, "-n", "mfa-system", "delete", "deployment/mfa-challenge", "service/mfa-challenge", "poddisruptionbudget/mfa-challenge")

	for _, gone := range []string{"deployment/mfa-operator", "serviceaccount/mfa-operator", "serviceaccount/mfa-challenge",
		"role/mfa-operator", "role/mfa-challenge", "role/mfa-operator-leader-election", "rolebinding/mfa-operator",
		"networkpolicy/mfa-challenge", "deployment/mfa-challenge", "service/mfa-challenge", "clusterrole/mfa-operator",
		"clusterrolebinding/mfa-operator", "clusterrole/mfa-operator-mfapolicy-editor"} {
		_, err := c.kubectl(nil, "-n", "mfa-system", "get", gone)
		g.Expect(err).To(MatchError(ContainSubstring("NotFound")), "%s is deleted", gone)
	}
	for _, kept := range []string{"namespace/mfa-system", "secret/mfa-keyring", "secret/enrolment-sample",
		"crd/mfapolicies.mfa.operator.dev", "crd/mfaproviders.mfa.operator.dev"} {
		_, err := c.kubectl(nil, "-n", "mfa-system", "get", kept)
		g.Expect(err).NotTo(HaveOccurred(), "%s is kept", kept)
	}
	_, err := c.kubectl(nil, "-n", "default", "get", "mfapolicy/admin")
	g.Expect(err).NotTo(HaveOccurred(), "the policy is kept")
}

func operatorFromImage(t *testing.T, c *cluster) {
	g := NewWithT(t)
	dir := t.TempDir()
	_, bin := readLayer(t, platformImage(t, ociLayout(t), "amd64"), "mfa-operator")
	binary := filepath.Join(dir, "mfa-operator")
	g.Expect(os.WriteFile(binary, bin, 0o755)).To(Succeed())

	out, err := exec.Command(binary, "version").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	g.Expect(string(out)).To(HavePrefix("mfa-operator " + releaseVersion + " " + makeVar("REVISION")[:12]))

	// A token of the ServiceAccount install.yaml made, from the
	// TokenRequest API, as the kubelet mounts one into the pod.
	cs, err := kubernetes.NewForConfig(c.admin)
	g.Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()
	tr, err := cs.CoreV1().ServiceAccounts("mfa-system").CreateToken(ctx, "mfa-operator",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	kubeconfig := filepath.Join(dir, "operator.kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: %q, certificate-authority-data: %q}}]
users: [{name: mfa-operator, user: {token: %q}}]
contexts: [{name: local, context: {cluster: local, user: mfa-operator}}]
current-context: local
`, c.admin.Host, base64.StdEncoding.EncodeToString(c.admin.CAData), tr.Status.Token)), 0o600)).To(Succeed())

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	logs := &syncBuffer{}
	cmd := exec.Command(binary, "controller", "--kubeconfig", kubeconfig, "--leader-elect",
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr)
	// The settings the Deployment passes, as install.yaml and README's
	// `kubectl set env` give them.
	cmd.Env = []string{"HOME=" + dir, "MFA_NAMESPACE=mfa-system", "MFA_PUBLIC_URL=https://auth.example.com",
		"MFA_WEBHOOK_IMAGE=" + image, "MFA_TRUSTED_PROXIES=10.0.0.0/8"}
	cmd.Stdout, cmd.Stderr = logs, logs
	g.Expect(cmd.Start()).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.String())
		}
	})

	c.mustKubectl(t, nil, "apply", "-n", "default", "-f", filepath.Join(repoRoot, "config/samples/mfa_v1alpha1_mfaprovider.yaml"),
		"-f", filepath.Join(repoRoot, "config/samples/mfa_v1alpha1_mfaprovider_webauthn.yaml"),
		"-f", filepath.Join(repoRoot, "config/samples/mfa_v1alpha1_mfapolicy.yaml"))
	g.Eventually(func() (string, error) {
		select {
		case err := <-done:
			return "", StopTrying(fmt.Sprintf("the operator exited: %v", err))
		default:
		}
		return c.kubectl(nil, "-n", "default", "get", "mfapolicy/admin", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	}, 90*time.Second, 250*time.Millisecond).Should(Equal("True"), "the sample policy becomes Ready")

	// What the operator made with its namespace Role: the challenge
	// server's Deployment runs the released image; the leader lease is its.
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "deployment/mfa-challenge", "-o",
		"jsonpath={.spec.template.spec.containers[0].image}")).To(Equal(image))
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "secret/mfa-bundle", "-o", "name")).To(Equal("secret/mfa-bundle\n"))
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "lease/mfa-operator.mfa.operator.dev", "-o", "jsonpath={.spec.holderIdentity}")).NotTo(BeEmpty())

	// The build info gauge on its /metrics.
	g.Eventually(func() (string, error) { return httpGet("http://" + metricsAddr + "/metrics") }, 30*time.Second, 250*time.Millisecond).
		Should(MatchRegexp(`mfa_operator_build_info\{goversion="go[^"]+",revision="` + makeVar("REVISION") + `",version="` + releaseVersion + `"\} 1`))
	// Nothing it tried was refused.
	g.Expect(logs.String()).NotTo(ContainSubstring("forbidden"))
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
