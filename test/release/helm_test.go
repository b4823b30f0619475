//go:build e2e

package release

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// releasedChart is the chart make release packaged: its version and
// appVersion the release's, its image pinned by digest.
func releasedChart() string {
	return filepath.Join(distDir, "mfa-operator-"+strings.TrimPrefix(releaseVersion, "v")+".tgz")
}

func helmRun(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helm, args...)
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// TestHelmLintIsClean: with the default values and with every toggle
// flipped.
func TestHelmLintIsClean(t *testing.T) {
	for _, set := range []string{
		"",
		"metrics.serviceMonitor.enabled=true,networkPolicy.enabled=false,publicURL=https://auth.example.com,trustedProxies={10.0.0.0/8,192.168.0.0/16}",
	} {
		args := []string{"lint", "--strict", "charts/mfa-operator"}
		if set != "" {
			args = append(args, "--set", set)
		}
		out := helmRun(t, args...)
		NewWithT(t).Expect(string(out)).To(ContainSubstring("0 chart(s) failed"))
	}
	helmRun(t, "lint", "--strict", releasedChart())
}

// TestHelmChartMatchesInstallYAML: the released chart, rendered with its
// defaults into mfa-system, holds the objects of install.yaml with the
// same specs. The differences allowed: Helm's own labels, and the
// Namespace, which `helm install --create-namespace` creates instead.
func TestHelmChartMatchesInstallYAML(t *testing.T) {
	g := NewWithT(t)
	rendered := objects(t, helmRun(t, "template", "mfa-operator", releasedChart(), "--namespace", "mfa-system", "--include-crds"))
	install := objects(t, distFile(t, "install.yaml"))
	g.Expect(install).To(HaveKey("Namespace//mfa-system"))
	delete(install, "Namespace//mfa-system")
	for _, o := range rendered {
		dropHelmLabels(o)
	}
	g.Expect(keys(rendered)).To(Equal(keys(install)))
	for k := range install {
		if d := cmp.Diff(install[k], rendered[k]); d != "" {
			t.Errorf("%s differs (-install.yaml +helm template):\n%s", k, d)
		}
	}
}

// TestHelmChartAppliesToTheAPIServer: helm template output, applied with a
// server-side dry run then for real into a namespace of another name.
func TestHelmChartAppliesToTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	manifests := helmRun(t, "template", "mfa", releasedChart(), "--namespace", "mfa", "--include-crds",
		"--set", "publicURL=https://auth.example.com,trustedProxies={10.0.0.0/8}")
	c := startCluster(t)
	c.applyDryRunThenForReal(t, manifests, "mfa")
	out := c.mustKubectl(t, nil, "-n", "mfa", "get", "deployment/mfa-operator", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	g.Expect(out).To(Equal(image))
	out = c.mustKubectl(t, nil, "get", "clusterrolebinding/mfa-operator", "-o", "jsonpath={.subjects[0].namespace}")
	g.Expect(out).To(Equal("mfa"))
	out = c.mustKubectl(t, nil, "-n", "mfa", "get", "deployment/mfa-operator", "-o", `jsonpath={.spec.template.spec.containers[0].env[?(@.name=="MFA_PUBLIC_URL")].value}`)
	g.Expect(out).To(Equal("https://auth.example.com"))
}

// TestHelmValuesReachTheManifests: the values for scheduling, resources,
// metrics and the NetworkPolicy do what they say.
func TestHelmValuesReachTheManifests(t *testing.T) {
	g := NewWithT(t)
	objs := objects(t, helmRun(t, "template", "mfa-operator", "charts/mfa-operator", "--namespace", "mfa-system",
		"--set", "replicas=3,challenge.replicas=4,cookieDomain=example.com,trustedProxies={10.0.0.0/8,fd00::/8}",
		"--set", "nodeSelector.kubernetes\\.io/os=linux,tolerations[0].key=dedicated,tolerations[0].operator=Exists",
		"--set", "resources.limits.memory=512Mi,metrics.serviceMonitor.enabled=true,networkPolicy.enabled=false",
		"--set", "image.repository=registry.example.com/mfa,image.tag=v9.9.9"))
	dep := objs["Deployment/mfa-system/mfa-operator"]
	g.Expect(dep).NotTo(BeNil())
	g.Expect(get(dep, "spec", "replicas")).To(BeEquivalentTo(3))
	pod := get(dep, "spec", "template", "spec").(map[string]any)
	g.Expect(pod["nodeSelector"]).To(Equal(map[string]any{"kubernetes.io/os": "linux"}))
	g.Expect(pod["tolerations"]).To(Equal([]any{map[string]any{"key": "dedicated", "operator": "Exists"}}))
	ctr := pod["containers"].([]any)[0].(map[string]any)
	g.Expect(ctr["image"]).To(Equal("registry.example.com/mfa:v9.9.9"))
	g.Expect(get(ctr, "resources", "limits", "memory")).To(Equal("512Mi"))
	env := map[string]any{}
	for _, e := range ctr["env"].([]any) {
		env[e.(map[string]any)["name"].(string)] = e.(map[string]any)["value"]
	}
	g.Expect(env).To(HaveKeyWithValue("MFA_WEBHOOK_REPLICAS", "4"))
	g.Expect(env).To(HaveKeyWithValue("MFA_COOKIE_DOMAIN", "example.com"))
	g.Expect(env).To(HaveKeyWithValue("MFA_TRUSTED_PROXIES", "10.0.0.0/8,fd00::/8"))
	g.Expect(env).To(HaveKeyWithValue("MFA_WEBHOOK_IMAGE", "registry.example.com/mfa:v9.9.9"))
	g.Expect(objs).NotTo(HaveKey("NetworkPolicy/mfa-system/mfa-challenge"))

	// The ServiceMonitor finds the metrics Service, which finds the
	// operator's pods and their metrics port.
	svc, sm := objs["Service/mfa-system/mfa-operator-metrics"], objs["ServiceMonitor/mfa-system/mfa-operator"]
	g.Expect(svc).NotTo(BeNil())
	g.Expect(sm).NotTo(BeNil())
	g.Expect(objs).To(HaveKey("PodMonitor/mfa-system/mfa-challenge"))
	svcLabels := get(svc, "metadata", "labels").(map[string]any)
	for k, v := range get(sm, "spec", "selector", "matchLabels").(map[string]any) {
		g.Expect(svcLabels).To(HaveKeyWithValue(k, v))
	}
	podLabels := get(dep, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range get(svc, "spec", "selector").(map[string]any) {
		g.Expect(podLabels).To(HaveKeyWithValue(k, v))
	}
	g.Expect(get(sm, "spec", "endpoints").([]any)[0].(map[string]any)["port"]).To(Equal("metrics"))
	g.Expect(get(svc, "spec", "ports").([]any)[0].(map[string]any)["targetPort"]).To(Equal("metrics"))
}

// objects decodes a multi-document YAML stream by kind/namespace/name.
func objects(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	objs := map[string]map[string]any{}
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		if len(o) == 0 {
			continue // only comments
		}
		md := o["metadata"].(map[string]any)
		ns, _ := md["namespace"].(string)
		k := o["kind"].(string) + "/" + ns + "/" + md["name"].(string)
		if _, dup := objs[k]; dup {
			t.Fatalf("%s twice", k)
		}
		objs[k] = o
	}
}

// dropHelmLabels removes the labels Helm charts add to say who manages an
// object.
func dropHelmLabels(o map[string]any) {
	md := o["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	for _, l := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"} {
		delete(labels, l)
	}
	if labels != nil && len(labels) == 0 {
		delete(md, "labels")
	}
}

func keys(m map[string]map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func get(o map[string]any, path ...string) any {
	var v any = o
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// TestHelmInstallUpgradeUninstall runs README's helm commands against a
// fresh API server: install with --create-namespace, upgrade after the
// CRDs, uninstall; the namespace (its Secrets) and the CRDs stay.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t)
	helmIn := func(args ...string) string {
		return string(helmRun(t, append(args, "--kubeconfig", c.kubeconfig)...))
	}
	helmIn("install", "mfa-operator", releasedChart(), "--namespace", "mfa-system", "--create-namespace",
		"--set", "publicURL=https://auth.example.com", "--set", "cookieDomain=example.com", "--set", "trustedProxies={10.0.0.0/8}")
	c.mustKubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s", "crd/mfapolicies.mfa.operator.dev")
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "deployment/mfa-operator", "-o",
		`jsonpath={.spec.template.spec.containers[0].env[?(@.name=="MFA_TRUSTED_PROXIES")].value}`)).To(Equal("10.0.0.0/8"))

	c.mustKubectl(t, distFile(t, "crds.yaml"), "apply", "--server-side", "-f", "-")
	helmIn("upgrade", "mfa-operator", releasedChart(), "--namespace", "mfa-system", "--reuse-values", "--set", "replicas=3")
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "deployment/mfa-operator", "-o", "jsonpath={.spec.replicas}")).To(Equal("3"))
	g.Expect(c.mustKubectl(t, nil, "-n", "mfa-system", "get", "deployment/mfa-operator", "-o",
		`jsonpath={.spec.template.spec.containers[0].env[?(@.name=="MFA_PUBLIC_URL")].value}`)).To(Equal("https://auth.example.com"))

	c.mustKubectl(t, nil, "-n", "mfa-system", "create", "secret", "generic", "enrolment-sample", "--from-literal=k=v")
	helmIn("uninstall", "mfa-operator", "--namespace", "mfa-system")
	_, err := c.kubectl(nil, "-n", "mfa-system", "get", "deployment/mfa-operator")
	g.Expect(err).To(MatchError(ContainSubstring("NotFound")))
	for _, kept := range []string{"namespace/mfa-system", "secret/enrolment-sample", "crd/mfapolicies.mfa.operator.dev", "crd/mfaproviders.mfa.operator.dev"} {
		_, err := c.kubectl(nil, "-n", "mfa-system", "get", kept)
		g.Expect(err).NotTo(HaveOccurred(), "%s is kept", kept)
	}
}
