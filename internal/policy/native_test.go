package policy

import (
	"testing"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// nativeForms are expressions nativeWhen evaluates in Go: every form it
// knows, alone and combined, with operands that error.
var nativeForms = []string{
	`true`,
	`false`,
	`!true`,
	`request.path.startsWith("/static/")`,
	`request.path.endsWith(".css")`,
	`request.url.contains("debug=1")`,
	`request.path.startsWith("")`,
	`user.email.endsWith("@example.com")`,
	`user.name.contains("ü")`,
	`request.host == "app.example.com"`,
	`"app.example.com" == request.host`,
	`request.method != "GET"`,
	`"GET" != request.method`,
	`user.id == ""`,
	`request.scheme == "https"`,
	`request.method in ["GET", "HEAD"]`,
	`request.method in []`,
	`user.email in ["ana@example.com"]`,
	`"admins" in user.groups`,
	`"" in user.groups`,
	`cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/8").containsIP(request.ip)`,
	`cidr("10.1.2.3/8").containsIP(ip(request.ip))`,
	`cidr("2001:db8::/32").containsIP(ip(request.ip))`,
	`cidr("0.0.0.0/0").containsIP(ip(request.ip))`,
	`cidr("::/0").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/8").containsIP(ip(request.host))`,
	`!cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/8").containsIP(ip(request.ip)) && request.path.startsWith("/admin")`,
	`request.path.startsWith("/admin") && cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/8").containsIP(ip(request.ip)) || request.path.startsWith("/admin")`,
	`request.path.startsWith("/admin") || cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/8").containsIP(ip(request.ip)) && cidr("192.0.2.0/24").containsIP(request.ip)`,
	`cidr("10.0.0.0/8").containsIP(ip(request.ip)) || cidr("192.0.2.0/24").containsIP(request.ip)`,
	`!(cidr("10.0.0.0/8").containsIP(ip(request.ip)) || "admins" in user.groups) && request.method in ["GET", "HEAD"]`,
	`(request.path.startsWith("/static/") || request.path.endsWith(".ico")) && !("admins" in user.groups)`,
	`true && cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`isIP(request.ip)`,
	`isIP(request.host) || request.host == "localhost"`,
	`isIP(request.ip) && cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`!isIP(request.ip) || !cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`false || !cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
	`request.geo.country == "FR"`,
	`request.geo.country in ["FR", "DE"]`,
	`request.geo.country != "" && !(request.geo.country in ["FR"])`,
	`request.interactive`,
	`!request.interactive`,
	`!request.interactive && request.path.startsWith("/static/")`,
	`request.interactive || "admins" in user.groups`,
}

// celOnlyForms are left to CEL: outside the forms, or a constant that
// Kubernetes' cidr() refuses.
var celOnlyForms = []string{
	`has(request.path)`,
	`request.headers["user-agent"].startsWith("Mozilla/")`,
	`request.time.getHours() < 9`,
	`size(request.path) > 3`,
	`request.path.matches("^/admin")`,
	`request.path.startsWith(request.host)`,
	`request.path == request.host`,
	`user.groups.exists(g, g == "admins")`,
	`cidr("::ffff:10.0.0.0/104").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/33").containsIP(ip(request.ip))`,
	`cidr("10.0.0.0/8").containsIP(ip("10.1.2.3"))`,
	`ip(request.ip).family() == 4`,
	`isIP("10.1.2.3")`,
	`request.path.startsWith("/a") && has(request.host)`,
	`size(user.groups) > 0`,
	`request.geo.asn == 3215`,
	`has(request.geo.country)`,
	`request.geo.country.lowerAscii() == "fr"`,
	`has(request.interactive)`,
	`request.interactive == true`,
}

// nativeSamples are requests that take every form both ways, and every
// kind of address ip() refuses.
func nativeSamples() []*Vars {
	ips := []string{"10.1.2.3", "10.255.255.255", "11.0.0.1", "192.0.2.10", "2001:db8::1", "::1", "",
		"not-an-ip", "::ffff:10.1.2.3", "fe80::1%eth0", "10.1.2.3 ", "010.1.2.3", "10.0.0.0/8"}
	users := []User{
		{},
		{ID: "ana", Email: "ana@example.com", Name: "Ana Müller", Groups: []string{"staff", "admins"}},
		{ID: "bob", Email: "bob@example.org", Groups: []string{""}},
		{ID: "eve", Groups: []string{}},
	}
	reqs := []Request{
		{},
		{Host: "app.example.com", Path: "/static/app.css", Method: "GET", Scheme: "https", URL: "https://app.example.com/static/app.css"},
		{Host: "10.1.2.3", Path: "/admin/favicon.ico", Method: "HEAD", Scheme: "http", URL: "http://10.1.2.3/admin/favicon.ico?debug=1"},
		{Host: "APP.example.com", Path: "/Static/", Method: "get", Scheme: "HTTPS", URL: "https://x/?debug=1"},
	}
	geos := []Geo{{}, {Country: "FR", ASN: 3215}, {Country: "DE"}, {ASN: 64500}}
	var out []*Vars
	for i, ip := range ips {
		for j := range users {
			r := reqs[(i+j)%len(reqs)]
			r.IP = ip
			r.Geo = geos[(i+2*j)%len(geos)]
			r.Interactive = i%2 == 0
			u := users[j]
			out = append(out, &Vars{User: &u, Request: &r})
		}
	}
	return out
}

// TestNativeAgreesWithCEL compares the Go evaluation of every form with
// CEL's on every sample: the same result, and an error exactly when CEL
// has one.
func TestNativeAgreesWithCEL(t *testing.T) {
	samples := nativeSamples()
	for _, expr := range nativeForms {
		prg, native, err := compileWhen(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if native == nil {
			t.Errorf("%s: not evaluated in Go", expr)
			continue
		}
		for _, v := range samples {
			want, wantErr := Eval(prg, v)
			got, gotErr := native(v)
			if got != want || (gotErr != nil) != (wantErr != nil) {
				t.Errorf("%s on user %+v request %+v: Go %v, %v; CEL %v, %v", expr, *v.User, *v.Request, got, gotErr, want, wantErr)
			}
		}
	}
	for _, expr := range celOnlyForms {
		if _, native, err := compileWhen(expr); err != nil || native != nil {
			t.Errorf("%s: want CEL only, got Go evaluation %v, error %v", expr, native != nil, err)
		}
	}
}

// TestRulesUseTheGoEvaluation checks that a compiled policy evaluates the
// forms in Go, and CEL for the rest and for incomplete variables.
func TestRulesUseTheGoEvaluation(t *testing.T) {
	p, err := CompilePolicy("apps", "p", &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{
		{Name: "assets", When: `request.path.startsWith("/static/") && cidr("10.0.0.0/8").containsIP(ip(request.ip))`, Action: v1alpha1.ActionAllow},
		{Name: "browser", When: `request.headers["user-agent"].startsWith("Mozilla/")`, Action: v1alpha1.ActionAllow},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules[0].native == nil || p.Rules[1].native != nil {
		t.Fatalf("rule 0 Go: %v, rule 1 Go: %v; want true, false", p.Rules[0].native != nil, p.Rules[1].native != nil)
	}
	v := &Vars{User: &User{ID: "ana"}, Request: &Request{Path: "/static/x", IP: "10.1.2.3"}}
	if r, err := p.Decide(v); err != nil || r == nil || r.Name != "assets" {
		t.Fatalf("Decide = %v, %v; want the rule assets", r, err)
	}
	// Without a request, CEL answers (and fails, as it always did).
	if _, err := p.Rules[0].Matches(&Vars{User: &User{}}); err == nil {
		t.Fatal("a rule on request matched without a request")
	}
}

// FuzzNativeAgreesWithCEL compares both evaluations of every form on
// arbitrary requests.
func FuzzNativeAgreesWithCEL(f *testing.F) {
	f.Add("/static/app.css", "10.1.2.3", "admins", "GET", "app.example.com")
	f.Add("", "", "", "", "")
	f.Add("/admin", "::ffff:10.1.2.3", "staff", "HEAD", "fe80::1%eth0")
	f.Add("/x.ico", "2001:db8::1", "", "get", "10.1.2.3")
	type compiled struct {
		expr   string
		prg    func(*Vars) (bool, error)
		native nativeCheck
	}
	var forms []compiled
	for _, expr := range nativeForms {
		prg, native, err := compileWhen(expr)
		if err != nil || native == nil {
			f.Fatalf("%s: Go evaluation %v, error %v", expr, native != nil, err)
		}
		forms = append(forms, compiled{expr, func(v *Vars) (bool, error) { return Eval(prg, v) }, native})
	}
	f.Fuzz(func(t *testing.T, path, ip, group, method, host string) {
		v := &Vars{
			User:    &User{ID: group, Email: host, Name: path, Groups: []string{group, method}},
			Request: &Request{Host: host, Path: path, Method: method, Scheme: group, URL: host + path, IP: ip, Interactive: len(path)%2 == 0, Geo: Geo{Country: method}},
		}
		for _, c := range forms {
			want, wantErr := c.prg(v)
			got, gotErr := c.native(v)
			if got != want || (gotErr != nil) != (wantErr != nil) {
				t.Errorf("%s on %+v %+v: Go %v, %v; CEL %v, %v", c.expr, *v.User, *v.Request, got, gotErr, want, wantErr)
			}
		}
	})
}
