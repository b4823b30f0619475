package policy

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// The tenancy fixtures: a platform namespace owns a TOTP provider that app
// namespaces may be admitted to; team-b is the app namespace.
const (
	platformNS = "platform"
	teamB      = "team-b"
)

// sharedTOTP is platform/totp admitting the namespaces listed and, when
// sel is not nil, those its selector matches.
func sharedTOTP(sel *metav1.LabelSelector, namespaces ...string) v1alpha1.MFAProvider {
	p := totpProvider(platformNS, "totp")
	p.Spec.AllowedNamespaces = namespaces
	p.Spec.AllowedNamespaceSelector = sel
	return p
}

func sharedLabel() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"mfa.operator.dev/shared-providers": "true"}}
}

func fieldErrorOf(t *testing.T, err error) *FieldError {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want a *FieldError, got %v", err)
	}
	return fe
}

func TestProviderRef(t *testing.T) {
	tests := []struct {
		name    string
		ref     string
		want    types.NamespacedName
		wantErr string
	}{
		{name: "a name is a provider of the policy's namespace", ref: "totp", want: types.NamespacedName{Namespace: teamB, Name: "totp"}},
		{name: "namespace/name is a provider of that namespace", ref: "platform/totp", want: types.NamespacedName{Namespace: platformNS, Name: "totp"}},
		{name: "the policy's own namespace spelled out", ref: "team-b/totp", want: types.NamespacedName{Namespace: teamB, Name: "totp"}},
		{name: "a dotted provider name", ref: "platform/google.authenticator", want: types.NamespacedName{Namespace: platformNS, Name: "google.authenticator"}},
		{name: "empty", ref: "", wantErr: `"" is not an MFAProvider name or namespace/name`},
		{name: "empty namespace", ref: "/totp", wantErr: `the namespace "" is not a namespace name`},
		{name: "empty name", ref: "platform/", wantErr: `"platform/" is not an MFAProvider name`},
		{name: "upper-case namespace", ref: "Platform/totp", wantErr: `the namespace "Platform" is not a namespace name`},
		{name: "dotted namespace", ref: "platform.io/totp", wantErr: `the namespace "platform.io" is not a namespace name`},
		{name: "upper-case name", ref: "platform/TOTP", wantErr: `"platform/TOTP" is not an MFAProvider name`},
		{name: "two slashes", ref: "platform/totp/x", wantErr: `"platform/totp/x" is not an MFAProvider name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ProviderRef(teamB, tt.ref)
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestProviderKeysNamesEachProviderOnce(t *testing.T) {
	g := NewWithT(t)
	pol := mfaPolicy(teamB, "app", 1, "false", "totp", "team-b/totp", "platform/totp", "Bad/ref")
	g.Expect(ProviderKeys(teamB, &pol.Spec)).To(Equal([]types.NamespacedName{
		{Namespace: teamB, Name: "totp"},
		{Namespace: platformNS, Name: "totp"},
	}), "a name and its namespace/name are one provider; a name that does not resolve is left out")
}

func TestAdmits(t *testing.T) {
	shared := map[string]string{"mfa.operator.dev/shared-providers": "true"}
	tests := []struct {
		name     string
		list     []string
		sel      *metav1.LabelSelector
		ns       string
		nsLabels map[string]string
		want     bool
	}{
		{name: "its own namespace, without any list", ns: platformNS, want: true},
		{name: "another namespace, without any list", ns: teamB, want: false},
		{name: "another namespace in allowedNamespaces", list: []string{"team-a", teamB}, ns: teamB, want: true},
		{name: "another namespace not in allowedNamespaces", list: []string{"team-a"}, ns: teamB, want: false},
		{name: "a prefix of a listed namespace is not admitted", list: []string{"team-bb"}, ns: teamB, want: false},
		{name: "selector matches the namespace's labels", sel: sharedLabel(), ns: teamB, nsLabels: shared, want: true},
		{name: "selector does not match the namespace's labels", sel: sharedLabel(), ns: teamB,
			nsLabels: map[string]string{"mfa.operator.dev/shared-providers": "false"}, want: false},
		{name: "selector and a namespace without labels", sel: sharedLabel(), ns: teamB, want: false},
		{name: "selector with expressions", ns: teamB, nsLabels: map[string]string{"tier": "apps"}, want: true,
			sel: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"apps", "web"}}}}},
		{name: "empty selector admits every namespace", sel: &metav1.LabelSelector{}, ns: teamB, want: true},
		{name: "invalid selector admits none by label", ns: teamB, nsLabels: shared, want: false,
			sel: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "mfa.operator.dev/shared-providers", Operator: "Matches"}}}},
		{name: "invalid selector still admits the list", list: []string{teamB}, ns: teamB, want: true,
			sel: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Matches"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := sharedTOTP(tt.sel, tt.list...)
			NewWithT(t).Expect(Admits(platformNS, &p.Spec, tt.ns, tt.nsLabels)).To(Equal(tt.want))
		})
	}
}

// TestCheckPolicyProviderNotAdmitted: the verdict names the rule, the
// field, the provider and what its owner does to admit the namespace.
func TestCheckPolicyProviderNotAdmitted(t *testing.T) {
	g := NewWithT(t)
	pol := mfaPolicy(teamB, "app", 1, "false", "platform/totp")
	_, err := CheckPolicy(&pol, Tenancy{Provider: func(types.NamespacedName, string) ProviderState { return ProviderNotAdmitted }})
	fe := fieldErrorOf(t, err)
	g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonProviderNotAdmitted))
	g.Expect(fe.Field).To(Equal("spec.rules[1].multifactor.providers[0]"))
	g.Expect(fe.Rule).To(Equal("everyone-else"))
	g.Expect(err.Error()).To(ContainSubstring(`rule "everyone-else" (spec.rules[1].multifactor.providers[0]): MFAProvider platform/totp does not admit policies of namespace "team-b"`))
	g.Expect(err.Error()).To(ContainSubstring(`adds "team-b" to its spec.allowedNamespaces`))
}

func TestBuildBundleTenancy(t *testing.T) {
	goodWhen := `request.path.startsWith("/admin")`
	badWhen := `request.path.startsWith("/admin") &&`
	crossPolicy := func(gen int64, when string) v1alpha1.MFAPolicy {
		return mfaPolicy(teamB, "app", gen, when, "platform/totp")
	}
	admittedBefore := func() *Bundle {
		return bundleOf([]v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)}, []v1alpha1.MFAProvider{sharedTOTP(nil, teamB)}, nil)
	}
	sharedLabels := map[string]map[string]string{teamB: {"mfa.operator.dev/shared-providers": "true"}}

	type want struct {
		policies map[string]int64    // key -> generation in force
		verdicts map[string]string   // "policy/ns/name" or "provider/ns/name" -> reason ("" valid)
		messages map[string]string   // same keys -> substring of the error
		selected map[string][]string // provider key -> SelectedNamespaces
	}
	tests := []struct {
		name      string
		policies  []v1alpha1.MFAPolicy
		providers []v1alpha1.MFAProvider
		previous  *Bundle
		nsLabels  map[string]map[string]string
		want      want
	}{
		{
			name:      "a provider of another namespace that does not admit the policy's",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil)},
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotAdmitted, "provider/platform/totp": ""},
				messages: map[string]string{"policy/team-b/app": `(spec.rules[1].multifactor.providers[0]): MFAProvider platform/totp does not admit policies of namespace "team-b"`},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "a provider whose allowedNamespaces lists another namespace only",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil, "team-a")},
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotAdmitted, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "a name without namespace never reaches another namespace's provider",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(teamB, "app", 1, goodWhen, "totp")},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil, teamB)},
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotFound, "provider/platform/totp": ""},
				messages: map[string]string{"policy/team-b/app": `MFAProvider "totp" not found in namespace "team-b"`},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "admitted by allowedNamespaces",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil, "team-a", teamB)},
			want: want{
				policies: map[string]int64{"team-b/app": 1},
				verdicts: map[string]string{"policy/team-b/app": "", "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "admitted by the selector and the namespace's labels, which the bundle records",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen), mfaPolicy("team-c", "app", 1, goodWhen, "platform/totp")},
			providers: []v1alpha1.MFAProvider{sharedTOTP(sharedLabel())},
			nsLabels:  map[string]map[string]string{teamB: {"mfa.operator.dev/shared-providers": "true"}, "team-c": {"mfa.operator.dev/shared-providers": "no"}},
			want: want{
				policies: map[string]int64{"team-b/app": 1},
				verdicts: map[string]string{"policy/team-b/app": "", "policy/team-c/app": v1alpha1.ReasonProviderNotAdmitted, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": {teamB}},
			},
		},
		{
			name:      "the selector without namespace labels admits nothing",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(sharedLabel())},
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotAdmitted, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name: "only namespaces the selector alone admits are recorded, once each, sorted",
			policies: []v1alpha1.MFAPolicy{
				mfaPolicy("team-z", "app", 1, goodWhen, "platform/totp"),
				crossPolicy(1, goodWhen),
				mfaPolicy(teamB, "other", 1, goodWhen, "platform/totp"),
				mfaPolicy("listed", "app", 1, goodWhen, "platform/totp"),
				mfaPolicy(platformNS, "portal", 1, goodWhen, "totp"),
			},
			providers: []v1alpha1.MFAProvider{sharedTOTP(&metav1.LabelSelector{}, "listed")},
			want: want{
				policies: map[string]int64{"team-b/app": 1, "team-b/other": 1, "team-z/app": 1, "listed/app": 1, "platform/portal": 1},
				verdicts: map[string]string{"policy/team-b/app": "", "policy/team-b/other": "", "policy/team-z/app": "", "policy/listed/app": "",
					"policy/platform/portal": "", "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": {teamB, "team-z"}},
			},
		},
		{
			name:      "an invalid selector makes the provider invalid, naming the field",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Matches"}}}, teamB)},
			nsLabels:  sharedLabels,
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotReady, "provider/platform/totp": v1alpha1.ReasonInvalidSpec},
				messages: map[string]string{"provider/platform/totp": "spec.allowedNamespaceSelector: not a valid label selector"},
			},
		},
		{
			name:      "revoked: a valid policy is refused and leaves the bundle",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil)},
			previous:  admittedBefore(),
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotAdmitted, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "revoked: an invalid policy does not keep its last good entry",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(2, badWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil)},
			previous:  admittedBefore(),
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonInvalidExpression, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "revoked by relabelling the namespace: an invalid policy does not keep its last good entry",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(2, badWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(sharedLabel())},
			previous: func() *Bundle {
				b, _ := BuildBundle([]v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)}, []v1alpha1.MFAProvider{sharedTOTP(sharedLabel())}, nil, nil,
					BuildOptions{NamespaceLabels: sharedLabels})
				return b
			}(),
			nsLabels: map[string]map[string]string{teamB: {}},
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonInvalidExpression, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:     "revoked in the same edit that makes the provider invalid: the kept provider admits no more than the current one",
			policies: []v1alpha1.MFAPolicy{crossPolicy(1, goodWhen)},
			providers: func() []v1alpha1.MFAProvider {
				p := sharedTOTP(nil)
				p.Spec.TOTP = &v1alpha1.TOTPSpec{Period: &metav1.Duration{Duration: 1500 * time.Millisecond}}
				return []v1alpha1.MFAProvider{p}
			}(),
			previous: admittedBefore(),
			want: want{
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonProviderNotReady, "provider/platform/totp": v1alpha1.ReasonInvalidSpec},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
		{
			name:      "still admitted: an invalid policy keeps its last good entry",
			policies:  []v1alpha1.MFAPolicy{crossPolicy(2, badWhen)},
			providers: []v1alpha1.MFAProvider{sharedTOTP(nil, teamB)},
			previous:  admittedBefore(),
			want: want{
				policies: map[string]int64{"team-b/app": 1},
				verdicts: map[string]string{"policy/team-b/app": v1alpha1.ReasonInvalidExpression, "provider/platform/totp": ""},
				selected: map[string][]string{"platform/totp": nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b, v := BuildBundle(tt.policies, tt.providers, nil, tt.previous, BuildOptions{NamespaceLabels: tt.nsLabels})

			gotPolicies := map[string]int64{}
			for _, p := range b.Policies {
				gotPolicies[p.Key()] = p.Generation
			}
			gotVerdicts := map[string]string{}
			gotErrs := map[string]error{}
			for k, err := range v.Policies {
				gotVerdicts["policy/"+k.String()] = reasonOf(err)
				gotErrs["policy/"+k.String()] = err
			}
			for k, err := range v.Providers {
				gotVerdicts["provider/"+k.String()] = reasonOf(err)
				gotErrs["provider/"+k.String()] = err
			}
			gotSelected := map[string][]string{}
			for _, p := range b.Providers {
				gotSelected[p.Key()] = p.SelectedNamespaces
			}

			g.Expect(gotPolicies).To(Equal(orEmpty(tt.want.policies)))
			g.Expect(gotVerdicts).To(Equal(orEmpty(tt.want.verdicts)))
			for k, msg := range tt.want.messages {
				g.Expect(gotErrs[k]).To(MatchError(ContainSubstring(msg)), k)
			}
			g.Expect(gotSelected).To(Equal(orEmpty(tt.want.selected)))
		})
	}
}

// TestBundleProviderAdmitsAfterARoundTrip: the challenge server, which
// has no namespace labels, checks admission from the bundle it reads.
func TestBundleProviderAdmitsAfterARoundTrip(t *testing.T) {
	g := NewWithT(t)
	pols := []v1alpha1.MFAPolicy{
		mfaPolicy(teamB, "app", 1, "false", "platform/totp"),
		mfaPolicy("listed", "app", 1, "false", "platform/totp"),
	}
	b, v := BuildBundle(pols, []v1alpha1.MFAProvider{sharedTOTP(sharedLabel(), "listed")}, nil, nil, BuildOptions{
		NamespaceLabels: map[string]map[string]string{teamB: {"mfa.operator.dev/shared-providers": "true"}},
	})
	g.Expect(v.Policies).To(HaveEach(BeNil()))
	data, _, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	parsed, err := ParseBundle(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(parsed.Providers).To(HaveLen(1))
	bp := &parsed.Providers[0]

	for ns, want := range map[string]bool{platformNS: true, "listed": true, teamB: true, "team-c": false, "": false} {
		g.Expect(bp.Admits(ns)).To(Equal(want), "namespace %q", ns)
	}
}
