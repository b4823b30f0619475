package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// waitForMarker creates a policy and waits for it in the bundle. The bundle
// reconciler lists policies from one informer, in order: once the marker is
// in the bundle, every earlier policy change has been seen too.
func waitForMarker(t *testing.T, ns, name string) {
	t.Helper()
	create(t, mfaPolicy(ns, name, "false", "totp"))
	NewWithT(t).Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundlePolicy(b, ns, name)).NotTo(BeNil())
	}).WithTimeout(timeout).Should(Succeed())
}

// TestBundleFollowsPolicies: the bundle follows a policy's creation, valid
// update and deletion; an invalid update leaves the last good spec in force.
func TestBundleFollowsPolicies(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	pol := mfaPolicy(ns, "admin", `request.path.startsWith("/v1")`, "totp")
	create(t, pol)
	whenInBundle := func(g Gomega) string {
		b, _ := bundleInForce(g)
		e := bundlePolicy(b, ns, "admin")
		if e == nil {
			return "<absent>"
		}
		return e.Spec.Rules[0].When
	}

	g.Eventually(whenInBundle).WithTimeout(timeout).Should(Equal(`request.path.startsWith("/v1")`))

	update(t, pol, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path.startsWith("/v2")` })
	g.Eventually(whenInBundle).WithTimeout(timeout).Should(Equal(`request.path.startsWith("/v2")`))

	update(t, pol, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path.startsWith("/v3") &&` })
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonInvalidExpression, stalled: true})
		g.Expect(p.Status.RuleCount).To(BeEquivalentTo(2), "the last good rules are still in force")
	})
	waitForMarker(t, ns, "marker-after-invalid-update")
	g.Expect(whenInBundle(g)).To(Equal(`request.path.startsWith("/v2")`))

	g.Expect(k8sClient.Delete(ctx, pol)).To(Succeed())
	g.Eventually(whenInBundle).WithTimeout(timeout).Should(Equal("<absent>"))
}

// TestBundleDropsDeletedProvider: a deleted provider leaves the bundle, and
// so does a policy kept in force only by its last good entry that names it.
func TestBundleDropsDeletedProvider(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	prov := totpProvider(ns, "totp")
	pol := mfaPolicy(ns, "admin", "false", "totp")
	create(t, prov, pol)
	g.Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundleProvider(b, ns, "totp")).NotTo(BeNil())
		g.Expect(bundlePolicy(b, ns, "admin")).NotTo(BeNil())
	}).WithTimeout(timeout).Should(Succeed())
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})

	g.Expect(k8sClient.Delete(ctx, prov)).To(Succeed())
	g.Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundleProvider(b, ns, "totp")).To(BeNil())
		g.Expect(bundlePolicy(b, ns, "admin")).To(BeNil())
	}).WithTimeout(timeout).Should(Succeed())
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonProviderNotFound})
	})
	// Out of force: a Warning, although recreating the provider is enough.
	expectWarningEvent(t, ns, pol.Name, v1alpha1.ReasonProviderNotFound, `MFAProvider "totp" not found`)
}

// TestChallengeServerObjects: the Deployment, the Service, the
// PodDisruptionBudget and the keyring exist, none with an owner reference;
// the pod template does not depend on the bundle.
func TestChallengeServerObjects(t *testing.T) {
	g := NewWithT(t)
	dep := &appsv1.Deployment{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, bundleKey, &corev1.Secret{})).To(Succeed())
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: controllers.ChallengeName}, dep)).To(Succeed())
	}).WithTimeout(timeout).Should(Succeed())

	g.Expect(dep.OwnerReferences).To(BeEmpty())
	g.Expect(dep.Spec.Template.Annotations).To(Equal(map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}),
		"nothing of the bundle on the pod template")
	g.Expect(dep.Spec.Replicas).To(Equal(ptr.To[int32](2)))
	c := dep.Spec.Template.Spec.Containers[0]
	g.Expect(c.Image).To(Equal("mfa-operator:test"))
	g.Expect(c.Args).To(Equal([]string{"webhook", "--namespace=mfa-system", "--public-url=https://auth.example.com",
		"--cookie-domain=example.com", "--trusted-proxies=10.0.0.0/8", "--insecure-cookies=false", "--identity-headers=*", "--trust-x-real-ip=false", "--allow-ambiguous-paths=false", "--metrics-addr=:9090", "--grpc-addr=:9001"}))
	g.Expect(c.Ports).To(ContainElement(HaveField("Name", "metrics")))

	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: controllers.ChallengeName}, svc)).To(Succeed())
	g.Expect(svc.OwnerReferences).To(BeEmpty())
	g.Expect(svc.Spec.Ports).To(HaveLen(2))
	g.Expect(svc.Spec.Ports[0].Port).To(BeEquivalentTo(80))
	g.Expect(svc.Spec.Ports[0].TargetPort.String()).To(Equal("http"))
	g.Expect(svc.Spec.Ports[1].Port).To(BeEquivalentTo(9001))
	g.Expect(svc.Spec.Ports[1].TargetPort.String()).To(Equal("grpc-authz"))
	g.Expect(svc.Spec.Selector).To(Equal(dep.Spec.Selector.MatchLabels))

	pdb := &policyv1.PodDisruptionBudget{}
	g.Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: controllers.ChallengeName}, pdb)
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(pdb.OwnerReferences).To(BeEmpty())
	g.Expect(pdb.Spec.MaxUnavailable).To(Equal(ptr.To(intstr.FromInt32(1))), "a drain takes one challenge pod at a time")
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(dep.Spec.Selector.MatchLabels))

	kr := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, keyringKey, kr)).To(Succeed())
	g.Expect(kr.OwnerReferences).To(BeEmpty())
	g.Expect(kr.Labels).To(HaveKeyWithValue("app.kubernetes.io/component", "keyring"))
	_, err := keyring.Parse(kr.Data[policy.KeyringKey])
	g.Expect(err).NotTo(HaveOccurred())
}

// TestKeyringIsNeverOverwritten: a keyring changed by someone else (here a
// rotation) survives the controller's next reconciles.
func TestKeyringIsNeverOverwritten(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	kr := &corev1.Secret{}
	g.Eventually(func() error { return k8sClient.Get(ctx, keyringKey, kr) }).WithTimeout(timeout).Should(Succeed())

	parsed, err := keyring.Parse(kr.Data[policy.KeyringKey])
	g.Expect(err).NotTo(HaveOccurred())
	rotated := parsed.Data()
	g.Expect(rotated.AddSymmetricKey(time.Now())).To(Succeed())
	raw, err := rotated.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	update(t, kr, func(s *corev1.Secret) { s.Data[policy.KeyringKey] = raw })

	waitForMarker(t, ns, "marker-after-rotation")
	g.Consistently(func(g Gomega) []byte {
		g.Expect(k8sClient.Get(ctx, keyringKey, kr)).To(Succeed())
		return kr.Data[policy.KeyringKey]
	}).WithTimeout(time.Second).Should(Equal(raw))
}

// TestChallengeDeploymentDriftIsRepaired: a change to what the controller
// sets on the Deployment is put back.
func TestChallengeDeploymentDriftIsRepaired(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: controllers.ChallengeName}}
	waitFor(t, dep, func(g Gomega, d *appsv1.Deployment) { g.Expect(d.Spec.Replicas).To(Equal(ptr.To[int32](2))) })
	update(t, dep, func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr.To[int32](5)
		d.Spec.Template.Spec.Containers[0].Image = "attacker/image"
	})
	waitFor(t, dep, func(g Gomega, d *appsv1.Deployment) {
		g.Expect(d.Spec.Replicas).To(Equal(ptr.To[int32](2)))
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("mfa-operator:test"))
	})
}

// TestChallengeDeploymentUnchangedIsNotRewritten: merging the desired
// Deployment into the one the API server defaulted changes nothing, so an
// unchanged bundle does not write the Deployment again.
func TestChallengeDeploymentUnchangedIsNotRewritten(t *testing.T) {
	g := NewWithT(t)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: controllers.ChallengeName}}
	waitFor(t, dep, func(g Gomega, d *appsv1.Deployment) {
		g.Expect(d.Spec.Template.Spec.Containers).NotTo(BeEmpty())
	})
	merged := dep.DeepCopy()
	controllers.MergeDeployment(merged, controllers.ChallengeDeployment(opts))
	g.Expect(equality.Semantic.DeepEqual(merged, dep)).To(BeTrue(), "merge changed the Deployment")

	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dep), svc)).To(Succeed())
	mergedSvc := svc.DeepCopy()
	controllers.MergeService(mergedSvc, controllers.ChallengeService(opts))
	g.Expect(equality.Semantic.DeepEqual(mergedSvc, svc)).To(BeTrue(), "merge changed the Service")
}
