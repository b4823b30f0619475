package policy

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// request.geo, an object of two fields, is read directly as the other
// fields are (TestDirectFieldsReadAsNativeTypes).
func init() {
	fieldExprs = append(fieldExprs,
		`request.geo.country`, `request.geo.asn`, `has(request.geo)`, `has(request.geo.country)`, `has(request.geo.asn)`,
		`request.geo.country == "FR"`, `request.geo.asn == 3215`, `request.geo.asn in [3215, 64500]`,
		`request.geo == policy.Geo{country: "FR", asn: 3215}`, `request.?geo.hasValue()`,
	)
}

// A policy reads request.geo when a rule selects geo in any way, or uses
// request whole; the others never pay for a lookup.
func TestReadsGeoIsFoundInTheExpression(t *testing.T) {
	tests := map[string]bool{
		`request.geo.country == "FR"`:                        true,
		`request.geo.asn in [3215]`:                          true,
		`has(request.geo.country)`:                           true,
		`dyn(request).geo.country == "FR"`:                   true,
		`[request].exists(r, r.path == "/")`:                 true,
		`request.path.startsWith("/geo")`:                    false,
		`request.headers["geo"] == "x"`:                      false,
		`"admins" in user.groups && request.method == "GET"`: false,
	}
	for when, want := range tests {
		t.Run(when, func(t *testing.T) {
			g := NewWithT(t)
			cp, err := CompilePolicy("apps", "p", &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{
				{Name: "r", When: when, Action: v1alpha1.ActionAllow},
			}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cp.ReadsGeo()).To(Equal(want))
		})
	}
}

// Without a GeoIP database, a policy reading request.geo is refused with
// the rule, the position and what to do.
func TestCheckPolicyRefusesGeoWithoutADatabase(t *testing.T) {
	g := NewWithT(t)
	p := &v1alpha1.MFAPolicy{Spec: v1alpha1.MFAPolicySpec{
		Identity: v1alpha1.IdentitySpec{Header: &v1alpha1.HeaderIdentity{}},
		Rules: []v1alpha1.Rule{
			{Name: "office", When: `request.path == "/"`, Action: v1alpha1.ActionAllow},
			{Name: "abroad", When: `request.method == "GET" && request.geo.country != "FR"`, Action: v1alpha1.ActionDeny},
		},
	}}
	p.Namespace, p.Name = "apps", "geo"
	_, err := CheckPolicy(p, Tenancy{})
	var fe *FieldError
	g.Expect(err).To(BeAssignableToTypeOf(fe))
	fe = err.(*FieldError)
	g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonGeoIPUnavailable))
	g.Expect(fe.Field).To(Equal("spec.rules[1].when"))
	g.Expect(fe.Rule).To(Equal("abroad"))
	g.Expect(fe.Line).To(Equal(1))
	g.Expect(fe.Column).To(Equal(28))
	g.Expect(fe.Message).To(ContainSubstring("--geoip-db"))
	g.Expect(fe.Message).To(ContainSubstring("\n | " + `request.method == "GET" && request.geo.country != "FR"`))

	_, err = CheckPolicy(p, Tenancy{GeoIP: true})
	g.Expect(err).NotTo(HaveOccurred())
}

// A CEL type error carries its position.
func TestCompileErrorHasItsPosition(t *testing.T) {
	g := NewWithT(t)
	_, err := CompilePolicy("apps", "p", &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{
		{Name: "ok", When: `true`, Action: v1alpha1.ActionAllow},
		{Name: "typo", When: "request.path == \"/\" &&\n  requets.method == \"GET\"", Action: v1alpha1.ActionAllow},
	}})
	fe, ok := err.(*FieldError)
	g.Expect(ok).To(BeTrue())
	g.Expect(fe.Field).To(Equal("spec.rules[1].when"))
	g.Expect(fe.Line).To(Equal(2))
	g.Expect(fe.Column).To(Equal(3))
}

// Explain gives Judge's verdict and the value of each part of the rules
// that did not match.
func TestExplainSaysWhyEarlierRulesDidNotMatch(t *testing.T) {
	g := NewWithT(t)
	cp, err := CompilePolicy("apps", "p", &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{
		{Name: "vpn", When: `cidr("10.0.0.0/8").containsIP(ip(request.ip)) && request.method == "GET"`, Action: v1alpha1.ActionAllow},
		{Name: "admins", When: `"admins" in user.groups`, Action: v1alpha1.ActionRequireMFA,
			Multifactor: &v1alpha1.MultifactorSpec{Providers: []string{"totp"}}},
		{Name: "rest", When: `true`, Action: v1alpha1.ActionDeny},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	vars := &Vars{User: &User{ID: "ana", Groups: []string{"admins"}}, Request: &Request{IP: "192.0.2.1", Method: "GET"}}
	x := cp.Explain(vars)
	v, err := cp.Judge(vars)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(x.Verdict).To(Equal(v))
	g.Expect(x.Verdict.Rule.Name).To(Equal("admins"))
	g.Expect(x.Verdict.Action).To(Equal(v1alpha1.ActionRequireMFA))
	g.Expect(x.Rules).To(HaveLen(2))
	g.Expect(x.Rules[0].Matched).To(BeFalse())
	g.Expect(x.Rules[0].Parts).To(Equal([]PartTrace{
		{Expr: `cidr("10.0.0.0/8").containsIP(ip(request.ip))`, Value: "false"},
		{Expr: `request.method == "GET"`, Value: "true"},
	}))
	g.Expect(x.Rules[1].Matched).To(BeTrue())

	x = cp.Explain(&Vars{User: &User{ID: "bob"}, Request: &Request{IP: "nonsense"}})
	g.Expect(x.Rules[0].Parts[0].Value).To(HavePrefix("error: "))
	g.Expect(x.Verdict.Rule.Name).To(Equal("rest"))
}
