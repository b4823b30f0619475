package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// The tenant boundary on the challenge pages: admission is checked again
// when a bundle loads, and enrolments, pending secrets and lockouts belong
// to one provider.

// tenancyBundleYAML is a bundle whose provider platform/totp admits
// team-b; TestTenancyChallengeServerChecksAdmissionAgain takes that away
// in the bundle itself.
const tenancyBundleYAML = `
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: totp, namespace: platform }
spec: { type: totp, allowedNamespaces: [team-b] }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: { name: own-totp, namespace: team-b }
spec: { type: totp }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: team-b }
spec:
  hosts: [app.team-b.example.com]
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - name: shared
    when: 'request.path.startsWith("/shared")'
    action: RequireMFA
    multifactor: { providers: [platform/totp] }
  - name: both
    when: 'true'
    action: RequireMFA
    multifactor: { providers: [own-totp, platform/totp] }
`

// TestTenancyChallengeServerChecksAdmissionAgain: a bundle whose policy
// names a provider that does not admit the policy's namespace (as an
// older controller could have written it) does not reach that provider:
// the rule's provider is skipped, its factors do not count, its pages do
// not offer it.
func TestTenancyChallengeServerChecksAdmissionAgain(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, "")
	b := bundleFromYAML(t, tenancyBundleYAML)
	for i := range b.Providers {
		if b.Providers[i].Key() == "platform/totp" {
			b.Providers[i].Spec.AllowedNamespaces = nil
		}
	}
	_, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.s.config.ApplyBundle(b, hash, "test")).To(Succeed())
	g.Expect(f.logs.String()).To(ContainSubstring("rule names an MFAProvider of another namespace that does not admit the policy's; it is skipped"))

	user := map[string]string{"X-Auth-Request-Email": ana}
	shared := f.issue(headerIdentity(ana), "team-b", "app", "shared", "platform/totp", session.Verified)
	own := f.issue(headerIdentity(ana), "team-b", "app", "both", "team-b/own-totp", session.Verified)
	tests := []struct {
		name     string
		original string
		cookies  []*http.Cookie
		wantCode int
	}{
		{name: "a rule whose only provider does not admit the namespace fails closed", original: "https://app.team-b.example.com/shared/x",
			cookies: shared, wantCode: http.StatusForbidden},
		{name: "a factor of the provider that does not admit the namespace does not count", original: "https://app.team-b.example.com/both",
			cookies: shared, wantCode: http.StatusUnauthorized},
		{name: "a factor of the policy's own provider counts", original: "https://app.team-b.example.com/both",
			cookies: own, wantCode: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run("auth: "+tt.name, func(t *testing.T) {
			g := NewWithT(t)
			w := f.serve(withCookies(authRequest("/auth/team-b/app", tt.original, user), tt.cookies...))
			g.Expect(w.Code).To(Equal(tt.wantCode), w.Body.String())
		})
	}

	page := func(rd string, extra ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "https://auth.example.com"+pageWithRD(teamBPage, rd, extra...), nil)
		r.RemoteAddr = coreProxyAddr
		r.Header.Set("X-Auth-Request-Email", ana)
		return f.serve(r)
	}
	t.Run("page: no method is available for a rule whose only provider does not admit the namespace", func(t *testing.T) {
		g := NewWithT(t)
		w := page("https://app.team-b.example.com/shared/x")
		g.Expect(w.Code).To(Equal(http.StatusForbidden))
		g.Expect(w.Body.String()).To(ContainSubstring("No verification method available"))
		g.Expect(w.Body.String()).NotTo(ContainSubstring("<form"))
	})
	t.Run("page: only the admitted provider is offered", func(t *testing.T) {
		g := NewWithT(t)
		w := page("https://app.team-b.example.com/both")
		g.Expect(w.Code).To(Equal(http.StatusOK))
		g.Expect(w.Body.String()).NotTo(ContainSubstring("Choose how to verify"))
		g.Expect(w.Body.String()).To(ContainSubstring("Set up your authenticator app"))
		g.Expect(w.Body.String()).To(ContainSubstring(`name="provider" value="own-totp"`))
	})
	t.Run("page: the provider that does not admit the namespace cannot be chosen", func(t *testing.T) {
		g := NewWithT(t)
		w := page("https://app.team-b.example.com/both", "provider", "platform/totp")
		g.Expect(w.Code).To(Equal(http.StatusBadRequest))
		g.Expect(w.Body.String()).To(ContainSubstring("Unknown verification method"))
	})
}

// TestTenancySharedProviderSharesItsEnrolments: an enrolment with the
// platform's provider made through an admitted namespace's policy is the
// platform's enrolment (the sharing the platform team asked for); one made
// with a namespace's own provider is not.
func TestTenancySharedProviderSharesItsEnrolments(t *testing.T) {
	f := newTenancyFixture(t)

	t.Run("enrolled through an admitted namespace, enrolled for the provider", func(t *testing.T) {
		g := NewWithT(t)
		alice := f.browser("alice@example.com")
		o := alice.enrolAt(teamBPage, sharedRD)
		g.Expect(o.issuer).To(Equal("Platform"), "team-b's rule names the platform's provider")

		f.clock.Advance(2 * time.Minute)
		for _, p := range []struct{ page, rd string }{{portalPage, portalRD}, {teamCPage, teamCRD}} {
			other := f.browser("alice@example.com")
			w := other.get(pageWithRD(p.page, p.rd))
			g.Expect(w.Code).To(Equal(http.StatusOK), p.page)
			g.Expect(w.Body.String()).To(ContainSubstring("Enter your verification code"), p.page)
		}
		portal := f.browser("alice@example.com")
		portal.get(pageWithRD(portalPage, portalRD))
		w := portal.submitTo(portalPage, "/verify", url.Values{"code": {f.code(o, f.clock.Now())}})
		g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
		g.Expect(w.Header().Get("Location")).To(Equal(portalRD))
		g.Expect(portal.authWith("platform/portal", portalRD).Code).To(Equal(http.StatusOK))
	})

	t.Run("enrolled with a namespace's own provider, not enrolled for the platform's", func(t *testing.T) {
		g := NewWithT(t)
		bob := f.browser("bob@example.com")
		own := bob.enrolAt(teamBPage, ownRD)
		g.Expect(own.issuer).To(Equal("Team B"))
		g.Expect(bob.authWith("team-b/app", ownRD).Code).To(Equal(http.StatusOK))
		g.Expect(bob.authWith("platform/portal", portalRD).Code).To(Equal(http.StatusUnauthorized),
			"a factor of team-b's provider does not satisfy the platform's policy")

		w := bob.get(pageWithRD(portalPage, portalRD))
		g.Expect(w.Code).To(Equal(http.StatusOK))
		g.Expect(w.Body.String()).To(ContainSubstring("Set up your authenticator app"))
		shared := bob.scanQR()
		g.Expect(shared.issuer).To(Equal("Platform"))
		g.Expect(shared.secret).NotTo(Equal(own.secret))
	})
}

// TestTenancyPendingSecretIsBoundToItsBrowser: two browsers of one user
// enrolling at once each get a secret of their own, and a code of one
// browser's secret does not confirm the other's.
func TestTenancyPendingSecretIsBoundToItsBrowser(t *testing.T) {
	g := NewWithT(t)
	f := newTenancyFixture(t)
	const carol = "carol@example.com"
	first, second := f.browser(carol), f.browser(carol)

	first.get(pageWithRD(teamBPage, ownRD))
	qr1 := first.scanQR()
	second.get(pageWithRD(teamBPage, ownRD))
	qr2 := second.scanQR()
	g.Expect(qr2.secret).NotTo(Equal(qr1.secret), "another browser never sees the first one's secret")
	first.get(pageWithRD(teamBPage, ownRD))
	g.Expect(first.scanQR().secret).To(Equal(qr1.secret), "a reload shows the same secret")

	w := second.submitTo(teamBPage, "/enroll", url.Values{"code": {f.code(qr1, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("That code is not right"))
	g.Expect(w.Header().Values("Set-Cookie")).NotTo(ContainElement(HavePrefix(session.CookieName + "=")))

	w = first.submitTo(teamBPage, "/enroll", url.Values{"code": {f.code(qr1, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Save your recovery codes"))

	// Confirming one discards the other: the second browser's secret never
	// becomes an enrolment.
	second.get(pageWithRD(teamBPage, ownRD))
	w = second.submitTo(teamBPage, "/verify", url.Values{"code": {f.code(qr2, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), w.Body.String())
}

// TestTenancyLockoutStaysWithItsProvider: failures with one provider lock
// the user out of that provider only, and the lockout is an audit event.
func TestTenancyLockoutStaysWithItsProvider(t *testing.T) {
	g := NewWithT(t)
	f := newTenancyFixture(t)
	const dave = "dave@example.com"
	platform := f.browser(dave).enrolAt(portalPage, portalRD)
	own := f.browser(dave).enrolAt(teamBPage, ownRD)
	f.clock.Advance(2 * time.Minute)

	b := f.browser(dave)
	b.get(pageWithRD(teamBPage, ownRD))
	var w *httptest.ResponseRecorder
	for range 5 {
		w = b.submitTo(teamBPage, "/verify", url.Values{"code": {wrong(f.code(own, f.clock.Now()))}})
	}
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests), w.Body.String())
	g.Expect(f.logs.String()).To(And(ContainSubstring(`"event":"lockout"`), ContainSubstring(`"provider":"team-b/own-totp"`),
		ContainSubstring(`"user":"`+dave+`"`)))
	var audits []string
	for _, line := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(line, `"event":"lockout"`) {
			audits = append(audits, line)
		}
	}
	g.Expect(audits).To(HaveEach(ContainSubstring(`"provider":"team-b/own-totp"`)), "no lockout of the platform's provider")

	// team-b's own provider is locked, even for the right code...
	w = b.submitTo(teamBPage, "/verify", url.Values{"code": {f.code(own, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))

	// ...the platform's is not: neither through its own policy nor through
	// team-b's.
	f.clientIP = "198.51.100.21" // a fresh budget of the per-address form limit
	portal := f.browser(dave)
	portal.get(pageWithRD(portalPage, portalRD))
	w = portal.submitTo(portalPage, "/verify", url.Values{"code": {f.code(platform, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())

	f.clock.Advance(time.Minute)
	shared := f.browser(dave)
	shared.get(pageWithRD(teamBPage, sharedRD))
	w = shared.submitTo(teamBPage, "/verify", url.Values{"code": {f.code(platform, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
}

// TestTenancyLockoutsEscalate: the second lockout in a row lasts longer
// than the first, and the audit log counts them.
func TestTenancyLockoutsEscalate(t *testing.T) {
	g := NewWithT(t)
	f := newTenancyFixture(t)
	const erin = "erin@example.com"
	o := f.browser(erin).enrolAt(teamBPage, ownRD)
	f.clock.Advance(2 * time.Minute)

	lockOut := func(clientIP string) *httptest.ResponseRecorder {
		f.clientIP = clientIP
		b := f.browser(erin)
		b.get(pageWithRD(teamBPage, ownRD))
		var w *httptest.ResponseRecorder
		for range 5 {
			w = b.submitTo(teamBPage, "/verify", url.Values{"code": {wrong(f.code(o, f.clock.Now()))}})
		}
		return w
	}
	w := lockOut("198.51.100.31")
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("300"))
	g.Expect(f.logs.String()).To(ContainSubstring(`(1 in a row)`))

	f.clock.Advance(6 * time.Minute)
	w = lockOut("198.51.100.32")
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("900"))
	g.Expect(f.logs.String()).To(ContainSubstring(`(2 in a row)`))
}

// TestTenancyIdentityHeadersAreCheckedWhenTheBundleLoads: the challenge
// server leaves out a policy naming an identity header outside
// --identity-headers, whoever built the bundle, and loads the others.
func TestTenancyIdentityHeadersAreCheckedWhenTheBundleLoads(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		user    string
		wantLog string
	}{
		{name: "a header outside the list", allowed: policy.DefaultIdentityHeaders, user: "X-User",
			wantLog: `spec.identity.header.user: header \"X-User\" is not one the operator allows`},
		{name: "a listed header, other case", allowed: policy.DefaultIdentityHeaders, user: "remote-user"},
		{name: "no list: any header", user: "X-User"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newCoreServer(t, "", func(o *Options) { o.IdentityHeaders = tt.allowed })
			b := bundleFromYAML(t, coreProvidersYAML+`
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: app, namespace: apps }
spec:
  identity: { header: { user: `+tt.user+` } }
  rules:
  - { name: everyone, when: 'true', action: Allow }
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: other, namespace: team-b }
spec:
  identity: { header: { user: X-Auth-Request-Email } }
  rules:
  - { name: everyone, when: 'true', action: Allow }
`)
			_, hash, err := b.Marshal()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(f.s.config.ApplyBundle(b, hash, "test")).To(Succeed())
			g.Expect(f.s.config.snapshot().Policy("team-b", "other")).NotTo(BeNil(), "one policy left out never holds back the others")
			if tt.wantLog != "" {
				g.Expect(f.logs.String()).To(ContainSubstring(tt.wantLog))
				g.Expect(f.s.config.snapshot().Policy("apps", "app")).To(BeNil())
				return
			}
			g.Expect(f.s.config.snapshot().Policy("apps", "app")).NotTo(BeNil())
		})
	}
}
