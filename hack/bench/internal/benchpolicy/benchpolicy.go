// Package benchpolicy builds the MFAProvider and MFAPolicy objects the
// benchmarks load: one TOTP provider and policies shaped like real ones (a
// few rules that do not match a normal request, then one that asks for a
// second factor).
package benchpolicy

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

const (
	// Namespace holds every benchmark object.
	Namespace = "apps"
	// ProviderName is the TOTP provider every policy asks for.
	ProviderName = "google-authenticator"
	// PolicyName is the policy the HTTP benchmark asks about.
	PolicyName = "bench"
	// Host is the policy's host, where the browser is sent back to.
	Host = "app.example.com"
	// User is the user the first-factor proxy vouches for.
	User = "bench@example.com"
)

// Provider is the TOTP provider.
func Provider() *v1alpha1.MFAProvider {
	return &v1alpha1.MFAProvider{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "MFAProvider"},
		ObjectMeta: metav1.ObjectMeta{Name: ProviderName, Namespace: Namespace},
		Spec: v1alpha1.MFAProviderSpec{
			Type: v1alpha1.ProviderTOTP,
			TOTP: &v1alpha1.TOTPSpec{Issuer: "Bench Corp"},
		},
	}
}

// Policies returns n policies: the first is PolicyName serving Host, the
// others policy-0001... serving p0001.example.com...
func Policies(n int) []*v1alpha1.MFAPolicy {
	out := make([]*v1alpha1.MFAPolicy, 0, n)
	for i := range n {
		name, host := PolicyName, Host
		if i > 0 {
			name, host = fmt.Sprintf("policy-%04d", i), fmt.Sprintf("p%04d.example.com", i)
		}
		out = append(out, Policy(name, host))
	}
	return out
}

// DistinctPolicies is Policies where no two policies share a rule's text:
// policy i's rules name its own path prefix, network and host (see
// DistinctPolicy). The rules decide a normal request as Policies' do.
func DistinctPolicies(n int) []*v1alpha1.MFAPolicy {
	out := Policies(n)
	for i, p := range out {
		p.Spec.Rules = distinctRules(i)
	}
	return out
}

// distinctRules are Policy's rules with texts of their own for policy i:
// a path prefix /static-i/, the network 10.a.b.0/24 and a host no request
// names, so that the last rule still decides a normal request.
func distinctRules(i int) []v1alpha1.Rule {
	rules := Policy("", "").Spec.Rules
	rules[0].When = fmt.Sprintf(`request.path.startsWith("/static-%d/")`, i)
	rules[1].When = fmt.Sprintf(`cidr("10.%d.%d.0/24").containsIP(ip(request.ip))`, i/256%256, i%256)
	rules[2].When = fmt.Sprintf(`request.host != "unused-%d.invalid"`, i)
	return rules
}

// Policy is one policy with header identity and three rules; for a normal
// request from outside the office network the last one decides:
// RequireMFA with the TOTP provider.
func Policy(name, host string) *v1alpha1.MFAPolicy {
	return &v1alpha1.MFAPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "MFAPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: v1alpha1.MFAPolicySpec{
			Hosts: []string{host},
			Identity: v1alpha1.IdentitySpec{
				Header: &v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email", Groups: "X-Auth-Request-Groups"},
			},
			Rules: []v1alpha1.Rule{
				{Name: "public-assets", When: `request.path.startsWith("/static/")`, Action: v1alpha1.ActionAllow},
				{Name: "office-network", When: `cidr("10.0.0.0/8").containsIP(ip(request.ip))`, Action: v1alpha1.ActionAllow},
				{
					Name:   "everyone-else",
					When:   "true",
					Action: v1alpha1.ActionRequireMFA,
					Multifactor: &v1alpha1.MultifactorSpec{
						Providers:   []string{ProviderName},
						RememberFor: &metav1.Duration{Duration: v1alpha1.DefaultRememberFor},
					},
				},
			},
			Default: v1alpha1.DefaultAllow,
		},
	}
}
