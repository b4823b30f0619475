package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

var challengeKey = types.NamespacedName{Namespace: opts.Namespace, Name: controllers.ChallengeName}

// challengeObjects are the Deployment, Service and PodDisruptionBudget of
// the challenge server in ns.
func challengeObjects(ns string) []client.Object {
	meta := metav1.ObjectMeta{Namespace: ns, Name: controllers.ChallengeName}
	return []client.Object{&appsv1.Deployment{ObjectMeta: meta}, &corev1.Service{ObjectMeta: meta}, &policyv1.PodDisruptionBudget{ObjectMeta: meta}}
}

// TestChallengeObjectsOwnedByBundleSecretAreAdopted: challenge objects of
// an earlier version, controlled by the bundle Secret, lose that owner
// reference at the next reconcile; an owner reference someone else set
// stays.
func TestChallengeObjectsOwnedByBundleSecretAreAdopted(t *testing.T) {
	bundle := &corev1.Secret{}
	NewWithT(t).Eventually(func() error { return k8sClient.Get(ctx, bundleKey, bundle) }).WithTimeout(timeout).Should(Succeed())
	oldOwner := metav1.OwnerReference{APIVersion: "v1", Kind: "Secret", Name: policy.BundleSecretName, UID: bundle.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "inventory", UID: "3d3c6bb5-1f0e-4b8e-9d57-0d2c1a6c9f00"}

	for _, obj := range challengeObjects(opts.Namespace) {
		waitFor(t, obj, func(Gomega, client.Object) {})
		update(t, obj, func(o client.Object) { o.SetOwnerReferences([]metav1.OwnerReference{oldOwner, other}) })
		t.Cleanup(func() { update(t, obj, func(o client.Object) { o.SetOwnerReferences(nil) }) })
	}
	for _, obj := range challengeObjects(opts.Namespace) {
		waitFor(t, obj, func(g Gomega, o client.Object) {
			g.Expect(o.GetOwnerReferences()).To(Equal([]metav1.OwnerReference{other}), "%T", o)
		})
	}
}

// TestBundleSecretDeletedIsWrittenBackWithoutRollout: a deleted bundle
// Secret is written back as it was, a policy kept in force by its last
// good entry included; the challenge Deployment is neither replaced nor
// rolled.
func TestBundleSecretDeletedIsWrittenBackWithoutRollout(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	pol := mfaPolicy(ns, "admin", `request.path.startsWith("/v1")`, "totp")
	create(t, pol)
	waitForMarker(t, ns, "marker-before")
	update(t, pol, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path.startsWith("/v2") &&` })
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonInvalidExpression, stalled: true})
	})
	waitForMarker(t, ns, "marker-after-invalid-update")

	before := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, bundleKey, before)).To(Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, challengeKey, dep)).To(Succeed())

	g.Expect(k8sClient.Delete(ctx, before)).To(Succeed())
	after := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: bundleKey.Namespace, Name: bundleKey.Name}}
	waitFor(t, after, func(g Gomega, s *corev1.Secret) { g.Expect(s.UID).NotTo(Equal(before.UID)) })
	g.Expect(after.Data).To(Equal(before.Data), "the same bundle, byte for byte")
	b, _ := bundleInForce(g)
	g.Expect(bundlePolicy(b, ns, "admin").Spec.Rules[0].When).To(Equal(`request.path.startsWith("/v1")`), "the last good entry is kept")

	// The reconcile that wrote the Secret back has also applied the
	// Deployment once this marker is in the bundle.
	waitForMarker(t, ns, "marker-after-delete")
	got := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, challengeKey, got)).To(Succeed())
	g.Expect(got.UID).To(Equal(dep.UID), "the Deployment is the same object")
	g.Expect(got.Generation).To(Equal(dep.Generation), "the Deployment's spec was not changed")
	g.Expect(got.OwnerReferences).To(BeEmpty())
}

// TestPolicyEditDoesNotRollChallengePods: a policy edit changes the bundle
// Secret, not the challenge Deployment.
func TestPolicyEditDoesNotRollChallengePods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	waitForMarker(t, ns, "marker-before")
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, challengeKey, dep)).To(Succeed())
	_, hashBefore := bundleInForce(g)

	pol := mfaPolicy(ns, "admin", `request.path.startsWith("/v1")`, "totp")
	create(t, pol)
	update(t, pol, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path.startsWith("/v2")` })
	g.Eventually(func(g Gomega) string {
		b, _ := bundleInForce(g)
		e := bundlePolicy(b, ns, "admin")
		g.Expect(e).NotTo(BeNil())
		return e.Spec.Rules[0].When
	}).WithTimeout(timeout).Should(Equal(`request.path.startsWith("/v2")`))
	waitForMarker(t, ns, "marker-after")

	_, hashAfter := bundleInForce(g)
	g.Expect(hashAfter).NotTo(Equal(hashBefore))
	got := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, challengeKey, got)).To(Succeed())
	g.Expect(got.Generation).To(Equal(dep.Generation), "no rollout")
	g.Expect(equality.Semantic.DeepEqual(got.Spec.Template, dep.Spec.Template)).To(BeTrue(), "the pod template is unchanged")
}

// TestKeyringSecretDeletedIsWrittenBackWithTheSameKeys: the controller
// writes a deleted keyring Secret back with the same keys and says so.
func TestKeyringSecretDeletedIsWrittenBackWithTheSameKeys(t *testing.T) {
	g := NewWithT(t)
	before := &corev1.Secret{}
	g.Eventually(func() error { return k8sClient.Get(ctx, keyringKey, before) }).WithTimeout(timeout).Should(Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, challengeKey, dep)).To(Succeed())

	g.Expect(k8sClient.Delete(ctx, before)).To(Succeed())
	after := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: keyringKey.Namespace, Name: keyringKey.Name}}
	waitFor(t, after, func(g Gomega, s *corev1.Secret) { g.Expect(s.UID).NotTo(Equal(before.UID)) })
	g.Expect(after.Data[policy.KeyringKey]).To(Equal(before.Data[policy.KeyringKey]), "the same keys")
	g.Expect(after.Labels).To(Equal(before.Labels))
	expectWarningEvent(t, opts.Namespace, policy.KeyringSecretName, controllers.ReasonKeyringRestored, "written back with the keys in force")

	got := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, challengeKey, got)).To(Succeed())
	g.Expect(got.UID).To(Equal(dep.UID))
	g.Expect(got.Generation).To(Equal(dep.Generation), "no rollout")
}

// newBundleReconciler is a bundle reconciler of its own for namespace ns,
// called directly rather than by the manager: a controller process of its
// own, with its own memory, whose options the test chooses.
func newBundleReconciler(ns string, manageDeployment bool) *controllers.BundleReconciler {
	o := opts
	o.Namespace = ns
	o.ManageDeployment = manageDeployment
	return &controllers.BundleReconciler{
		Client:    k8sClient,
		APIReader: k8sClient,
		Options:   o,
		Recorder:  manager.GetEventRecorder("bundle-test"),
	}
}

func reconcileBundle(r *controllers.BundleReconciler) error {
	_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: r.Options.Namespace, Name: policy.BundleSecretName}})
	return err
}

func expectNoKeyring(g Gomega, ns string) {
	err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policy.KeyringSecretName}, &corev1.Secret{})
	g.ExpectWithOffset(1, apierrors.IsNotFound(err)).To(BeTrue(), "keyring Secret: %v", err)
}

// TestKeyringNotGeneratedWhileEnrolmentsExist: a controller that never saw
// the keyring finds it missing while enrolment Secrets exist: it generates
// none, says why, and still writes the bundle. Once the enrolments are
// gone it makes the first keyring.
func TestKeyringNotGeneratedWhileEnrolmentsExist(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	enrolment := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mfa-user-0123456789",
		Labels: map[string]string{store.KindLabel: store.KindEnrollment}}}
	create(t, enrolment)
	r := newBundleReconciler(ns, false)

	err := reconcileBundle(r)
	g.Expect(err).To(MatchError(ContainSubstring("no new keyring generated")))
	g.Expect(err).To(MatchError(ContainSubstring("enrolment Secrets")))
	expectNoKeyring(g, ns)
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policy.BundleSecretName}, &corev1.Secret{})).To(Succeed(), "the bundle is written all the same")
	expectWarningEvent(t, ns, policy.KeyringSecretName, controllers.ReasonKeyringMissing, "Restore the Secret from a backup")

	g.Expect(k8sClient.Delete(ctx, enrolment)).To(Succeed())
	g.Expect(reconcileBundle(r)).To(Succeed())
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policy.KeyringSecretName}, &corev1.Secret{})).To(Succeed())
}

// TestKeyringNotGeneratedWhileChallengeServerRuns: after a restart (a new
// reconciler, no memory) the controller refuses to replace a deleted
// keyring while the challenge Deployment runs with it; the controller that
// knew it writes the same keys back.
func TestKeyringNotGeneratedWhileChallengeServerRuns(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	first := newBundleReconciler(ns, true)
	g.Expect(reconcileBundle(first)).To(Succeed())
	key := types.NamespacedName{Namespace: ns, Name: policy.KeyringSecretName}
	before := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, key, before)).To(Succeed())
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: controllers.ChallengeName}, dep)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, before)).To(Succeed())

	restarted := newBundleReconciler(ns, true)
	g.Expect(reconcileBundle(restarted)).To(MatchError(ContainSubstring("the challenge Deployment mfa-challenge runs with its keys")))
	expectNoKeyring(g, ns)
	expectWarningEvent(t, ns, policy.KeyringSecretName, controllers.ReasonKeyringMissing, "none is generated")

	g.Expect(reconcileBundle(first)).To(Succeed())
	after := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, key, after)).To(Succeed())
	g.Expect(after.Data).To(Equal(before.Data), "the same keys")

	// The restarted controller now reads the keyring and keeps a copy.
	g.Expect(reconcileBundle(restarted)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, after)).To(Succeed())
	g.Expect(reconcileBundle(restarted)).To(Succeed())
	g.Expect(k8sClient.Get(ctx, key, after)).To(Succeed())
	g.Expect(after.Data).To(Equal(before.Data), "the same keys")

	got := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: controllers.ChallengeName}, got)).To(Succeed())
	g.Expect(got.UID).To(Equal(dep.UID))
	g.Expect(got.Generation).To(Equal(dep.Generation))
}

// TestChallengeTemplateFollowsFlagsNotPolicies: with the controller's
// options changed (a restart with other flags) the pod template changes;
// with a policy changed only the bundle does.
func TestChallengeTemplateFollowsFlagsNotPolicies(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	r := newBundleReconciler(ns, true)
	g.Expect(reconcileBundle(r)).To(Succeed())
	depKey := types.NamespacedName{Namespace: ns, Name: controllers.ChallengeName}
	dep := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, depKey, dep)).To(Succeed())
	bundle := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policy.BundleSecretName}, bundle)).To(Succeed())

	apps := newNamespace(t)
	create(t, totpProvider(apps, "totp"), mfaPolicy(apps, "admin", "false", "totp"))
	g.Expect(reconcileBundle(r)).To(Succeed())
	policyEdited := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, depKey, policyEdited)).To(Succeed())
	g.Expect(policyEdited.Generation).To(Equal(dep.Generation), "a policy edit does not roll the pods")
	edited := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policy.BundleSecretName}, edited)).To(Succeed())
	g.Expect(edited.Data[policy.BundleHashKey]).NotTo(Equal(bundle.Data[policy.BundleHashKey]))

	r.Options.WebhookImage = "mfa-operator:next"
	g.Expect(reconcileBundle(r)).To(Succeed())
	newImage := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, depKey, newImage)).To(Succeed())
	g.Expect(newImage.Generation).To(Equal(dep.Generation + 1))
	g.Expect(newImage.Spec.Template.Spec.Containers[0].Image).To(Equal("mfa-operator:next"))

	r.Options.TrustedProxies = "10.0.0.0/8,192.168.0.0/16"
	g.Expect(reconcileBundle(r)).To(Succeed())
	newFlag := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, depKey, newFlag)).To(Succeed())
	g.Expect(newFlag.Generation).To(Equal(dep.Generation + 2))
	g.Expect(newFlag.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--trusted-proxies=10.0.0.0/8,192.168.0.0/16"))
	g.Expect(newFlag.UID).To(Equal(dep.UID))
}
