package policy

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// Identity headers: a policy may read identities only from the allowed
// headers, checked for one policy and when a bundle is built.

func TestCheckIdentityHeaders(t *testing.T) {
	allowed := []string{"X-Auth-Request-Email", "X-Auth-Request-Groups"}
	header := func(h v1alpha1.HeaderIdentity) v1alpha1.MFAPolicySpec {
		return v1alpha1.MFAPolicySpec{Identity: v1alpha1.IdentitySpec{Header: &h}}
	}
	tests := []struct {
		name      string
		spec      v1alpha1.MFAPolicySpec
		allowed   []string
		wantField string // "" allowed
		wantName  string // the header the message names
	}{
		{name: "an allowed header", spec: header(v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email"}), allowed: allowed},
		{name: "an allowed header, other case", spec: header(v1alpha1.HeaderIdentity{User: "x-auth-request-email", Groups: "X-AUTH-REQUEST-GROUPS"}), allowed: allowed},
		{name: "the list in another case", spec: header(v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email"}), allowed: []string{"x-auth-request-email"}},
		{name: "the default user header when it is allowed", spec: header(v1alpha1.HeaderIdentity{}), allowed: allowed},
		{name: "an empty list allows any header", spec: header(v1alpha1.HeaderIdentity{User: "X-Anything", Groups: "X-Whatever"})},
		{name: "a JWT identity is not limited", allowed: allowed,
			spec: v1alpha1.MFAPolicySpec{Identity: v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTIdentity{Issuer: "https://idp", Audiences: []string{"a"}, Header: "X-Token"}}}},
		{name: "a user header not allowed", spec: header(v1alpha1.HeaderIdentity{User: "X-User"}), allowed: allowed,
			wantField: "spec.identity.header.user", wantName: "X-User"},
		{name: "the default user header when it is not allowed", spec: header(v1alpha1.HeaderIdentity{}), allowed: []string{"Remote-User"},
			wantField: "spec.identity.header.user", wantName: "X-Auth-Request-Email"},
		{name: "a groups header not allowed", spec: header(v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email", Groups: "X-Groups"}), allowed: allowed,
			wantField: "spec.identity.header.groups", wantName: "X-Groups"},
		{name: "a name header not allowed", spec: header(v1alpha1.HeaderIdentity{User: "X-Auth-Request-Email", Name: "x-name"}), allowed: allowed,
			wantField: "spec.identity.header.name", wantName: "X-Name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := CheckIdentityHeaders(&tt.spec, tt.allowed)
			if tt.wantField == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			fe := fieldErrorOf(t, err)
			g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonIdentityHeaderNotAllowed))
			g.Expect(fe.Field).To(Equal(tt.wantField))
			g.Expect(fe.Message).To(ContainSubstring(`header "` + tt.wantName + `" is not one the operator allows`))
			g.Expect(fe.Message).To(ContainSubstring("(--identity-headers: " + strings.Join(tt.allowed, ", ") + ")"))
		})
	}
}

func TestBuildBundleIdentityHeaders(t *testing.T) {
	withUser := func(user string) v1alpha1.MFAPolicy {
		p := mfaPolicy(teamB, "app", 1, "false", "totp")
		p.Spec.Identity.Header.User = user
		return p
	}
	tests := []struct {
		name    string
		user    string
		allowed []string
		reason  string
	}{
		{name: "a header outside the list is refused", user: "X-User", allowed: DefaultIdentityHeaders, reason: v1alpha1.ReasonIdentityHeaderNotAllowed},
		{name: "a listed header in another case is in force", user: "remote-user", allowed: DefaultIdentityHeaders},
		{name: "an empty list allows any header", user: "X-User"},
	}
	t.Run("a last good policy naming a header no longer allowed leaves the bundle", func(t *testing.T) {
		g := NewWithT(t)
		providers := []v1alpha1.MFAProvider{totpProvider(teamB, "totp")}
		previous, _ := BuildBundle([]v1alpha1.MFAPolicy{withUser("X-User")}, providers, nil, nil, BuildOptions{})
		g.Expect(previous.Policies).To(HaveLen(1))
		invalid := withUser("X-User")
		invalid.Generation = 2
		invalid.Spec.Rules[0].When = "request.path.startsWith("
		b, v := BuildBundle([]v1alpha1.MFAPolicy{invalid}, providers, nil, previous, BuildOptions{IdentityHeaders: DefaultIdentityHeaders})
		g.Expect(reasonOf(v.Policies[types.NamespacedName{Namespace: teamB, Name: "app"}])).To(Equal(v1alpha1.ReasonInvalidExpression))
		g.Expect(b.Policies).To(BeEmpty())
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b, v := BuildBundle([]v1alpha1.MFAPolicy{withUser(tt.user)}, []v1alpha1.MFAProvider{totpProvider(teamB, "totp")}, nil, nil,
				BuildOptions{IdentityHeaders: tt.allowed})
			key := types.NamespacedName{Namespace: teamB, Name: "app"}
			g.Expect(reasonOf(v.Policies[key])).To(Equal(tt.reason))
			if tt.reason != "" {
				g.Expect(fieldErrorOf(t, v.Policies[key]).Field).To(Equal("spec.identity.header.user"))
				g.Expect(b.Policies).To(BeEmpty())
			} else {
				g.Expect(b.Policies).To(HaveLen(1))
			}
		})
	}
}
