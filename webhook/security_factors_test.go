package webhook

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/passkey/passkeytest"
)

// securityKeysConfigYAML offers both an authenticator app and keys for
// every request (the Security page's included).
var securityKeysConfigYAML = strings.Replace(challengeConfigYAML,
	"    multifactor: { providers: [google-authenticator] }\n",
	"    multifactor: { providers: [google-authenticator, webauthn] }\n", 1) + `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: webauthn, namespace: apps }
spec:
  type: webauthn
  webauthn: { rpDisplayName: Example Corp }
`

func TestSecurityPageAddsAPasskeyBesideTheAuthenticatorApp(t *testing.T) {
	g := NewWithT(t)
	f, _ := newSecurityFixtureWith(t, securityKeysConfigYAML)
	buf := withJSONAudit(f)
	b := f.browser(challengeUser)
	// Enrol the authenticator app.
	b.get(challengeURL(challengeRD, "provider", "google-authenticator"))
	o := b.scanQR()
	g.Expect(b.submit("/enroll", url.Values{"code": {f.code(o, f.clock.Now())}}).Code).To(Equal(http.StatusOK))

	w := b.get(securityPage)
	g.Expect(w.Code).To(Equal(http.StatusOK), b.last)
	g.Expect(b.last).To(ContainSubstring("Add another authenticator"))
	g.Expect(b.last).NotTo(ContainSubstring("Remove Authenticator app"), "the only method")
	addURL := regexpFind(t, b.last, `<a href="([^"]*provider=webauthn[^"]*)">Security key or passkey</a>`)

	// The link: the key's registration page, back to the Security page.
	key := passkeytest.New("https://auth.example.com", "example.com")
	g.Expect(b.get(addURL).Code).To(Equal(http.StatusOK))
	mode, options, fields := b.webAuthnPage()
	g.Expect(mode).To(Equal("create"))
	answer, err := key.Create(options)
	g.Expect(err).NotTo(HaveOccurred())
	fields.Set("credential", string(answer))
	fields.Set("name", "Laptop")
	g.Expect(b.post(challengePath+webAuthnPathRegister, fields).Code).To(Equal(http.StatusOK), b.last)
	g.Expect(codesRE.FindAllString(b.last, -1)).To(HaveLen(10), "the key's recovery codes, once")
	w = b.submit("/continue", nil)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal("https://auth.example.com" + securityPage))

	w = b.get(securityPage)
	g.Expect(w.Code).To(Equal(http.StatusOK), b.last)
	g.Expect(b.last).To(ContainSubstring("<strong>Laptop</strong>"), "the key is listed")
	g.Expect(b.last).To(ContainSubstring("Add another key"))
	g.Expect(b.last).NotTo(ContainSubstring("Add another authenticator"), "nothing left to add but keys")
	g.Expect(b.last).To(ContainSubstring("Remove Authenticator app"), "no longer the only method")
	g.Expect(b.last).To(ContainSubstring("Remove Security key or passkey"))

	// New recovery codes for the keys.
	form := url.Values{}
	for k, v := range b.form(securityPage + "/codes") {
		form[k] = v
	}
	form.Set("provider", "webauthn")
	w = b.post(securityPage+"/codes", form)
	g.Expect(w.Code).To(Equal(http.StatusOK), b.last)
	g.Expect(codesRE.FindAllString(b.last, -1)).To(HaveLen(10))

	// Removing the keys brings the link back.
	form.Set("provider", "webauthn")
	w = b.post(securityPage+"/remove", form)
	g.Expect(w.Code).To(Equal(http.StatusOK), b.last)
	g.Expect(b.last).To(ContainSubstring("Security key or passkey removed"))
	g.Expect(b.last).To(ContainSubstring("Add another authenticator"))
	g.Expect(b.last).NotTo(ContainSubstring("<strong>Laptop</strong>"))

	var events []string
	for _, l := range auditLines(t, buf.String()) {
		events = append(events, l["event"].(string))
	}
	g.Expect(events).To(ContainElements(audit.EventFactorAdded, audit.EventRecoveryCodesRegenerated, audit.EventFactorRemoved))
}

// regexpFind is the first group of expr's first match in s, HTML-unescaped.
func regexpFind(t *testing.T, s, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s not found in:\n%s", expr, s)
	}
	return html.UnescapeString(m[1])
}
