package webhook

import (
	"fmt"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"
)

// TestManyPoliciesWithSharedRulesDecideTheirOwnHosts loads many policies
// whose rules repeat the same texts (compiled once, on every CPU) with
// a different action each: every policy answers with its own.
func TestManyPoliciesWithSharedRulesDecideTheirOwnHosts(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, "")
	docs := coreProvidersYAML
	actions := []string{"Allow", "Deny"}
	for i := range 200 {
		docs += fmt.Sprintf(`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: p%d, namespace: apps }
spec:
  hosts: [p%d.example.com]
  identity: { header: {} }
  rules:
  - { name: assets, when: 'request.path.startsWith("/static/")', action: Allow }
  - { name: everyone, when: 'true', action: %s }
`, i, i, actions[i%2])
	}
	f.load(docs)
	h := map[string]string{"X-Auth-Request-Email": ana}
	for i := range 200 {
		want := []int{http.StatusOK, http.StatusForbidden}[i%2]
		w := f.serve(authRequest(fmt.Sprintf("/auth/apps/p%d", i), fmt.Sprintf("https://p%d.example.com/app", i), h))
		g.Expect(w.Code).To(Equal(want), "policy p%d", i)
		w = f.serve(authRequest(fmt.Sprintf("/auth/apps/p%d", i), fmt.Sprintf("https://p%d.example.com/static/a.css", i), h))
		g.Expect(w.Code).To(Equal(http.StatusOK), "policy p%d, an asset", i)
	}
}

// TestBundleRefusalNamesTheFirstPolicyThatDoesNotCompile: policies are
// compiled at once, and a refused bundle still names the first of them in
// the bundle's order that does not compile; the last good one stays.
func TestBundleRefusalNamesTheFirstPolicyThatDoesNotCompile(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	good := f.s.config.snapshot()
	b := bundleFromYAML(t, coreAdminPolicyYAML)
	base := b.Policies[0]
	b.Policies = nil
	for i := range 50 {
		p := base
		p.Name = fmt.Sprintf("p%02d", i)
		p.Spec.Hosts = []string{fmt.Sprintf("p%02d.example.com", i)}
		if i == 17 || i == 40 {
			p.Spec.Rules = append(p.Spec.Rules[:0:0], p.Spec.Rules...)
			p.Spec.Rules[0].When = fmt.Sprintf(`request.pth == "/%d"`, i)
		}
		b.Policies = append(b.Policies, p)
	}
	err := f.s.config.ApplyBundle(b, "refused", "test")
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("MFAPolicy apps/p17: rule"))
	g.Expect(err.Error()).To(ContainSubstring("undefined field 'pth'"))
	g.Expect(f.s.config.snapshot()).To(BeIdenticalTo(good))
}
