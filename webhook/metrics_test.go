package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/version"
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
	f.s.metrics.countChallenge("apps/google-authenticator", "failure")
	f.s.metrics.lockouts.Inc()

	w := httptest.NewRecorder()
	f.s.metricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
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
		`mfa_operator_build_info{goversion="` + runtime.Version() + `",revision="` + version.Revision + `",version="` + version.Version + `"} 1`,
	} {
		g.Expect(body).To(ContainSubstring(line))
	}
	g.Expect(body).NotTo(ContainSubstring(`namespace="nope"`))
}

func TestMetricsAreNotServedOnThePageListener(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	for _, path := range []string{"/metrics", "/metrics/"} {
		w := f.serve(httptest.NewRequest(http.MethodGet, path, nil))
		g.Expect(w.Code).To(Equal(http.StatusNotFound), path)
		g.Expect(w.Body.String()).NotTo(ContainSubstring("mfa_decisions_total"), path)
	}
}

func TestLockoutsAreCountedWhenAnUpdateLocksAUser(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, "")
	st := f.s.pages.totp.Store
	lockouts := func() float64 {
		var m dto.Metric
		g.Expect(f.s.metrics.lockouts.Write(&m)).To(Succeed())
		return m.GetCounter().GetValue()
	}
	ctx := context.Background()
	k := store.Key{Provider: "apps/google-authenticator", User: ana}

	_, err := st.Update(ctx, k, func(e *store.Enrollment) error {
		e.FailedAttempts = append(e.FailedAttempts, f.clock.Now())
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(lockouts()).To(BeZero())

	lock := func(e *store.Enrollment) error { e.LockedUntil = f.clock.Now().Add(5 * time.Minute); return nil }
	_, err = st.Update(ctx, k, lock)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(lockouts()).To(Equal(1.0))
	g.Expect(f.logs.String()).To(And(ContainSubstring(`"event":"lockout"`), ContainSubstring(`"provider":"apps/google-authenticator"`),
		ContainSubstring(`"user":"`+ana+`"`)), "a lockout is an audit event")
	// Still locked, nothing new: not counted again.
	_, err = st.Update(ctx, k, func(e *store.Enrollment) error { return nil })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(lockouts()).To(Equal(1.0))
	// An update that fails writes nothing and counts nothing.
	_, err = st.Update(ctx, store.Key{Provider: k.Provider, User: "bob"}, func(e *store.Enrollment) error { _ = lock(e); return errors.New("abort") })
	g.Expect(err).To(HaveOccurred())
	g.Expect(lockouts()).To(Equal(1.0))
}
