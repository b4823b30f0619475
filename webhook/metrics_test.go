package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
)

func TestMetricsCountDecisions(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	h := map[string]string{"X-Auth-Request-Email": ana}
	f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/public/", h))
	f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/public/", h))
	f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/billing", h))
	f.serve(authRequest("/auth/apps/admin", "https://admin.example.com/", map[string]string{"X-Auth-Request-Email": ana, "X-Auth-Request-Groups": "blocked"}))
	// Unknown policies are counted without their (attacker-chosen) names.
	f.serve(authRequest("/auth/nope/nope", "https://admin.example.com/", h))
	f.s.countChallenge("apps/google-authenticator", "failure")
	f.s.countLockout()

	w := f.serve(httptest.NewRequest(http.MethodGet, "/metrics", nil))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	body := w.Body.String()
	for _, line := range []string{
		`mfa_decisions_total{namespace="apps",policy="admin",result="allow"} 2`,
		`mfa_decisions_total{namespace="apps",policy="admin",result="challenge"} 1`,
		`mfa_decisions_total{namespace="apps",policy="admin",result="deny"} 1`,
		`mfa_decisions_total{namespace="",policy="",result="refused"} 1`,
		`mfa_challenges_total{provider="apps/google-authenticator",result="failure"} 1`,
		`mfa_challenges_total{provider="apps/duo",result="success"} 0`,
		`mfa_lockouts_total 1`,
		`mfa_auth_duration_seconds_count 5`,
		`mfa_config_reloads_total{result="success",what="bundle"} 1`,
	} {
		g.Expect(body).To(ContainSubstring(line))
	}
	g.Expect(body).NotTo(ContainSubstring(`namespace="nope"`))
}
