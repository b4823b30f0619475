package controllers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// TestSamplesBecomeReady applies config/samples as `kubectl apply -k`
// does (kustomize's output, in its order) in the namespace "default" and
// checks that every file of config/samples is in it, that the provider
// comes before the policy, that both become Ready without a Warning
// event, and that the sample Ingress carries the policy's URLs.
func TestSamplesBecomeReady(t *testing.T) {
	g := NewWithT(t)
	dir := filepath.Join(repoRoot, "config", "samples")
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	g.Expect(yaml.Unmarshal(raw, &kustomization)).To(Succeed())
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range files {
		if f := filepath.Base(f); f != "kustomization.yaml" {
			g.Expect(kustomization.Resources).To(ContainElement(f), "config/samples/%s is not in its kustomization.yaml", f)
		}
	}

	objs := kustomize(t, dir)
	var kinds []string
	for _, u := range objs {
		u.SetNamespace("default")
		g.Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s %s", u.GetKind(), u.GetName())
		t.Cleanup(func() { deleteAndWait(t, u) })
		kinds = append(kinds, u.GetKind())
	}
	g.Expect(kinds).To(Equal([]string{"MFAProvider", "MFAProvider", "MFAPolicy", "Ingress"}), "the providers first: a policy applied before its provider waits for it")

	for name, multifactor := range map[string]string{"google-authenticator": v1alpha1.MultifactorGoogleAuthenticator, "webauthn": v1alpha1.MultifactorWebAuthn} {
		waitFor(t, &v1alpha1.MFAProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}},
			func(g Gomega, p *v1alpha1.MFAProvider) {
				expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
				g.Expect(p.Status.Multifactor).To(Equal(multifactor))
			})
	}
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

	expectNoWarningEvents(t, "default", "google-authenticator", "admin")
}

// kustomize renders a kustomization as `kubectl apply -k` would, in the
// order kubectl applies the objects.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(cctx, filepath.Join(assetsDir, "kubectl"), "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("decoding kubectl kustomize %s: %v", dir, err)
			}
			return objs
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
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
// field and (for CEL) the position with the expression and a caret under
// it, and a Warning event; fixing it makes the policy Ready again.
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
				"\n | request.path.startsWith(\"/admin\") &&\n | ....................................^",
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
				"rule \"office\" (spec.rules[0].when): ERROR: <input>:1:1: undeclared reference to 'requets'\n" +
					" | requets.path == \"/\"\n" +
					" | ^",
			},
			fix: func(t *testing.T, _ string, p *v1alpha1.MFAPolicy) {
				update(t, p, func(p *v1alpha1.MFAPolicy) { p.Spec.Rules[0].When = `request.path == "/"` })
			},
		},
		{
			name:   "user.claims under a header identity, fixed by reading the user from a JWT",
			policy: func(ns string) *v1alpha1.MFAPolicy { return mfaPolicy(ns, "claims", `"sc" in user.claims.amr`, "totp") },
			reason: v1alpha1.ReasonInvalidExpression,
			messages: []string{
				`rule "office" (spec.rules[0].when): ERROR: <input>:1:9: user.claims is only set for a jwt identity; `,
				"\n | \"sc\" in user.claims.amr\n | ........^",
			},
			fix: func(t *testing.T, _ string, p *v1alpha1.MFAPolicy) {
				update(t, p, func(p *v1alpha1.MFAPolicy) {
					p.Spec.Identity = v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTIdentity{
						Issuer: "https://login.example.com", Audiences: []string{"admin"}, JWKSURL: "https://login.example.com/jwks"}}
				})
			},
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
				g.Expect(ready.Message).NotTo(ContainSubstring("in container"))
				g.Expect(len(ready.Message)).To(BeNumerically("<=", 1024))
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

// TestPolicyWaitsForAProviderNotCreatedYet: a policy applied before its
// provider is Ready=False, reason ProviderNotFound, naming the rule and
// the field; it is not stalled and gets a Normal event, not a Warning, as
// the provider may be on its way (the same apply, another team); the
// provider's creation makes it Ready.
func TestPolicyWaitsForAProviderNotCreatedYet(t *testing.T) {
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"))
	pol := mfaPolicy(ns, "unknown-provider", "false", "totp", "later")
	create(t, pol)

	const message = `rule "everyone-else" (spec.rules[1].multifactor.providers[1]): MFAProvider "later" not found in namespace`
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonProviderNotFound})
		g.Expect(ready.Message).To(ContainSubstring(message))
		g.Expect(p.Status.RuleCount).To(BeZero(), "no rule of a never-valid policy is in force")
	})
	expectEvent(t, ns, pol.Name, corev1.EventTypeNormal, v1alpha1.ReasonProviderNotFound, message)

	create(t, totpProvider(ns, "later"))
	waitFor(t, pol, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		g.Expect(p.Status.RuleCount).To(BeEquivalentTo(2))
	})
	expectNoWarningEvents(t, ns, pol.Name)
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

// Two policies listing the same host: host-based lookup refuses the host,
// and both say so in status, naming each other, while staying Ready (in
// force by name); when one drops the host, both are Succeeded again.
func TestPoliciesListingTheSameHostAreFlagged(t *testing.T) {
	ns := newNamespace(t)
	other := newNamespace(t)
	host := ns + ".example.com"
	first := withHosts(mfaPolicy(ns, "first", "false", "totp"), host, "first."+host)
	second := withHosts(mfaPolicy(other, "second", "false", "totp"), "second."+host)
	create(t, totpProvider(ns, "totp"), totpProvider(other, "totp"), first, second)
	for _, p := range []*v1alpha1.MFAPolicy{first, second} {
		waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
			expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		})
	}

	update(t, second, func(p *v1alpha1.MFAPolicy) { p.Spec.Hosts = append(p.Spec.Hosts, host) })
	waitFor(t, second, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, hostConflict)
		g.Expect(ready.Message).To(ContainSubstring(`spec.hosts[1]: host "` + host + `" is also listed by MFAPolicy ` + ns + `/first (another namespace)`))
		g.Expect(ready.Message).To(ContainSubstring("refuses those hosts (403)"))
		g.Expect(ready.Message).To(ContainSubstring("/auth/" + other + "/second"))
	})
	// The first policy did not change, and says so too.
	waitFor(t, first, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, hostConflict)
		g.Expect(ready.Message).To(ContainSubstring(`spec.hosts[0]: host "` + host + `" is also listed by MFAPolicy ` + other + `/second`))
		g.Expect(p.Status.RuleCount).To(BeEquivalentTo(2), "its rules stay in force")
	})
	expectWarningEvent(t, ns, "first", v1alpha1.ReasonHostConflict, "is also listed by MFAPolicy "+other+"/second")
	NewWithT(t).Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundlePolicy(b, ns, "first")).NotTo(BeNil(), "in force by name")
		g.Expect(bundlePolicy(b, other, "second")).NotTo(BeNil(), "in force by name")
	}).WithTimeout(timeout).Should(Succeed())

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
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, hostConflict)
	})
	NewWithT(t).Expect(k8sClient.Delete(ctx, third)).To(Succeed())
	waitFor(t, first, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
}

var hostConflict = verdict{ready: metav1.ConditionTrue, reason: v1alpha1.ReasonHostConflict}

func withHosts(p *v1alpha1.MFAPolicy, hosts ...string) *v1alpha1.MFAPolicy {
	p.Spec.Hosts = hosts
	return p
}

// The spellings and overlaps the challenge server fails closed on are the
// ones both policies report: a host with and without its default port,
// and a host inside another namespace's wildcard. Within one namespace the
// most specific host wins, which is no conflict.
func TestHostConflictsOfNormalisedAndOverlappingHosts(t *testing.T) {
	ns, other := newNamespace(t), newNamespace(t)
	d := ns + ".example.com"
	shop := withHosts(mfaPolicy(ns, "shop", "false", "totp"), "shop."+d)
	shop443 := withHosts(mfaPolicy(other, "shop", "false", "totp"), "shop."+d+":443")
	corp := withHosts(mfaPolicy(ns, "corp", "false", "totp"), "*.corp."+d)
	payroll := withHosts(mfaPolicy(other, "payroll", "false", "totp"), "payroll.corp."+d)
	wiki := withHosts(mfaPolicy(ns, "wiki", "false", "totp"), "wiki.corp."+d)
	create(t, totpProvider(ns, "totp"), totpProvider(other, "totp"), shop, shop443, corp, payroll, wiki)

	for _, tc := range []struct {
		p    *v1alpha1.MFAPolicy
		want []string
	}{
		{shop, []string{`spec.hosts[0]: host "shop.` + d + `" is also listed by MFAPolicy ` + other + `/shop (another namespace)`}},
		{shop443, []string{`spec.hosts[0]: host "shop.` + d + `" is also listed by MFAPolicy ` + ns + `/shop (another namespace)`}},
		{payroll, []string{`spec.hosts[0]: host "payroll.corp.` + d + `" is inside "*.corp.` + d + `" of MFAPolicy ` + ns + `/corp (another namespace)`}},
		{corp, []string{`spec.hosts[0]: host "*.corp.` + d + `" is over "payroll.corp.` + d + `" of MFAPolicy ` + other + `/payroll (another namespace)`}},
	} {
		waitFor(t, tc.p, func(g Gomega, p *v1alpha1.MFAPolicy) {
			ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, hostConflict)
			for _, w := range tc.want {
				g.Expect(ready.Message).To(ContainSubstring(w))
			}
			g.Expect(ready.Message).NotTo(ContainSubstring("/wiki"), "a host inside its own namespace's wildcard is no conflict")
		})
	}
	waitFor(t, wiki, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})

	// Resolved on one side, cleared on both.
	update(t, payroll, func(p *v1alpha1.MFAPolicy) { p.Spec.Hosts = []string{"payroll." + d} })
	for _, p := range []*v1alpha1.MFAPolicy{payroll, corp} {
		waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
			expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		})
	}
}

// A policy that is not in force (never valid) does not take a host from
// the challenge server, so it conflicts with nobody: the valid policy
// listing the host stays Succeeded, as the server routes the host to it.
// Once the other becomes valid (here, its provider appears: nothing
// changes in either policy), both report the conflict.
func TestHostConflictsCountOnlyPoliciesInForce(t *testing.T) {
	ns, other := newNamespace(t), newNamespace(t)
	host := "admin." + ns + ".example.com"
	valid := withHosts(mfaPolicy(ns, "admin", "false", "totp"), host)
	waiting := withHosts(mfaPolicy(other, "admin", "false", "totp"), host+":443")
	create(t, totpProvider(ns, "totp"), valid, waiting)

	waitFor(t, waiting, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonProviderNotFound})
	})
	waitFor(t, valid, func(g Gomega, p *v1alpha1.MFAPolicy) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	NewWithT(t).Eventually(func(g Gomega) {
		b, _ := bundleInForce(g)
		g.Expect(bundlePolicy(b, ns, "admin")).NotTo(BeNil())
		g.Expect(bundlePolicy(b, other, "admin")).To(BeNil(), "the server never sees it")
	}).WithTimeout(timeout).Should(Succeed())

	create(t, totpProvider(other, "totp"))
	waitFor(t, waiting, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, hostConflict)
		g.Expect(ready.Message).To(ContainSubstring(`host "` + host + `" is also listed by MFAPolicy ` + ns + `/admin`))
	})
	waitFor(t, valid, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, hostConflict)
		g.Expect(ready.Message).To(ContainSubstring(`host "` + host + `" is also listed by MFAPolicy ` + other + `/admin`))
	})
}

func TestPolicyHostThatIsNotAHostNameIsInvalid(t *testing.T) {
	ns := newNamespace(t)
	p := withHosts(mfaPolicy(ns, "admin", "false", "totp"), "ok."+ns+".example.com", "*.com")
	create(t, totpProvider(ns, "totp"), p)
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonInvalidSpec, stalled: true})
		g.Expect(ready.Message).To(ContainSubstring(`spec.hosts[1]: "*.com" is not a host name or a wildcard`))
	})
}
