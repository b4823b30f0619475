package controllers_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestAPIServerRefusesInvalidObjects: what the schema and its CEL rules can
// check, the API server refuses before any controller sees the object.
func TestAPIServerRefusesInvalidObjects(t *testing.T) {
	policyWith := func(spec string) string {
		return "apiVersion: mfa.operator.dev/v1alpha1\nkind: MFAPolicy\nmetadata: {name: refused}\nspec:\n" + spec
	}
	providerWith := func(spec string) string {
		return "apiVersion: mfa.operator.dev/v1alpha1\nkind: MFAProvider\nmetadata: {name: refused}\nspec:\n" + spec
	}
	const identity = "  identity: {header: {user: X-User}}\n"
	tests := []struct {
		name    string
		object  string
		message string
	}{
		{
			name:    "action outside the enum",
			object:  policyWith(identity + "  rules: [{name: a, when: 'true', action: Maybe}]\n"),
			message: `spec.rules[0].action: Unsupported value: "Maybe": supported values: "Allow", "RequireMFA", "Deny"`,
		},
		{
			name:    "rule without when",
			object:  policyWith(identity + "  rules: [{name: a, action: Allow}]\n"),
			message: `spec.rules[0].when: Required value`,
		},
		{
			name:    "policy without rules",
			object:  policyWith(identity),
			message: `spec.rules: Required value`,
		},
		{
			name:    "RequireMFA without multifactor",
			object:  policyWith(identity + "  rules: [{name: a, when: 'true', action: RequireMFA}]\n"),
			message: `a RequireMFA rule needs multifactor.providers`,
		},
		{
			name:    "multifactor on an Allow rule",
			object:  policyWith(identity + "  rules: [{name: a, when: 'true', action: Allow, multifactor: {providers: [totp]}}]\n"),
			message: `multifactor is only allowed on a RequireMFA rule`,
		},
		{
			name:    "duplicate rule names",
			object:  policyWith(identity + "  rules: [{name: a, when: 'true', action: Allow}, {name: a, when: 'false', action: Deny}]\n"),
			message: `spec.rules[1]: Duplicate value: {"name":"a"}`,
		},
		{
			name:    "rule name that is not a DNS label",
			object:  policyWith(identity + "  rules: [{name: Office_Hours, when: 'true', action: Allow}]\n"),
			message: `spec.rules[0].name: Invalid value: "Office_Hours"`,
		},
		{
			name:    "both identity sources",
			object:  policyWith("  identity: {header: {user: X-User}, jwt: {issuer: i, audiences: [a], jwksURL: 'https://i/jwks'}}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
			message: `set exactly one of identity.header, identity.jwt and identity.forwardAuth`,
		},
		{
			name:    "no identity source",
			object:  policyWith("  identity: {}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
			message: `set exactly one of identity.header, identity.jwt and identity.forwardAuth`,
		},
		{
			name:    "forwardAuth beside header",
			object:  policyWith("  identity: {header: {user: X-User}, forwardAuth: {url: 'http://o/oauth2/auth', signinURL: 'https://o/oauth2/start'}}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
			message: `set exactly one of identity.header, identity.jwt and identity.forwardAuth`,
		},
		{
			name:    "forwardAuth cache TTL over 5m",
			object:  policyWith("  identity: {forwardAuth: {url: 'http://o/oauth2/auth', signinURL: 'https://o/oauth2/start', cacheTTL: 10m}}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
			message: `spec.identity.forwardAuth.cacheTTL: Invalid value: "10m": cacheTTL must be a duration between 0s and 5m, e.g. 10s`,
		},
		{
			name:    "forwardAuth sign-in URL that is not http(s)",
			object:  policyWith("  identity: {forwardAuth: {url: 'http://o/oauth2/auth', signinURL: 'javascript:alert(1)'}}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
			message: `spec.identity.forwardAuth.signinURL: Invalid value: "javascript:alert(1)"`,
		},
		{
			name:    "rememberFor of zero",
			object:  policyWith(identity + rememberFor("0s")),
			message: `spec.rules[0].multifactor.rememberFor: Invalid value: "0s": rememberFor must be a duration between 1m and 8760h, e.g. 720h`,
		},
		{
			name:    "rememberFor under a minute",
			object:  policyWith(identity + rememberFor("59s")),
			message: `spec.rules[0].multifactor.rememberFor: Invalid value: "59s": rememberFor must be a duration between 1m and 8760h, e.g. 720h`,
		},
		{
			name:    "rememberFor over a year",
			object:  policyWith(identity + rememberFor("1000000h")),
			message: `spec.rules[0].multifactor.rememberFor: Invalid value: "1000000h": rememberFor must be a duration between 1m and 8760h, e.g. 720h`,
		},
		{
			name:    "rememberFor beyond what a duration holds",
			object:  policyWith(identity + rememberFor("99999999999h")),
			message: `spec.rules[0].multifactor.rememberFor: Invalid value: "99999999999h": rememberFor must be a duration between 1m and 8760h, e.g. 720h`,
		},
		{
			name:    "rememberFor in days",
			object:  policyWith(identity + rememberFor("10 days")),
			message: `spec.rules[0].multifactor.rememberFor: Invalid value: "10 days": rememberFor must be a duration between 1m and 8760h, e.g. 720h`,
		},
		{
			name:    "negative rememberFor",
			object:  policyWith(identity + rememberFor("-5m")),
			message: `spec.rules[0].multifactor.rememberFor: Invalid value: "-5m": rememberFor must be a duration between 1m and 8760h, e.g. 720h`,
		},
		{
			name:    "default outside the enum",
			object:  policyWith(identity + "  rules: [{name: a, when: 'true', action: Allow}]\n  default: RequireMFA\n"),
			message: `spec.default: Unsupported value: "RequireMFA": supported values: "Allow", "Deny"`,
		},
		{
			name:    "provider type outside the enum",
			object:  providerWith("  type: sms\n"),
			message: `spec.type: Unsupported value: "sms": supported values: "totp", "duo"`,
		},
		{
			name:    "duo provider without duo settings",
			object:  providerWith("  type: duo\n"),
			message: `spec.duo is required when type is duo`,
		},
		{
			name:    "totp period of zero",
			object:  providerWith("  type: totp\n  totp: {period: 0s}\n"),
			message: `spec.totp.period: Invalid value: "0s": period must be a duration between 1s and 10m, e.g. 30s`,
		},
		{
			name:    "totp period in words",
			object:  providerWith("  type: totp\n  totp: {period: 30 seconds}\n"),
			message: `spec.totp.period: Invalid value: "30 seconds": period must be a duration between 1s and 10m, e.g. 30s`,
		},
		{
			name:    "totp period over ten minutes",
			object:  providerWith("  type: totp\n  totp: {period: 11m}\n"),
			message: `spec.totp.period: Invalid value: "11m": period must be a duration between 1s and 10m, e.g. 30s`,
		},
		{
			name:    "totp digits outside the enum",
			object:  providerWith("  type: totp\n  totp: {digits: 7}\n"),
			message: `spec.totp.digits: Unsupported value: 7: supported values: "6", "8"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			u := &unstructured.Unstructured{}
			g.Expect(yaml.Unmarshal([]byte(tt.object), &u.Object)).To(Succeed())
			u.SetNamespace("default")
			err := k8sClient.Create(ctx, u)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tt.message))
			if strings.Contains(tt.message, "must be a duration") {
				g.Expect(err.Error()).NotTo(ContainSubstring("should match"), "a readable message, not a regular expression")
			}
		})
	}
}

// rememberFor is a policy's rules with one RequireMFA rule remembering
// the browser for d.
func rememberFor(d string) string {
	return "  rules: [{name: a, when: 'true', action: RequireMFA, multifactor: {providers: [totp], rememberFor: '" + d + "'}}]\n"
}

// TestAPIServerAcceptsDurationsWithinBounds: the bounds themselves and the
// usual spellings are accepted, and read back as written.
func TestAPIServerAcceptsDurationsWithinBounds(t *testing.T) {
	ns := newNamespace(t)
	for _, d := range []string{"1m", "90m", "1h30m", "720h", "8760h", "0.5h"} {
		g := NewWithT(t)
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal([]byte("apiVersion: mfa.operator.dev/v1alpha1\nkind: MFAPolicy\nmetadata: {name: remember}\nspec:\n"+
			"  identity: {header: {user: X-User}}\n"+rememberFor(d)), &u.Object)).To(Succeed())
		u.SetNamespace(ns)
		u.SetName("remember-" + strings.NewReplacer(".", "-").Replace(d))
		g.Expect(k8sClient.Create(ctx, u)).To(Succeed(), "rememberFor %s", d)
	}
	for _, d := range []string{"1s", "30s", "1m30s", "10m"} {
		g := NewWithT(t)
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal([]byte("apiVersion: mfa.operator.dev/v1alpha1\nkind: MFAProvider\nmetadata: {name: period}\nspec:\n"+
			"  type: totp\n  totp: {period: "+d+"}\n"), &u.Object)).To(Succeed())
		u.SetNamespace(ns)
		u.SetName("period-" + d)
		g.Expect(k8sClient.Create(ctx, u)).To(Succeed(), "period %s", d)
	}
}
