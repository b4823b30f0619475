package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

const checkProvidersYAML = `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: google-authenticator, namespace: apps }
spec: { type: totp }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: shared, namespace: platform }
spec:
  type: totp
  allowedNamespaceSelector: { matchLabels: { mfa: allowed } }
`

func checkPolicyYAML(ns, name, host, when, providers string) string {
	return fmt.Sprintf(`apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: %s, namespace: %s }
spec:
  hosts: [%s]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: first
    when: 'request.path.startsWith("/public")'
    action: Allow
  - name: second
    when: '%s'
    action: RequireMFA
    multifactor: { providers: [%s] }
`, name, ns, host, when, providers)
}

func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func checkJSON(t *testing.T, args ...string) (int, checkReport) {
	t.Helper()
	code, out, _ := runCLI(t, append([]string{"check", "-o", "json"}, args...)...)
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return code, rep
}

func resultOf(rep checkReport, name string) checkResult {
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	return checkResult{}
}

func TestCheckAcceptsValidFilesInNestedDirectories(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	dir := writeTree(t, map[string]string{
		"providers.yaml":     checkProvidersYAML,
		"apps/admin.yaml":    checkPolicyYAML("apps", "admin", "admin.example.com", `"admins" in user.groups`, "google-authenticator"),
		"apps/.hidden/x.yml": "not: [valid",
		"README.md":          "not read",
	})
	code, rep := checkJSON(t, "-f", dir)
	g.Expect(code).To(Equal(0))
	g.Expect(rep.Valid).To(BeTrue())
	g.Expect(rep.Files).To(Equal(2))
	g.Expect(rep.Objects).To(Equal(3))
}

func TestCheckReportsEveryKindOfProblem(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	multi := checkPolicyYAML("apps", "typo", "typo.example.com", "request.path == \"/\" &&\n      requets.method == \"GET\"", "google-authenticator") + "---\n" +
		checkPolicyYAML("apps", "missing", "missing.example.com", "true", "nope") + "---\n" +
		checkPolicyYAML("team", "cross", "cross.example.com", "true", "platform/shared") + "---\n" +
		checkPolicyYAML("apps", "costly", "costly.example.com", `request.headers.all(k, request.headers.all(j, request.headers[j].matches(request.headers[k])))`, "google-authenticator") + "---\n" +
		checkPolicyYAML("apps", "geo", "geo.example.com", `request.geo.country != "FR"`, "google-authenticator") + "---\n" +
		checkPolicyYAML("apps", "one", "same.example.com", "true", "google-authenticator") + "---\n" +
		checkPolicyYAML("apps", "two", "same.example.com", "true", "google-authenticator")
	dir := writeTree(t, map[string]string{"providers.yaml": checkProvidersYAML, "policies.yaml": multi, "broken.yaml": "kind: [nope"})
	code, rep := checkJSON(t, "-f", filepath.Join(dir, "providers.yaml"), "-f", filepath.Join(dir, "policies.yaml")+","+filepath.Join(dir, "broken.yaml"))
	g.Expect(code).To(Equal(1))
	g.Expect(rep.Valid).To(BeFalse())

	typo := resultOf(rep, "typo")
	g.Expect(typo.Valid).To(BeFalse())
	g.Expect(typo.Reason).To(Equal("InvalidExpression"))
	g.Expect(typo.File).To(HaveSuffix("policies.yaml"))
	g.Expect(typo.Document).To(Equal(1))
	g.Expect(typo.Rule).To(Equal("second"))
	g.Expect(*typo.RuleIndex).To(Equal(1))
	g.Expect([]int{typo.Line, typo.Column}).To(Equal([]int{1, 24}))
	g.Expect(typo.Message).To(ContainSubstring("undeclared reference to 'requets'"))
	g.Expect(typo.Message).To(ContainSubstring("^"))

	g.Expect(resultOf(rep, "missing").Reason).To(Equal("ProviderNotFound"))
	cross := resultOf(rep, "cross")
	g.Expect(cross.Reason).To(Equal("ProviderNotAdmitted"))
	g.Expect(strings.Join(cross.Notes, " ")).To(ContainSubstring(`labels of namespace "team" are unknown offline`))
	g.Expect(resultOf(rep, "costly").Message).To(ContainSubstring("too expensive"))
	g.Expect(resultOf(rep, "geo").Reason).To(Equal("GeoIPUnavailable"))
	g.Expect(resultOf(rep, "one").Reason).To(Equal("HostConflict"))
	g.Expect(resultOf(rep, "two").Message).To(ContainSubstring("MFAPolicy apps/one"))
	var broken checkResult
	for _, r := range rep.Results {
		if strings.HasSuffix(r.File, "broken.yaml") {
			broken = r
		}
	}
	g.Expect(broken.Valid).To(BeFalse())
	g.Expect(broken.Message).NotTo(BeEmpty())
}

// A Namespace object among the files gives its labels to the selector; and
// --geoip checks as an operator with a GeoIP database.
func TestCheckUsesNamespacesAndTheOperatorsSettings(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	dir := writeTree(t, map[string]string{
		"providers.yaml": checkProvidersYAML,
		"ns.yaml":        "apiVersion: v1\nkind: Namespace\nmetadata: { name: team, labels: { mfa: allowed } }\n",
		"cross.yaml":     checkPolicyYAML("team", "cross", "cross.example.com", `request.geo.asn == 3215`, "platform/shared"),
	})
	code, _ := checkJSON(t, "-f", dir)
	g.Expect(code).To(Equal(1)) // request.geo without --geoip
	code, rep := checkJSON(t, "-f", dir, "--geoip")
	g.Expect(code).To(Equal(0), "%+v", rep)
}

func TestCheckTextAndUsage(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	dir := writeTree(t, map[string]string{"p.yaml": checkProvidersYAML + "---\n" +
		checkPolicyYAML("apps", "typo", "t.example.com", "requets.path == \"/\"", "google-authenticator")})
	code, out, errOut := runCLI(t, "check", "-f", dir)
	g.Expect(code).To(Equal(1))
	g.Expect(out).To(ContainSubstring(`INVALID ` + filepath.Join(dir, "p.yaml") + ` (document 3): MFAPolicy apps/typo: InvalidExpression in rule "second" (spec.rules[1].when, line 1 column 1)`))
	g.Expect(out).To(ContainSubstring(" | requets.path == \"/\"\n"))
	g.Expect(out).To(ContainSubstring("3 objects in 1 files: 2 valid, 1 not valid"))
	g.Expect(errOut).To(ContainSubstring("1 of 3 objects not valid"))

	code, _, errOut = runCLI(t, "check")
	g.Expect(code).To(Equal(exitUsage))
	g.Expect(errOut).To(ContainSubstring("-f DIR|FILE"))
	code, _, _ = runCLI(t, "check", "-f", dir, "-o", "yaml")
	g.Expect(code).To(Equal(exitUsage))
}

// BenchmarkCheck1000Policies is `check` on a directory of 1,000 policies
// (ten files of 100), each with three rules.
func BenchmarkCheck1000Policies(b *testing.B) {
	files := map[string]string{"providers.yaml": checkProvidersYAML}
	for f := range 10 {
		var docs []string
		for i := range 100 {
			n := f*100 + i
			docs = append(docs, checkPolicyYAML("apps", fmt.Sprintf("p%d", n), fmt.Sprintf("app%d.example.com", n),
				fmt.Sprintf(`"team-%d" in user.groups && cidr("10.0.0.0/8").containsIP(ip(request.ip))`, n), "google-authenticator"))
		}
		files[fmt.Sprintf("team%d/policies.yaml", f)] = strings.Join(docs, "---\n")
	}
	dir := writeTree(b, files)
	b.ResetTimer()
	for b.Loop() {
		rep, err := checkFiles([]string{dir}, checkOptions())
		if err != nil || !rep.Valid || rep.Objects != 1002 {
			b.Fatalf("valid %v, %d objects, error %v", rep != nil && rep.Valid, rep.Objects, err)
		}
	}
}

func TestExplainFromFiles(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	dir := writeTree(t, map[string]string{"p.yaml": checkProvidersYAML + "---\n" +
		checkPolicyYAML("apps", "admin", "admin.example.com", `"admins" in user.groups && cidr("10.0.0.0/8").containsIP(ip(request.ip))`, "google-authenticator")})
	code, out, errOut := runCLI(t, "explain", "-f", dir, "--url", "https://admin.example.com/x", "--user", "ana@example.com", "--groups", "admins,staff", "--ip", "10.1.2.3")
	g.Expect(code).To(Equal(0), errOut)
	g.Expect(out).To(ContainSubstring(`rule 1 "first": no match`))
	g.Expect(out).To(ContainSubstring(`rule 2 "second": MATCH`))
	g.Expect(out).To(ContainSubstring(`decision: RequireMFA by rule "second"; providers apps/google-authenticator; rememberFor 720h0m0s`))

	code, out, _ = runCLI(t, "explain", "-f", dir, "--url", "https://admin.example.com/x", "--user", "bob", "--ip", "192.0.2.1", "-o", "json")
	g.Expect(code).To(Equal(0))
	var rep explainReport
	g.Expect(json.Unmarshal([]byte(out), &rep)).To(Succeed())
	g.Expect(rep.Action).To(Equal("Allow"))
	g.Expect(rep.Default).To(BeTrue())
	g.Expect(rep.Trace).To(HaveLen(2))
	g.Expect(rep.Trace[1].Parts[0]).To(Equal(policy.PartTrace{Expr: `"admins" in user.groups`, Value: "false"}))

	code, _, errOut = runCLI(t, "explain", "-f", dir, "--url", "https://admin.example.com/%2e%2e/x", "--user", "ana")
	g.Expect(code).To(Equal(exitUsage))
	g.Expect(errOut).To(ContainSubstring("--url"))
}

func TestCheckHelpListsTheCommands(t *testing.T) {
	cleanEnv(t)
	g := NewWithT(t)
	_, out, _ := runCLI(t, "help")
	g.Expect(out).To(ContainSubstring("check "))
	g.Expect(out).To(ContainSubstring("explain "))
	_ = controllers.GeoIPMountPath
}
