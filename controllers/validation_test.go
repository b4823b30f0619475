package controllers_test

import (
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
			message: `set exactly one of identity.header and identity.jwt`,
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
		})
	}
}
