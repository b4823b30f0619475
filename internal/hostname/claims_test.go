package hostname

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestMatch(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Match("admin.example.com", "admin.example.com")).To(BeTrue())
	g.Expect(Match("admin.example.com", "x.admin.example.com")).To(BeFalse())
	g.Expect(Match("*.corp.example.com", "payroll.corp.example.com")).To(BeTrue())
	g.Expect(Match("*.corp.example.com", "a.b.corp.example.com")).To(BeTrue(), "a wildcard names every depth")
	g.Expect(Match("*.corp.example.com", "corp.example.com")).To(BeFalse(), "but not the name itself")
	g.Expect(Match("*.corp.example.com", "xcorp.example.com")).To(BeFalse())
	g.Expect(Match("*.corp.example.com", ".corp.example.com")).To(BeFalse())
}

func TestContainsAndOverlap(t *testing.T) {
	cases := []struct {
		a, b               string
		contains, overlaps bool
	}{
		{"admin.example.com", "admin.example.com", true, true},
		{"admin.example.com", "other.example.com", false, false},
		{"*.corp.example.com", "payroll.corp.example.com", true, true},
		{"payroll.corp.example.com", "*.corp.example.com", false, true},
		{"*.example.com", "*.corp.example.com", true, true},
		{"*.corp.example.com", "*.example.com", false, true},
		{"*.corp.example.com", "corp.example.com", false, false},
		{"*.corp.example.com", "*.xcorp.example.com", false, false},
		{"*.a.example.com", "*.b.example.com", false, false},
	}
	for _, tc := range cases {
		g := NewWithT(t)
		g.Expect(Contains(tc.a, tc.b)).To(Equal(tc.contains), "Contains(%q, %q)", tc.a, tc.b)
		g.Expect(Overlap(tc.a, tc.b)).To(Equal(tc.overlaps), "Overlap(%q, %q)", tc.a, tc.b)
	}
}

func TestMoreSpecific(t *testing.T) {
	g := NewWithT(t)
	g.Expect(MoreSpecific("payroll.corp.example.com", "*.corp.example.com")).To(BeTrue())
	g.Expect(MoreSpecific("*.corp.example.com", "payroll.corp.example.com")).To(BeFalse())
	g.Expect(MoreSpecific("*.corp.example.com", "*.example.com")).To(BeTrue())
	g.Expect(MoreSpecific("*.example.com", "*.corp.example.com")).To(BeFalse())
}

func TestConflict(t *testing.T) {
	claim := func(pattern, policy string) Claim {
		ns := policy[:len(policy)-2]
		return Claim{Pattern: pattern, Namespace: ns, Policy: policy}
	}
	cases := []struct {
		name     string
		a, b     Claim
		conflict bool
	}{
		{"same host, two namespaces", claim("admin.example.com", "ns1/a"), claim("admin.example.com", "ns2/b"), true},
		{"same host, one namespace", claim("admin.example.com", "ns1/a"), claim("admin.example.com", "ns1/b"), true},
		{"same host, one policy", claim("admin.example.com", "ns1/a"), claim("admin.example.com", "ns1/a"), false},
		{"host inside another namespace's wildcard", claim("payroll.corp.example.com", "ns2/b"), claim("*.corp.example.com", "ns1/a"), true},
		{"wildcard over another namespace's host", claim("*.corp.example.com", "ns1/a"), claim("payroll.corp.example.com", "ns2/b"), true},
		{"nested wildcards, two namespaces", claim("*.example.com", "ns1/a"), claim("*.corp.example.com", "ns2/b"), true},
		{"host inside a wildcard of its namespace", claim("payroll.corp.example.com", "ns1/b"), claim("*.corp.example.com", "ns1/a"), false},
		{"nested wildcards, one namespace", claim("*.example.com", "ns1/a"), claim("*.corp.example.com", "ns1/b"), false},
		{"disjoint", claim("*.a.example.com", "ns1/a"), claim("*.b.example.com", "ns2/b"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Conflict(tc.a, tc.b)).To(Equal(tc.conflict))
			g.Expect(Conflict(tc.b, tc.a)).To(Equal(tc.conflict), "symmetric")
		})
	}
}

func TestClaimsContestedAndConflicts(t *testing.T) {
	g := NewWithT(t)
	wide := Claim{Pattern: "*.corp.example.com", Namespace: "ns1", Policy: "ns1/corp"}
	payroll := Claim{Pattern: "payroll.corp.example.com", Namespace: "ns2", Policy: "ns2/payroll"}
	own := Claim{Pattern: "wiki.corp.example.com", Namespace: "ns1", Policy: "ns1/wiki"}
	top := Claim{Pattern: "*.example.com", Namespace: "ns3", Policy: "ns3/top"}
	twin := Claim{Pattern: "admin.example.org", Namespace: "ns1", Policy: "ns1/a"}
	twin2 := Claim{Pattern: "admin.example.org", Namespace: "ns1", Policy: "ns1/b"}
	c := NewClaims([]Claim{wide, payroll, own, top, twin, twin2, twin})

	// Whose hosts fail closed, and because of whom.
	g.Expect(c.Contested(payroll)).To(Equal([]string{"ns1/corp", "ns3/top"}))
	g.Expect(c.Contested(own)).To(Equal([]string{"ns3/top"}), "its namespace's wildcard is no conflict, the wider one of another is")
	g.Expect(c.Contested(wide)).To(Equal([]string{"ns3/top"}))
	g.Expect(c.Contested(top)).To(BeEmpty(), "hosts only it names are its own")
	g.Expect(c.Contested(twin)).To(Equal([]string{"ns1/b"}))

	// What each policy reports.
	g.Expect(c.Conflicts(wide)).To(Equal([]Claim{payroll, top}))
	g.Expect(c.Conflicts(top)).To(Equal([]Claim{wide, own, payroll}))
	g.Expect(c.Conflicts(own)).To(Equal([]Claim{top}))
	g.Expect(c.Conflicts(twin2)).To(Equal([]Claim{twin}))
}
