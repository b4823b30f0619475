package policy

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/examples"
)

const readme = "../../README.md"

// readmePolicies are the MFAPolicies of README.md's YAML examples.
func readmePolicies(t *testing.T) []v1alpha1.MFAPolicy {
	t.Helper()
	blocks, err := examples.YAML(readme)
	if err != nil {
		t.Fatal(err)
	}
	var policies []v1alpha1.MFAPolicy
	for _, b := range blocks {
		for _, doc := range b.Documents {
			var p v1alpha1.MFAPolicy
			if err := json.Unmarshal(doc, &p); err != nil {
				t.Fatalf("README.md:%d: %v", b.Line, err)
			}
			if p.Kind == "MFAPolicy" {
				policies = append(policies, p)
			}
		}
	}
	return policies
}

// readmeRequest is what a rule of README.md is tried on: a request from
// outside the office network, during office hours in Paris, of a user
// who signed in with a password.
func readmeRequest(change func(*Vars)) *Vars {
	v := &Vars{
		User: &User{ID: "ana@example.com", Email: "ana@example.com", Groups: []string{"staff"},
			Claims: NewClaims(map[string]any{"sub": "ana@example.com", "amr": []any{"pwd"}})},
		Request: &Request{Host: "admin.example.com", Path: "/reports", Method: "GET", Scheme: "https",
			URL: "https://admin.example.com/reports", IP: "192.0.2.10",
			Time: time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)}, // a Tuesday, 10:00 in Paris
	}
	if change != nil {
		change(v)
	}
	return v
}

// readmeRules says, for every rule of README.md's policies, a request the
// rule decides (no earlier rule matching it) and one its `when` does not
// match (nil only for a `when` that is always true).
var readmeRules = map[string]map[string]struct{ hit, miss func(*Vars) }{
	"apps/portal": {
		"everyone": {hit: func(*Vars) {}},
	},
	"audit-demo/reports": {
		"exports": {
			hit:  func(v *Vars) { v.Request.Path = "/export/2026.csv" },
			miss: func(v *Vars) { v.Request.Path = "/reports" },
		},
	},
	"apps/admin": {
		"contractors-denied": {
			hit:  func(v *Vars) { v.User.Groups = []string{"contractors"}; v.Request.Path = "/admin/users" },
			miss: func(v *Vars) { v.User.Groups = []string{"contractors"}; v.Request.Path = "/reports" },
		},
		"billing": {
			hit:  func(v *Vars) { v.Request.Path = "/billing/invoices" },
			miss: func(v *Vars) { v.Request.Host = "shop.example.com"; v.Request.Path = "/billing" },
		},
		"smartcard": {
			hit: func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"amr": []any{"sc", "pin"}}) },
			// A token without amr: has() keeps the rule from failing.
			miss: func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"sub": "ana@example.com"}) },
		},
		"after-hours": {
			hit:  func(v *Vars) { v.Request.Time = time.Date(2026, 3, 10, 19, 0, 0, 0, time.UTC) },  // 20:00 in Paris
			miss: func(v *Vars) { v.Request.Time = time.Date(2026, 7, 10, 15, 59, 0, 0, time.UTC) }, // 17:59 in Paris
		},
		"office": {
			hit:  func(v *Vars) { v.Request.IP = "10.1.2.3" },
			miss: func(v *Vars) { v.Request.IP = "11.1.2.3" },
		},
		"everyone-else": {
			hit: func(*Vars) {},
		},
	},
	"apps/sso": {
		"strong-login": {
			hit:  func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"amr": []any{"pwd", "otp"}}) },
			miss: func(*Vars) {},
		},
		"social-logins": {
			hit:  func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"amr": []any{"pwd"}, "idp": "github"}) },
			miss: func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"amr": []any{"pwd"}, "idp": "corp"}) },
		},
		"phishing-resistant": {
			hit:  func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"acr": "phr"}) },
			miss: func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"acr": "pwd"}) },
		},
		"password-logins": {
			hit:  func(*Vars) {},
			miss: func(v *Vars) { v.User.Claims = NewClaims(map[string]any{"sub": "ana@example.com"}) },
		},
	},
}

// TestReadmeRulesDecideWhatTheySay compiles every MFAPolicy of README.md
// as the controller checks it, and evaluates every rule's `when` on the
// requests of readmeRules: the request meant for a rule is decided by it,
// the other is not matched, and neither fails.
func TestReadmeRulesDecideWhatTheySay(t *testing.T) {
	policies := readmePolicies(t)
	NewWithT(t).Expect(policies).NotTo(BeEmpty())
	seen := map[string]bool{}
	for i := range policies {
		p := &policies[i]
		key := p.Namespace + "/" + p.Name
		seen[key] = true
		t.Run(key, func(t *testing.T) {
			g := NewWithT(t)
			cp, err := CheckPolicy(p, Tenancy{Provider: func(types.NamespacedName, string) ProviderState { return ProviderReady }})
			g.Expect(err).NotTo(HaveOccurred())
			table, ok := readmeRules[key]
			g.Expect(ok).To(BeTrue(), "README.md has MFAPolicy %s: add its rules to readmeRules", key)
			names := map[string]bool{}
			for j := range cp.Rules {
				r := &cp.Rules[j]
				names[r.Name] = true
				t.Run(r.Name, func(t *testing.T) {
					g := NewWithT(t)
					tc, ok := table[r.Name]
					g.Expect(ok).To(BeTrue(), "rule %q of README.md is not in readmeRules", r.Name)

					decided, err := cp.Decide(readmeRequest(tc.hit))
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(decided).NotTo(BeNil())
					g.Expect(decided.Name).To(Equal(r.Name), "the request meant for %q", r.Name)

					if tc.miss == nil {
						g.Expect(p.Spec.Rules[j].When).To(Equal("true"), "only a `when` that is always true has no request it does not match")
						return
					}
					miss := readmeRequest(tc.miss)
					matched, err := r.Matches(miss)
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(matched).To(BeFalse())
					_, err = cp.Decide(miss)
					g.Expect(err).NotTo(HaveOccurred(), "no rule fails on it")
				})
			}
			for name := range table {
				g.Expect(names).To(HaveKey(name), "readmeRules names rule %q, which README.md's %s does not have", name, key)
			}
		})
	}
	for key := range readmeRules {
		NewWithT(t).Expect(seen).To(HaveKey(key), "readmeRules names MFAPolicy %s, which README.md does not have", key)
	}
}

// TestReadmeStatusMessageIsTheControllers: the status message README.md
// shows for a typo in the office rule of its policy is the one the
// controller writes.
func TestReadmeStatusMessageIsTheControllers(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(readme)
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(string(raw), "\n")
	var shown []string
	for i, l := range lines {
		if strings.HasPrefix(l, `rule "office" (spec.rules[`) {
			shown = append(shown, l)
			for _, next := range lines[i+1:] {
				if !strings.HasPrefix(next, " | ") {
					break
				}
				shown = append(shown, next)
			}
			break
		}
	}
	g.Expect(shown).NotTo(BeEmpty(), "README.md shows no status message for the office rule")

	var p *v1alpha1.MFAPolicy
	for _, candidate := range readmePolicies(t) {
		if candidate.Namespace == "apps" && candidate.Name == "admin" {
			p = &candidate
		}
	}
	g.Expect(p).NotTo(BeNil())
	for i := range p.Spec.Rules {
		if p.Spec.Rules[i].Name == "office" {
			p.Spec.Rules[i].When = strings.Replace(p.Spec.Rules[i].When, "request.ip", "requets.ip", 1)
		}
	}
	_, err = CheckPolicy(p, Tenancy{Provider: func(types.NamespacedName, string) ProviderState { return ProviderReady }})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(Equal(strings.Join(shown, "\n")))
}
