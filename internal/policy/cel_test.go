package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
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

// TestCompileErrorShowsTheExpression: a `when` that does not compile is
// reported as cel-go reports it, the line of the expression and a caret
// under the problem included, without the "(in container ...)" suffix, and short
// enough for a status message however long the expression.
func TestCompileErrorShowsTheExpression(t *testing.T) {
	long := strings.Repeat(`request.path == "/a" || `, 150) + `requets.path == "/"`
	tests := []struct {
		name, expr, want string
	}{
		{"undeclared variable", `requets.path == "/"`,
			"ERROR: <input>:1:1: undeclared reference to 'requets'\n" +
				" | requets.path == \"/\"\n" +
				" | ^"},
		{"syntax error at the end", `request.path.startsWith("/admin") &&`,
			"ERROR: <input>:1:37: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n" +
				" | request.path.startsWith(\"/admin\") &&\n" +
				" | ....................................^"},
		{"second line of the expression", "request.host == \"a\" &&\n\trequets.path == \"/\"",
			"ERROR: <input>:2:2: undeclared reference to 'requets'\n" +
				" |  requets.path == \"/\"\n" +
				" | .^"},
		{"multi-byte characters before the caret", `"é" == "é" && requets`,
			"ERROR: <input>:1:15: undeclared reference to 'requets'\n" +
				" | \"é\" == \"é\" && requets\n" +
				" | .\uff0e......\uff0e.....^"},
		{"a long line is cut around the position", long,
			"ERROR: <input>:1:3601: undeclared reference to 'requets'\n" +
				" | ...\" || request.path == \"/a\" || request.path == \"/a\" || requets.path == \"/\"\n" +
				" | " + strings.Repeat(".", 56) + "^"},
		{"a long line is cut on both sides", strings.Repeat(`request.path == "/a" || `, 50) + `requets.path == "/" || ` + strings.Repeat(`request.path == "/a" || `, 50) + "true",
			"ERROR: <input>:1:1201: undeclared reference to 'requets'\n" +
				" | ... == \"/a\" || request.path == \"/a\" || requets.path == \"/\" || request.path ...\n" +
				" | " + strings.Repeat(".", 39) + "^"},
		{"at most three errors", `a + b + c + d == 1`,
			"ERROR: <input>:1:1: undeclared reference to 'a'\n | a + b + c + d == 1\n | ^\n" +
				"ERROR: <input>:1:5: undeclared reference to 'b'\n | a + b + c + d == 1\n | ....^\n" +
				"ERROR: <input>:1:9: undeclared reference to 'c'\n | a + b + c + d == 1\n | ........^\n" +
				"1 more error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Compile(tt.expr)
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(Equal(tt.want))
			g.Expect(len(err.Error())).To(BeNumerically("<", 1024))
		})
	}
}

// TestCompilePolicyErrorNamesRuleFieldAndPosition: the FieldError of a
// rule that does not compile carries CEL's drawing under the rule's name
// and field.
func TestCompilePolicyErrorNamesRuleFieldAndPosition(t *testing.T) {
	g := NewWithT(t)
	spec := &v1alpha1.MFAPolicySpec{
		Identity: v1alpha1.IdentitySpec{Header: &v1alpha1.HeaderIdentity{}},
		Rules: []v1alpha1.Rule{
			{Name: "billing", When: `request.path.startsWith("/billing")`, Action: v1alpha1.ActionAllow},
			{Name: "office", When: `isIP(requets.ip)`, Action: v1alpha1.ActionAllow},
		},
	}
	_, err := CompilePolicy("apps", "admin", spec)
	var fe *FieldError
	g.Expect(errors.As(err, &fe)).To(BeTrue())
	g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonInvalidExpression))
	g.Expect(fe.Field).To(Equal("spec.rules[1].when"))
	g.Expect(err.Error()).To(Equal("rule \"office\" (spec.rules[1].when): ERROR: <input>:1:6: undeclared reference to 'requets'\n" +
		" | isIP(requets.ip)\n" +
		" | .....^"))
}
