// Package policytest builds bundles for tests and measurements of how
// bundles are stored.
package policytest

import (
	"fmt"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Bundle is n policies shaped like real ones (about 600 bytes of JSON
// each, spread over 17 namespaces) and one TOTP provider.
func Bundle(n int) *policy.Bundle {
	b := &policy.Bundle{Providers: []policy.BundleProvider{{Namespace: "apps", Name: "google-authenticator", Spec: v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderTOTP}}}}
	for i := range n {
		b.Policies = append(b.Policies, Policy(fmt.Sprintf("team-%02d", i%17), fmt.Sprintf("policy-%05d", i)))
	}
	return b
}

// Policy is one policy of Bundle.
func Policy(namespace, name string) policy.BundlePolicy {
	return policy.BundlePolicy{Namespace: namespace, Name: name, Generation: 1,
		Spec: v1alpha1.MFAPolicySpec{
			Hosts: []string{name + "." + namespace + ".example.com"},
			Rules: []v1alpha1.Rule{
				{Name: "office", When: `cidr("10.0.0.0/8").containsIP(ip(request.ip)) && request.time.getHours("Europe/Paris") in [8,9,10,11,12,13,14,15,16,17]`, Action: v1alpha1.ActionAllow},
				{Name: "admins", When: `"admins" in user.groups && request.path.startsWith("/admin")`, Action: v1alpha1.ActionDeny},
				{Name: "everyone", When: "true", Action: v1alpha1.ActionRequireMFA, Multifactor: &v1alpha1.MultifactorSpec{Providers: []string{"google-authenticator"}}},
			},
		}}
}
