package controllers_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/examples"
)

// TestReadmeExamplesBecomeReady applies every Kubernetes object of
// README.md's YAML examples, in the order the README shows them, as a
// reader copying them would, and checks that every MFAProvider and
// MFAPolicy becomes Ready (Succeeded) without a Warning event, and that
// an Ingress carries the URLs of its policy's status. Duo's answer to the
// README's placeholder keys comes from the suite's stand-in (duoStub).
func TestReadmeExamplesBecomeReady(t *testing.T) {
	g := NewWithT(t)
	blocks, err := examples.YAML(filepath.Join(repoRoot, "README.md"))
	g.Expect(err).NotTo(HaveOccurred())

	var objs []*unstructured.Unstructured
	for _, b := range blocks {
		for _, doc := range b.Documents {
			var head struct {
				APIVersion string         `json:"apiVersion"`
				Kind       string         `json:"kind"`
				HTTP       map[string]any `json:"http"`
				MeshConfig map[string]any `json:"meshConfig"`
			}
			g.Expect(json.Unmarshal(doc, &head)).To(Succeed())
			if head.APIVersion == "" && head.Kind == "" && head.HTTP != nil {
				t.Logf("README.md:%d: Traefik's dynamic configuration, not a Kubernetes object", b.Line)
				continue
			}
			if head.APIVersion == "" && head.Kind == "" && head.MeshConfig != nil {
				t.Logf("README.md:%d: Istio's mesh config, not a Kubernetes object (TestReadmeIstioExtensionProvider)", b.Line)
				continue
			}
			if head.Kind == "Kustomization" {
				t.Logf("README.md:%d: a kustomization, read by kustomize, not applied", b.Line)
				continue
			}
			u := &unstructured.Unstructured{}
			g.Expect(u.UnmarshalJSON(doc)).To(Succeed(), "README.md:%d: a YAML example that is neither a Kubernetes object nor known here", b.Line)
			g.Expect(u.GetNamespace()).NotTo(BeEmpty(), "README.md:%d: %s %s names no namespace", b.Line, u.GetKind(), u.GetName())
			objs = append(objs, u)
		}
	}

	var policies, providers []string
	for _, u := range objs {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetNamespace()}}
		if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		g.Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
		t.Cleanup(func() { deleteAndWait(t, u) })
		switch u.GetKind() {
		case "MFAPolicy":
			policies = append(policies, u.GetNamespace()+"/"+u.GetName())
		case "MFAProvider":
			providers = append(providers, u.GetNamespace()+"/"+u.GetName())
		}
	}
	g.Expect(policies).NotTo(BeEmpty())
	g.Expect(providers).NotTo(BeEmpty())

	authURLs := map[string]string{} // auth-url -> auth-signin of the policies
	for _, u := range objs {
		key := client.ObjectKeyFromObject(u)
		switch u.GetKind() {
		case "MFAProvider":
			waitFor(t, &v1alpha1.MFAProvider{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}},
				func(g Gomega, p *v1alpha1.MFAProvider) {
					expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
				})
			expectNoWarningEvents(t, key.Namespace, key.Name)
		case "MFAPolicy":
			waitFor(t, &v1alpha1.MFAPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}},
				func(g Gomega, p *v1alpha1.MFAPolicy) {
					expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
					g.Expect(p.Status.RuleCount).To(BeEquivalentTo(len(p.Spec.Rules)))
					// The routes the README shows are wired to their policies.
					g.Expect(p.Status.Targets).To(HaveLen(len(p.Spec.TargetRefs)))
					for _, st := range p.Status.Targets {
						g.Expect(st.State).To(Equal(v1alpha1.TargetAttached), st.Message)
					}
					if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ProtectedCondition); c != nil {
						g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
					}
					authURLs[p.Status.AuthURL] = p.Status.SigninURL
				})
			expectNoWarningEvents(t, key.Namespace, key.Name)
		}
	}
	for _, u := range objs {
		if u.GetKind() != "Ingress" {
			continue
		}
		a := u.GetAnnotations()
		g.Expect(authURLs).To(HaveKeyWithValue(a["nginx.ingress.kubernetes.io/auth-url"], a["nginx.ingress.kubernetes.io/auth-signin"]),
			"Ingress %s/%s: the auth-url and auth-signin of a policy's status", u.GetNamespace(), u.GetName())
	}
}

// deleteAndWait deletes an object and, for an MFAPolicy, waits until it
// has left the bundle, so that the next test may list its hosts.
func deleteAndWait(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	if err := k8sClient.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting %s %s: %v", u.GetKind(), client.ObjectKeyFromObject(u), err)
		return
	}
	if u.GetKind() == "MFAPolicy" {
		NewWithT(t).Eventually(func(g Gomega) {
			b, _ := bundleInForce(g)
			g.Expect(bundlePolicy(b, u.GetNamespace(), u.GetName())).To(BeNil())
		}).WithTimeout(timeout).Should(Succeed())
	}
}
