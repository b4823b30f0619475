package controllers_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// kubectl shows a policy's mode in a column of its own; the mode defaults
// to Enforce and is one of Enforce and Audit.
func TestPolicyModeIsAColumnWithADefaultAndAnEnum(t *testing.T) {
	g := NewWithT(t)
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "mfapolicies.mfa.operator.dev"}, crd)).To(Succeed())
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	g.Expect(versions).NotTo(BeEmpty())
	cols, _, _ := unstructured.NestedSlice(versions[0].(map[string]any), "additionalPrinterColumns")
	g.Expect(cols).To(ContainElement(HaveKeyWithValue("name", "Mode")))
	g.Expect(cols).To(ContainElement(And(HaveKeyWithValue("name", "Mode"), HaveKeyWithValue("jsonPath", ".spec.mode"))))

	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	enforce := mfaPolicy(ns, "enforce", `request.path == "/"`, "totp")
	audit := mfaPolicy(ns, "audit", `request.path == "/"`, "totp")
	audit.Spec.Mode = v1alpha1.ModeAudit
	create(t, enforce, audit)
	g.Expect(enforce.Spec.Mode).To(Equal(v1alpha1.ModeEnforce), "defaulted by the API server")
	waitFor(t, audit, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	g.Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		bp := bundlePolicy(b, ns, "audit")
		g.Expect(bp).NotTo(BeNil())
		g.Expect(bp.Spec.Mode).To(Equal(v1alpha1.ModeAudit))
	}).Should(Succeed())

	bad := mfaPolicy(ns, "shadow", `true`, "totp")
	bad.Spec.Mode = "Shadow"
	err := k8sClient.Create(ctx, bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring(`spec.mode: Unsupported value: "Shadow"`))
}

// Without --geoip-db (the suite's operator has none), a policy reading
// request.geo is not Ready and says what to do.
func TestPolicyReadingGeoWithoutADatabaseIsNotReady(t *testing.T) {
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	p := mfaPolicy(ns, "abroad", `request.geo.country != "FR"`, "totp")
	create(t, p)
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonGeoIPUnavailable, stalled: true})
		g.Expect(ready.Message).To(ContainSubstring("--geoip-db"))
		g.Expect(strings.Contains(ready.Message, "\n | request.geo.country != \"FR\"\n | ^")).To(BeTrue(), ready.Message)
	})
}
