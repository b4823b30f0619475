package policy

import (
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// claimsPolicy is a policy of the given identity whose second rule,
// "smartcard", has the given `when`.
func claimsPolicy(identity v1alpha1.IdentitySpec, when string) *v1alpha1.MFAPolicy {
	return &v1alpha1.MFAPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "admin"},
		Spec: v1alpha1.MFAPolicySpec{
			Identity: identity,
			Rules: []v1alpha1.Rule{
				{Name: "billing", When: `request.path.startsWith("/billing")`, Action: v1alpha1.ActionDeny},
				{Name: "smartcard", When: when, Action: v1alpha1.ActionAllow},
			},
		},
	}
}

var (
	headerIdentity = v1alpha1.IdentitySpec{Header: &v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email"}}
	jwtIdentity    = v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTIdentity{Issuer: "https://login.example.com", Audiences: []string{"admin"}, JWKSURL: "https://login.example.com/jwks"}}
	anyProvider    = Tenancy{Provider: func(types.NamespacedName, string) ProviderState { return ProviderReady }}
)

// TestUserClaimsNeedAJWTIdentity: a rule reading user.claims, has()
// included, is refused under a header identity, whose claims are always
// empty, naming the rule, the field and the position; under a JWT
// identity it is accepted.
func TestUserClaimsNeedAJWTIdentity(t *testing.T) {
	tests := []struct {
		name, when, drawing string
	}{
		{"a claim read", `"sc" in user.claims.amr`, " | \"sc\" in user.claims.amr\n | ........^"},
		{"has() of a claim", `has(user.claims.amr) && "sc" in user.claims.amr`, " | has(user.claims.amr) && \"sc\" in user.claims.amr\n | ....^"},
		{"has() of the claims", `has(user.claims)`, " | has(user.claims)\n | ....^"},
		{"the claims as a map", `user.claims.size() > 0`, " | user.claims.size() > 0\n | ^"},
		{"a claim by index", `user.claims["acr"] == "phr"`, " | user.claims[\"acr\"] == \"phr\"\n | ^"},
		{"inside a comprehension", `["sc", "hwk"].exists(m, m in user.claims.amr)`, " | [\"sc\", \"hwk\"].exists(m, m in user.claims.amr)\n | " + strings.Repeat(".", 29) + "^"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" under a header identity is refused", func(t *testing.T) {
			g := NewWithT(t)
			_, err := CheckPolicy(claimsPolicy(headerIdentity, tt.when), anyProvider)
			var fe *FieldError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "%v", err)
			g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonInvalidExpression))
			g.Expect(fe.Field).To(Equal("spec.rules[1].when"))
			g.Expect(fe.Rule).To(Equal("smartcard"))
			g.Expect(fe.Message).To(HavePrefix("ERROR: <input>:1:"))
			g.Expect(fe.Message).To(ContainSubstring(": user.claims is only set for a jwt identity; "))
			g.Expect(fe.Message).To(HaveSuffix("\n" + tt.drawing))
		})
		t.Run(tt.name+" under a JWT identity is accepted", func(t *testing.T) {
			_, err := CheckPolicy(claimsPolicy(jwtIdentity, tt.when), anyProvider)
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
		})
	}
}

// TestRulesWithoutUserClaimsSuitBothIdentities: other fields, and a field
// named claims of something else than user, are no reason to refuse.
func TestRulesWithoutUserClaimsSuitBothIdentities(t *testing.T) {
	for _, when := range []string{
		`user.email.endsWith("@example.com") && "admins" in user.groups`,
		`request.headers["claims"] == "x"`,
		`{"claims": 1}.claims == 1`,
		`[1].exists(claims, claims == 1)`,
	} {
		for _, id := range []v1alpha1.IdentitySpec{headerIdentity, jwtIdentity} {
			_, err := CheckPolicy(claimsPolicy(id, when), anyProvider)
			NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s", when)
		}
	}
}

// TestCompilePolicyLoadsUserClaimsUnderAHeaderIdentity: the challenge
// server compiles the bundle with CompilePolicy, which does not refuse
// what CheckPolicy now does, so a bundle written before still loads.
func TestCompilePolicyLoadsUserClaimsUnderAHeaderIdentity(t *testing.T) {
	p := claimsPolicy(headerIdentity, `has(user.claims.amr) && "sc" in user.claims.amr`)
	_, err := CompilePolicy(p.Namespace, p.Name, &p.Spec)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}
