package controllers_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// TestSamplesBecomeReady applies config/samples (as kustomize lists them)
// in the namespace "default" and checks that the provider and the policy
// become Ready and that the sample Ingress carries the policy's URLs.
func TestSamplesBecomeReady(t *testing.T) {
	g := NewWithT(t)
	dir := filepath.Join(repoRoot, "config", "samples")
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	g.Expect(yaml.Unmarshal(raw, &kustomization)).To(Succeed())
	g.Expect(kustomization.Resources).NotTo(BeEmpty())

	kinds := map[string]int{}
	for _, file := range kustomization.Resources {
		f, err := os.Open(filepath.Join(dir, file))
		g.Expect(err).NotTo(HaveOccurred())
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				break
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetNamespace("default")
			g.Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s %s", file, u.GetName())
			kinds[u.GetKind()]++
		}
		f.Close()
	}
	g.Expect(kinds).To(HaveKeyWithValue("MFAProvider", 1))
	g.Expect(kinds).To(HaveKeyWithValue("MFAPolicy", 1))
	g.Expect(kinds).To(HaveKeyWithValue("Ingress", 1))

	waitFor(t, &v1alpha1.MFAProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "google-authenticator"}},
		func(g Gomega, p *v1alpha1.MFAProvider) {
			expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
			g.Expect(p.Status.Multifactor).To(Equal(v1alpha1.MultifactorGoogleAuthenticator))
		})
	pol := &v1alpha1.MFAPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "admin"}}
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		g.Expect(ready.Message).To(Equal("3 rules compiled and in force"))
		g.Expect(p.Status.RuleCount).To(BeEquivalentTo(3))
		g.Expect(p.Status.AuthURL).To(Equal("http://mfa-challenge.mfa-system.svc.cluster.local/auth/default/admin"))
		g.Expect(p.Status.SigninURL).To(Equal("https://auth.example.com/challenge/default/admin"))
	})

	ing := &networkingv1.Ingress{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: "admin"}, ing)).To(Succeed())
	g.Expect(ing.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/auth-url", pol.Status.AuthURL))
	g.Expect(ing.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/auth-signin", pol.Status.SigninURL))
	g.Expect(ing.Annotations).To(HaveKeyWithValue("nginx.ingress.kubernetes.io/auth-response-headers", "X-MFA-User,X-MFA-Multifactor,X-MFA-Assertion"))

	g.Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundlePolicy(b, "default", "admin")).NotTo(BeNil())
		g.Expect(bundleProvider(b, "default", "google-authenticator")).NotTo(BeNil())
	}).WithTimeout(timeout).Should(Succeed())
}

// TestPolicyCreateToReadyTime measures, for the record, how long one policy
// takes from its creation to Ready=True (its provider already Ready).
func TestPolicyCreateToReadyTime(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	prov := totpProvider(ns, "totp")
	create(t, prov)
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})

	pol := mfaPolicy(ns, "timed", `request.path.startsWith("/admin")`, "totp")
	start := time.Now()
	g.Expect(k8sClient.Create(ctx, pol)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pol), pol)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(pol.Status.Conditions, v1alpha1.ReadyCondition)).To(BeTrue())
	}).WithTimeout(timeout).WithPolling(2 * time.Millisecond).Should(Succeed())
	elapsed := time.Since(start)
	g.Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundlePolicy(b, ns, "timed")).NotTo(BeNil())
	}).WithTimeout(timeout).WithPolling(2 * time.Millisecond).Should(Succeed())
	t.Logf("one MFAPolicy from create to Ready: %s; in the bundle Secret after %s", elapsed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestPolicyConfigurationErrorsAreStalledThenRecover: each configuration
// error gives Ready=False, Stalled=True, a message naming the rule, the
// field and (for CEL) the position, and a Warning event; fixing it makes
// the policy Ready again.
func TestPolicyConfigurationErrorsAreStalledThenRecover(t *testing.T) {
	tests := []struct {
		name     string
		policy   func(ns string) *v1alpha1.MFAPolicy
		reason   string
		messages []string
		fix      func(t *testing.T, ns string, p *v1alpha1.MFAPolicy)
	}{
		{
			name: "invalid CEL expression, fixed by editing the rule",
			policy: func(ns string) *v1alpha1.MFAPolicy {
				return mfaPolicy(ns, "bad-cel", `request.path.startsWith("/admin") &&`, "totp")
			},
			reason: v1alpha1.ReasonInvalidExpression,
			messages: []string{
				`rule "office" (spec.rules[0].when): ERROR: <input>:1:37: Syntax error`,
			},
			fix: func(t *testing.T, _ string, p *v1alpha1.MFAPolicy) {
				update(t, p, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path.startsWith("/admin")` })
			},
		},
		{
			name:   "undeclared CEL variable, fixed by editing the rule",
			policy: func(ns string) *v1alpha1.MFAPolicy { return mfaPolicy(ns, "typo", `requets.path == "/"`, "totp") },
			reason: v1alpha1.ReasonInvalidExpression,
			messages: []string{
				`rule "office" (spec.rules[0].when): ERROR: <input>:1:1: undeclared reference to 'requets'`,
			},
			fix: func(t *testing.T, _ string, p *v1alpha1.MFAPolicy) {
				update(t, p, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path == "/"` })
			},
		},
		{
			name: "unknown provider, fixed by creating it",
			policy: func(ns string) *v1alpha1.MFAPolicy {
				return mfaPolicy(ns, "unknown-provider", "false", "totp", "later")
			},
			reason: v1alpha1.ReasonProviderNotFound,
			messages: []string{
				`rule "everyone-else" (spec.rules[1].multifactor.providers[1]): MFAProvider "later" not found in namespace`,
			},
			fix: func(t *testing.T, ns string, _ *v1alpha1.MFAPolicy) { create(t, totpProvider(ns, "later")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			create(t, totpProvider(ns, "totp"))
			pol := tt.policy(ns)
			create(t, pol)

			broken := verdict{ready: metav1.ConditionFalse, reason: tt.reason, stalled: true}
			waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
				ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, broken)
				for _, m := range tt.messages {
					g.Expect(ready.Message).To(ContainSubstring(m))
				}
				g.Expect(ready.Message).NotTo(ContainSubstring("\n"))
				g.Expect(p.Status.RuleCount).To(BeZero(), "no rule of a never-valid policy is in force")
			})
			expectWarningEvent(t, ns, pol.Name, tt.reason, tt.messages[0])

			tt.fix(t, ns, pol)
			waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
				expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
				g.Expect(p.Status.RuleCount).To(BeEquivalentTo(2))
			})
		})
	}
}

// TestPolicyWaitsForItsProvider: a policy naming a provider that is not
// Ready is not Ready either, without being stalled, and follows the
// provider when it becomes Ready.
func TestPolicyWaitsForItsProvider(t *testing.T) {
	ns := newNamespace(t)
	prov := duoProvider(ns, "duo", "duo-credentials") // its Secret does not exist yet
	pol := mfaPolicy(ns, "admin", "false", "duo")
	create(t, prov, pol)

	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonProviderNotReady})
		g.Expect(ready.Message).To(ContainSubstring(`rule "everyone-else" (spec.rules[1].multifactor.providers[0]): MFAProvider "duo" is not Ready`))
	})

	create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": "DIWAITS", "skey": "secret"}))
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
}

// Two policies listing the same host: /auth cannot serve the host, and
// both say so in status, naming each other; when one drops the host, both
// are Ready again.
func TestPoliciesListingTheSameHostAreFlagged(t *testing.T) {
	ns := newNamespace(t)
	other := newNamespace(t)
	host := ns + ".example.com"
	withHosts := func(p *v1alpha1.MFAPolicy, hosts ...string) *v1alpha1.MFAPolicy {
		p.Spec.Hosts = hosts
		return p
	}
	first := withHosts(mfaPolicy(ns, "first", "false", "totp"), host, "first."+host)
	second := withHosts(mfaPolicy(other, "second", "false", "totp"), "second."+host)
	create(t, totpProvider(ns, "totp"), totpProvider(other, "totp"), first, second)
	for _, p := range []*v1alpha1.MFAPolicy{first, second} {
		waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
			expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		})
	}

	update(t, second, func(p *v1alpha1.MFAPolicy) { p.Spec.Hosts = append(p.Spec.Hosts, host) })
	conflict := verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonHostConflict, stalled: true}
	waitFor(t, second, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, conflict)
		g.Expect(ready.Message).To(ContainSubstring(`spec.hosts[1]: host "` + host + `" is also listed by MFAPolicy ` + ns + `/first`))
		g.Expect(ready.Message).To(ContainSubstring("/auth/" + other + "/second"))
	})
	// The first policy did not change, and says so too.
	waitFor(t, first, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, conflict)
		g.Expect(ready.Message).To(ContainSubstring(`spec.hosts[0]: host "` + host + `" is also listed by MFAPolicy ` + other + `/second`))
		g.Expect(p.Status.RuleCount).To(BeEquivalentTo(2), "its rules stay in force")
	})
	expectWarningEvent(t, ns, "first", v1alpha1.ReasonHostConflict, "is also listed by MFAPolicy "+other+"/second")

	update(t, second, func(p *v1alpha1.MFAPolicy) { p.Spec.Hosts = []string{"second." + host} })
	for _, p := range []*v1alpha1.MFAPolicy{first, second} {
		waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
			expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		})
	}

	// Deleting one of two conflicting policies clears the other.
	third := withHosts(mfaPolicy(other, "third", "false", "totp"), "first."+host)
	create(t, third)
	waitFor(t, first, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, conflict)
	})
	NewWithT(t).Expect(k8sClient.Delete(ctx, third)).To(Succeed())
	waitFor(t, first, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
}
