package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// modePolicyYAML is a policy in the given mode whose rules allow, deny,
// require a second factor and fail to evaluate, by path.
func modePolicyYAML(mode string) string {
	return coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: shadow, namespace: apps }
spec:
  mode: ` + mode + `
  hosts: [shadow.example.com]
  identity:
    header: { user: X-Auth-Request-Email, groups: X-Auth-Request-Groups }
  rules:
  - name: public
    when: 'request.path.startsWith("/public")'
    action: Allow
  - name: blocked
    when: 'request.path.startsWith("/blocked")'
    action: Deny
  - name: broken
    when: 'request.path.startsWith("/broken") && ip(request.headers["x-none"]).family() == 4'
    action: Allow
  - name: everyone-else
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [google-authenticator] }
`
}

// modeCase is one request and what each mode answers.
var modeCases = []struct {
	name, path string
	identity   bool
	enforce    int // Enforce's status
	would      string
	rule       string
}{
	{"allow rule", "/public/x", true, http.StatusOK, "allow", "public"},
	{"deny rule", "/blocked", true, http.StatusForbidden, "deny", "blocked"},
	{"mfa rule", "/account", true, http.StatusUnauthorized, "challenge", "everyone-else"},
	{"rule error", "/broken", true, http.StatusForbidden, "error", "broken"},
	{"no identity", "/account", false, http.StatusUnauthorized, "challenge", "(no identity)"},
}

func modeRequest(endpoint, path string, identity bool) *http.Request {
	h := map[string]string{}
	if identity {
		h["X-Auth-Request-Email"] = ana
	}
	r := authRequest(endpoint, "https://shadow.example.com"+path, h)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "shadow.example.com")
	r.Header.Set("X-Forwarded-Uri", path)
	r.Header.Set("X-Forwarded-Method", http.MethodGet)
	r.Header.Set("User-Agent", "audit-test/1")
	return r
}

// An Audit policy lets every decision through, allow, deny, second factor
// or error, on /auth and /forward-auth, with no X-MFA-* header: it never
// claims a second factor.
func TestAuditPolicyNeverBlocks(t *testing.T) {
	f := newCoreServer(t, modePolicyYAML("Audit"))
	for _, endpoint := range []string{"/auth/apps/shadow", "/auth", "/forward-auth/apps/shadow", "/forward-auth"} {
		for _, c := range modeCases {
			t.Run(endpoint+"/"+c.name, func(t *testing.T) {
				g := NewWithT(t)
				w := f.serve(modeRequest(endpoint, c.path, c.identity))
				g.Expect(w.Code).To(Equal(http.StatusOK))
				for name := range w.Header() {
					g.Expect(strings.ToLower(name)).NotTo(HavePrefix("x-mfa-"), "header %s", name)
				}
				g.Expect(w.Header().Get("Location")).To(BeEmpty())
				g.Expect(w.Header().Values("Set-Cookie")).To(BeEmpty())
			})
		}
	}
}

// An Enforce policy (the default when mode is not set) blocks what its
// rules block, through the same handler.
func TestEnforcePolicyAlwaysBlocks(t *testing.T) {
	for _, mode := range []string{"Enforce", "null"} {
		f := newCoreServer(t, modePolicyYAML(mode))
		for _, c := range modeCases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				g := NewWithT(t)
				w := f.serve(modeRequest("/auth/apps/shadow", c.path, c.identity))
				g.Expect(w.Code).To(Equal(c.enforce))
				if c.enforce == http.StatusOK {
					g.Expect(w.Header().Get("X-Mfa-User")).To(Equal(ana))
				}
				fw := f.serve(modeRequest("/forward-auth/apps/shadow", c.path, c.identity))
				if c.enforce == http.StatusOK {
					g.Expect(fw.Code).To(Equal(http.StatusOK))
				} else {
					g.Expect(fw.Code).NotTo(Equal(http.StatusOK), "forward-auth %s", c.name)
				}
			})
		}
		g := NewWithT(t)
		g.Expect(metricsBody(f)).NotTo(ContainSubstring("mfa_audit_decisions_total{"))
	}
}

// Each audited decision is counted by policy, rule and what Enforce would
// have answered, and logged as an audit event.
func TestAuditRecordsWhatWouldHaveHappened(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, modePolicyYAML("Audit"))
	for _, c := range modeCases {
		f.serve(modeRequest("/auth/apps/shadow", c.path, c.identity))
	}
	body := metricsBody(f)
	for _, c := range modeCases {
		g.Expect(body).To(ContainSubstring(`mfa_audit_decisions_total{policy="apps/shadow",rule="` + c.rule + `",would="` + c.would + `"} 1`))
	}
	g.Expect(body).To(ContainSubstring(`mfa_decisions_total{namespace="apps",policy="shadow",result="allow"} 5`))
	logs := f.logs.String()
	g.Expect(logs).To(ContainSubstring(`"audit":true,"event":"audit_decision","policy":"apps/shadow","rule":"blocked","would":"deny","outcome":"deny","user":"` + ana + `","client_ip":"198.51.100.20","user_agent":"audit-test/1"`))
	g.Expect(strings.Count(logs, `"event":"audit_decision"`)).To(Equal(len(modeCases)))
}

// What cannot be judged is refused in Audit mode too: an untrusted peer
// says nothing the server believes.
func TestAuditStillRefusesAnUntrustedPeer(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, modePolicyYAML("Audit"))
	r := modeRequest("/auth/apps/shadow", "/public/x", true)
	r.RemoteAddr = coreClientAddr
	g.Expect(f.serve(r).Code).To(Equal(http.StatusForbidden))
	r = modeRequest("/auth/apps/shadow", "/public/x", true)
	r.Header.Set("X-Original-URL", "https://other.example.com/")
	g.Expect(f.serve(r).Code).To(Equal(http.StatusForbidden))
}

func metricsBody(f *coreFixture) string {
	w := httptest.NewRecorder()
	f.s.metricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return w.Body.String()
}
