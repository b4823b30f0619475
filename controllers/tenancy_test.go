package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// notAdmitted is the verdict of a policy naming a provider of another
// namespace that does not admit it: a configuration error the provider's
// owner (or the namespace's labels) must fix.
var notAdmitted = verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonProviderNotAdmitted, stalled: true}

// readyProvider creates a TOTP provider and waits until it is Ready.
func readyProvider(t *testing.T, p *v1alpha1.MFAProvider) *v1alpha1.MFAProvider {
	t.Helper()
	create(t, p)
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	return p
}

// expectInBundle waits until the bundle Secret holds ns/name, or no longer
// holds it.
func expectInBundle(t *testing.T, ns, name string, in bool) *policy.Bundle {
	t.Helper()
	var b *policy.Bundle
	NewWithT(t).Eventually(func(g Gomega) {
		b, _ = bundleInForce(g)
		if in {
			g.Expect(bundlePolicy(b, ns, name)).NotTo(BeNil(), "MFAPolicy %s/%s in the bundle", ns, name)
		} else {
			g.Expect(bundlePolicy(b, ns, name)).To(BeNil(), "MFAPolicy %s/%s not in the bundle", ns, name)
		}
	}).WithTimeout(timeout).Should(Succeed())
	return b
}

// TestTenancyProviderAdmittedByName: a policy naming a provider of another
// namespace is refused until the provider lists its namespace, follows the
// provider when it does, and leaves the bundle when the provider takes it
// back.
func TestTenancyProviderAdmittedByName(t *testing.T) {
	platform, team := newNamespace(t), newNamespace(t)
	prov := readyProvider(t, totpProvider(platform, "totp"))
	pol := mfaPolicy(team, "app", "false", platform+"/totp")
	create(t, pol)

	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, notAdmitted)
		g.Expect(ready.Message).To(ContainSubstring(`rule "everyone-else" (spec.rules[1].multifactor.providers[0]): MFAProvider ` +
			platform + `/totp does not admit policies of namespace "` + team + `"`))
		g.Expect(ready.Message).To(ContainSubstring("spec.allowedNamespaces"))
	})
	expectWarningEvent(t, team, pol.Name, v1alpha1.ReasonProviderNotAdmitted, platform+"/totp does not admit")
	expectInBundle(t, team, pol.Name, false)

	update(t, prov, func(p *v1alpha1.MFAProvider) { p.Spec.AllowedNamespaces = []string{"someone-else", team} })
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		g.Expect(p.Status.RuleCount).To(BeEquivalentTo(2))
	})
	b := expectInBundle(t, team, pol.Name, true)
	g := NewWithT(t)
	g.Expect(bundleProvider(b, platform, "totp")).NotTo(BeNil())
	g.Expect(bundlePolicy(b, team, pol.Name).Spec.Rules[1].Multifactor.Providers).To(Equal([]string{platform + "/totp"}))

	update(t, prov, func(p *v1alpha1.MFAProvider) { p.Spec.AllowedNamespaces = []string{"someone-else"} })
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, notAdmitted)
	})
	expectInBundle(t, team, pol.Name, false)
}

// TestTenancyProviderAdmittedByNamespaceLabels: with an
// allowedNamespaceSelector, labelling the policy's namespace admits it (the
// Namespace watch re-checks the policy and rebuilds the bundle), and
// taking the label away takes the provider back.
func TestTenancyProviderAdmittedByNamespaceLabels(t *testing.T) {
	platform, team := newNamespace(t), newNamespace(t)
	// A label of this test only: namespaces are shared by the whole suite.
	label := "shared-with-" + platform
	prov := totpProvider(platform, "totp")
	prov.Spec.AllowedNamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}}
	readyProvider(t, prov)
	pol := mfaPolicy(team, "app", "false", platform+"/totp")
	create(t, pol)
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, notAdmitted)
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}}
	setLabel := func(value string) {
		update(t, ns, func(ns *corev1.Namespace) {
			if ns.Labels == nil {
				ns.Labels = map[string]string{}
			}
			ns.Labels[label] = value
		})
	}

	setLabel("true")
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	b := expectInBundle(t, team, pol.Name, true)
	bp := bundleProvider(b, platform, "totp")
	NewWithT(t).Expect(bp).NotTo(BeNil())
	NewWithT(t).Expect(bp.SelectedNamespaces).To(Equal([]string{team}), "the challenge server checks admission from the bundle")

	setLabel("false")
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, notAdmitted)
	})
	expectInBundle(t, team, pol.Name, false)
}

// TestTenancyProviderNamedWithoutNamespaceIsThePolicysOwn: a bare name
// never reaches another namespace's provider, even one that admits the
// policy's namespace.
func TestTenancyProviderNamedWithoutNamespaceIsThePolicysOwn(t *testing.T) {
	platform, team := newNamespace(t), newNamespace(t)
	prov := totpProvider(platform, "totp")
	prov.Spec.AllowedNamespaces = []string{team}
	readyProvider(t, prov)
	pol := mfaPolicy(team, "app", "false", "totp")
	create(t, pol)
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonProviderNotFound})
		g.Expect(ready.Message).To(ContainSubstring(`MFAProvider "totp" not found in namespace "` + team + `"`))
	})
}

// TestTenancyIdentityHeaderNotAllowed: the policy reconciler refuses a
// header identity outside Options.IdentityHeaders. The suite's controllers
// run with no list (any header), so this test reconciles with a
// reconciler of its own, once the suite's has said Ready; the suite's does
// not come back to the policy, whose spec does not change.
func TestTenancyIdentityHeaderNotAllowed(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		reason string
	}{
		{name: "a header outside the list", user: "X-User", reason: v1alpha1.ReasonIdentityHeaderNotAllowed},
		{name: "a listed header in another case", user: "x-forwarded-email", reason: v1alpha1.ReasonSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			readyProvider(t, totpProvider(ns, "totp"))
			pol := mfaPolicy(ns, "app", "false", "totp")
			pol.Spec.Identity.Header.User = tt.user
			create(t, pol)
			waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
				expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
			})

			limited := opts
			limited.IdentityHeaders = policy.DefaultIdentityHeaders
			r := &controllers.MFAPolicyReconciler{Client: k8sClient, Options: limited}
			_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: pol.Name}})
			g.Expect(err).NotTo(HaveOccurred())

			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
			if tt.reason == v1alpha1.ReasonSucceeded {
				expectVerdict(g, pol.Status.Conditions, pol.Generation, pol.Status.ObservedGeneration, isReady)
				return
			}
			ready := expectVerdict(g, pol.Status.Conditions, pol.Generation, pol.Status.ObservedGeneration,
				verdict{ready: metav1.ConditionFalse, reason: tt.reason, stalled: true})
			g.Expect(ready.Message).To(ContainSubstring(`spec.identity.header.user: header "` + tt.user + `" is not one the operator allows`))
		})
	}
}
