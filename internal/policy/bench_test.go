package policy

import (
	"testing"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// benchRules are typical rules; for benchVars only the last one matches,
// so Decide evaluates them all.
var benchRules = []v1alpha1.Rule{
	{Name: "admin-path", When: `request.path.startsWith("/admin")`, Action: v1alpha1.ActionDeny},
	{Name: "outside-vpn", When: `!cidr("10.0.0.0/8").containsIP(ip(request.ip))`, Action: v1alpha1.ActionDeny},
	{Name: "admins", When: `"admins" in user.groups`, Action: v1alpha1.ActionAllow},
	{Name: "browser", When: `request.headers["user-agent"].startsWith("Mozilla/")`, Action: v1alpha1.ActionAllow},
}

func benchVars() *Vars {
	return &Vars{
		User: &User{ID: "ana", Email: "ana@example.com", Name: "Ana", Groups: []string{"staff", "ops"},
			Claims: NewClaims(map[string]any{"amr": []any{"pwd"}})},
		Request: &Request{Host: "app.example.com", Path: "/reports/2026", Method: "GET", Scheme: "https",
			URL: "https://app.example.com/reports/2026?page=2", IP: "10.1.2.3",
			Headers:     map[string]string{"user-agent": "Mozilla/5.0", "accept": "text/html"},
			Query:       map[string][]string{"page": {"2"}},
			Time:        time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC),
			Interactive: true,
			Geo:         Geo{Country: "FR", ASN: 3215}},
	}
}

func BenchmarkDecide(b *testing.B) {
	spec := &v1alpha1.MFAPolicySpec{Rules: benchRules}
	p, err := CompilePolicy("apps", "bench", spec)
	if err != nil {
		b.Fatal(err)
	}
	vars := benchVars()
	b.ReportAllocs()
	for b.Loop() {
		if r, err := p.Decide(vars); err != nil || r == nil || r.Name != "browser" {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkRule evaluates each typical rule on its own: with CEL's
// interpreter, and in Go for the forms nativeWhen knows.
func BenchmarkRule(b *testing.B) {
	vars := benchVars()
	for _, r := range benchRules {
		prg, native, err := compileWhen(r.When)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(r.Name+"/cel", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Eval(prg, vars); err != nil {
					b.Fatal(err)
				}
			}
		})
		if native == nil {
			continue
		}
		b.Run(r.Name+"/go", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := native(vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
