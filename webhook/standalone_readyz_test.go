package webhook

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

const brokenDuoProviderYAML = `
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: broken-duo, namespace: apps }
spec:
  type: duo
  duo:
    apiHost: api-test.duosecurity.com
    integrationKeyRef: { name: no-such-secret, key: ikey }
    secretKeyRef: { name: no-such-secret, key: skey }
`

// In standalone mode /readyz names the objects of the config directory
// that are not valid, with why; once the files are valid again the
// warnings go and the log says so at INFO.
func TestStandaloneReadyzNamesRefusedObjects(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	reloadConfigDir(f.s)
	code, body := f.readyz()
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).NotTo(ContainSubstring("warning"))
	g.Expect(f.logs.String()).NotTo(ContainSubstring("configuration valid again"), "it was never invalid")

	writeFile(t, filepath.Join(cfg, "app.yaml"), strings.Replace(standalonePolicy("Deny"), "'true'", "'request.hots == 1'", 1))
	writeFile(t, filepath.Join(cfg, "duo.yaml"), brokenDuoProviderYAML)
	reloadConfigDir(f.s)
	g.Expect(f.appDecision()).To(Equal(http.StatusOK), "the last valid version of the policy stays")
	code, body = f.readyz()
	g.Expect(code).To(Equal(http.StatusOK), "the server still serves")
	g.Expect(body).To(HavePrefix("ok, with warnings:"))
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "warning: ") {
			lines = append(lines, l)
		}
	}
	g.Expect(lines).To(HaveLen(2), body)
	g.Expect(lines[0]).To(And(HavePrefix("warning: MFAProvider apps/broken-duo is not valid and is not in force: "), ContainSubstring("no-such-secret")))
	g.Expect(lines[1]).To(And(HavePrefix("warning: MFAPolicy apps/app is not valid and is not in force: "), ContainSubstring("spec.rules[0].when")))

	// Only the provider fixed: only the policy is named.
	writeFile(t, filepath.Join(cfg, "duo.yaml"), "# removed\n")
	reloadConfigDir(f.s)
	_, body = f.readyz()
	g.Expect(body).NotTo(ContainSubstring("broken-duo"))
	g.Expect(body).To(ContainSubstring("warning: MFAPolicy apps/app is not valid"))
	g.Expect(f.logs.String()).NotTo(ContainSubstring("configuration valid again"))

	offset := f.logs.Len()
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Deny"))
	reloadConfigDir(f.s)
	g.Expect(f.appDecision()).To(Equal(http.StatusForbidden))
	code, body = f.readyz()
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(HavePrefix("ok: bundle "))
	g.Expect(body).NotTo(ContainSubstring("warning"))
	g.Expect(f.logsSince(offset)).To(ContainElement(logLine{Level: "INFO", Msg: "configuration valid again"}))

	// Valid and unchanged: said once only.
	offset = f.logs.Len()
	reloadConfigDir(f.s)
	g.Expect(f.logsSince(offset)).NotTo(ContainElement(HaveField("Msg", "configuration valid again")))
}

// A file that does not even parse, then fixed: valid again, at INFO.
func TestStandaloneUnreadableFileThenValidAgain(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	reloadConfigDir(f.s)
	writeFile(t, filepath.Join(cfg, "app.yaml"), "kind: [unclosed")
	reloadConfigDir(f.s)
	_, body := f.readyz()
	g.Expect(body).To(ContainSubstring("warning: config directory"))

	offset := f.logs.Len()
	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	reloadConfigDir(f.s)
	g.Expect(f.logsSince(offset)).To(ContainElement(logLine{Level: "INFO", Msg: "configuration valid again"}))
	_, body = f.readyz()
	g.Expect(body).NotTo(ContainSubstring("warning"))
}
