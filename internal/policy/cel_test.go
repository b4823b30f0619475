package policy

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestCompileAndEval(t *testing.T) {
	paris := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC) // 10:30 in Paris
	vars := &Vars{
		User: &User{ID: "ana", Email: "ana@example.com", Groups: []string{"admins"}, Claims: NewClaims(map[string]any{"amr": []any{"pwd"}})},
		Request: &Request{Host: "admin.example.com", Path: "/billing", Method: "GET", IP: "10.1.2.3",
			Headers: map[string]string{"user-agent": "x"}, Query: map[string][]string{"a": {"1"}}, Time: paris},
	}
	tests := []struct {
		name string
		expr string
		want bool
	}{
		{"host", `request.host == "admin.example.com"`, true},
		{"cidr", `cidr("10.0.0.0/8").containsIP(ip(request.ip))`, true},
		{"cidr outside", `cidr("192.168.0.0/16").containsIP(ip(request.ip))`, false},
		{"hours in Paris", `request.time.getHours("Europe/Paris") in [8,9,10,11,12,13,14,15,16,17]`, true},
		{"day of week", `request.time.getDayOfWeek("Europe/Paris") == 5`, true},
		{"groups", `"admins" in user.groups`, true},
		{"claims", `"pwd" in user.claims.amr`, true},
		{"url lib", `url("https://" + request.host + request.path).getHost() == "admin.example.com"`, true},
		{"regex", `request.path.matches("^/bill")`, true},
		{"headers", `request.headers["user-agent"] == "x"`, true},
		{"query", `request.query["a"][0] == "1"`, true},
		{"strings ext", `user.email.lowerAscii().endsWith("@example.com")`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			prg, err := Compile(tt.expr)
			g.Expect(err).NotTo(HaveOccurred())
			got, err := Eval(prg, vars)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name, expr, msg string
	}{
		{"syntax", `request.host ==`, "<input>:1:"},
		{"undeclared", `requets.host == "a"`, "undeclared reference to 'requets'"},
		{"not bool", `request.host`, "must be of type bool"},
		{"unknown field", `request.hots == "a"`, "hots"},
		{"too expensive", `request.headers.all(k, request.headers.all(k2, request.headers[k].matches(request.headers[k2])))`, "too expensive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Compile(tt.expr)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tt.msg))
		})
	}
}
