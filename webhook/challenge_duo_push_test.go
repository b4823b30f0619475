package webhook

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// Duo Push through the challenge pages: approval, refusals, bypass, the
// limit per user and the binding of a push to its user and browser.

func TestDuoPushApprovedIssuesTheSessionClaimingDuo(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	b := f.browser(duotest.UserApprove)
	g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))

	// The push: the waiting page, with its script allowed by nonce.
	w := b.submit(duoPathPush, nil)
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	body := w.Body.String()
	g.Expect(body).To(ContainSubstring("Approve the push"))
	g.Expect(body).To(ContainSubstring("iOS (XXX-XXX-0100)"))
	g.Expect(body).To(ContainSubstring(`data-poll="/challenge/apps/admin/duo/status"`))
	nonce := regexp.MustCompile(`<script nonce="([^"]+)">`).FindStringSubmatch(body)
	g.Expect(nonce).NotTo(BeNil(), "the page polls with a script")
	csp := w.Header().Get("Content-Security-Policy")
	g.Expect(csp).To(ContainSubstring("script-src 'nonce-" + nonce[1] + "'"))
	g.Expect(csp).To(ContainSubstring("connect-src 'self'"))
	g.Expect(csp).To(ContainSubstring("default-src 'none'"))
	form := b.form(duoPathCheck)
	g.Expect(form.Get(paramTx)).NotTo(BeEmpty())

	// The push as Duo received it.
	pushes := f.duo.RequestsTo("/auth/v2/auth")
	g.Expect(pushes).To(HaveLen(1))
	p := pushes[0].Params
	g.Expect(p.Get("factor")).To(Equal("push"))
	g.Expect(p.Get("async")).To(Equal("1"))
	g.Expect(p.Get("username")).To(Equal(duotest.UserApprove))
	g.Expect(p.Get("device")).To(Equal("DPFZRS9FB0D46QFTM891"))
	g.Expect(p.Get("ipaddr")).To(Equal("198.51.100.20"))
	info, err := url.ParseQuery(p.Get("pushinfo"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info).To(Equal(url.Values{"app": {"admin.example.com"}, "policy": {"apps/admin"}}))
	g.Expect(p.Get("pushinfo")).To(Equal("app=admin.example.com&policy=apps%2Fadmin"))

	// The script's polls: waiting while Duo waits, then done.
	for i := 0; i < duotest.ApprovePolls; i++ {
		code, a := b.pollStatus()
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(a.State).To(Equal("waiting"))
	}
	code, a := b.pollStatus()
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(a).To(Equal(duoStatusAnswer{State: "done"}))
	statuses := f.duo.RequestsTo("/auth/v2/auth_status")
	g.Expect(statuses).To(HaveLen(duotest.ApprovePolls + 1))
	g.Expect(statuses[0].Method).To(Equal(http.MethodGet))
	g.Expect(statuses[0].Params).To(HaveKey("txid"))
	g.Expect(body).NotTo(ContainSubstring(statuses[0].Params.Get("txid")), "the txid is never in the page")

	// The form then posted by the script (or by the user without one).
	w = b.submit(duoPathCheck, nil)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
	g.Expect(w.Header().Get("Location")).To(Equal(duoRD))
	g.Expect(cookieNames(w)).To(ContainElements(session.CookieName, session.RememberCookieName))

	aw := f.authFor(b, duoRD)
	g.Expect(aw.Code).To(Equal(http.StatusOK), aw.Body.String())
	g.Expect(aw.Header().Get(headerUser)).To(Equal(duotest.UserApprove))
	g.Expect(aw.Header().Get(headerMultifactor)).To(Equal("duo"))
	claims := assertionClaims(g, aw)
	g.Expect(claims["multifactor"]).To(Equal([]any{"duo"}))
	g.Expect(claims["amr"]).To(ContainElement("mfa"))
	g.Expect(f.logs.String()).To(ContainSubstring("second factor accepted"))

	// The same form sent again (the back button after a sign-out): the
	// push issued its session already.
	w = b.post(challengePath+duoPathCheck, form)
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Body.String()).To(ContainSubstring("This push was already used to sign in."))
	g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
	logDuoRequests(t, f.duo)
}

func TestDuoPushRefusalsSayWhyAndOfferAnotherTry(t *testing.T) {
	tests := []struct {
		user       string
		title, msg string
	}{
		{duotest.UserDeny, "Request denied", "Login request denied."},
		{duotest.UserTimeout, "Request timed out", "Login request timed out."},
		{duotest.UserFraud, "Request reported as fraud", "Login request reported as fraudulent."},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			g := NewWithT(t)
			f := newDuoFixture(t)
			b := f.browser(tt.user)
			g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
			g.Expect(b.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))

			// Without a script: "Continue" before the answer shows the
			// waiting page again.
			w := b.submit(duoPathCheck, nil)
			g.Expect(w.Code).To(Equal(http.StatusOK))
			g.Expect(w.Body.String()).To(ContainSubstring("Duo has no answer from your device yet"))

			w = b.submit(duoPathCheck, nil)
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring(tt.title))
			g.Expect(w.Body.String()).To(ContainSubstring("Duo says: " + tt.msg))
			g.Expect(w.Body.String()).To(ContainSubstring(`>Try again</a>`))
			g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
			g.Expect(f.authFor(b, duoRD).Code).To(Equal(http.StatusUnauthorized))

			// Trying again offers the push again.
			w = b.get(challengeURL(duoRD))
			g.Expect(w.Code).To(Equal(http.StatusOK))
			g.Expect(w.Body.String()).To(ContainSubstring("Send a push"))
			if tt.user == duotest.UserFraud {
				g.Expect(f.logs.String()).To(MatchRegexp(`"level":"WARN","msg":"Duo push reported as fraud by the user".*"user":"fraud"`))
			}
		})
	}
}

func TestDuoBypassPassesWithoutClaimingDuo(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	b := f.browser(duotest.UserBypass)
	w := b.get(challengeURL(duoRD))
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
	g.Expect(w.Header().Get("Location")).To(Equal(duoRD))
	g.Expect(cookieNames(w)).To(ConsistOf(session.CookieName), "a session for this browser session only, never remembered")

	aw := f.authFor(b, duoRD)
	g.Expect(aw.Code).To(Equal(http.StatusOK))
	g.Expect(aw.Header().Get(headerMultifactor)).To(BeEmpty(), "no factor was answered")
	claims := assertionClaims(g, aw)
	g.Expect(claims["multifactor"]).To(BeEmpty())
	g.Expect(claims["amr"]).To(BeEmpty())
	g.Expect(f.logs.String()).To(MatchRegexp(`"msg":"second factor bypassed by Duo; the session does not claim duo".*"rule":"everyone".*"user":"bypass"`))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(BeEmpty(), "no push or passcode")
}

func TestDuoPushesAreLimitedPerUser(t *testing.T) {
	g := NewWithT(t)
	// The push limit alone: the limits of calls to Duo are out of its way.
	f := newDuoFixture(t, func(o *Options) {
		o.duoCallLimits = duoCallLimits{PerUser: ratelimit.Limit{PerMinute: 600, Burst: 100}}
	})
	b := f.browser(duotest.UserApprove)
	push := func(b *browser) *httptest.ResponseRecorder {
		g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
		return b.submit(duoPathPush, nil)
	}
	for i := 0; i < int(duoPushRateLimit.Burst); i++ {
		g.Expect(push(b).Code).To(Equal(http.StatusOK), "push %d", i+1)
	}
	w := push(b)
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("Too many pushes"))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("20"))
	g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(HaveLen(duoPushRateLimit.Burst), "the refused push never reached Duo")

	// Another browser of the same user, from another address: still limited.
	other := f.browser(duotest.UserApprove)
	f.clientIP = "198.51.100.99"
	g.Expect(push(other).Code).To(Equal(http.StatusTooManyRequests))
	// Another user is not.
	g.Expect(push(f.browser(duotest.UserDeny)).Code).To(Equal(http.StatusOK))
	// A push a minute is back after 20 seconds.
	f.clock.Advance(20 * time.Second)
	g.Expect(push(b).Code).To(Equal(http.StatusOK))
}

// TestDuoPushIsBoundToTheUserAndTheBrowser: the sealed transaction of one
// user's push cannot be polled or completed by another user or another
// browser, nor after it expires, nor once tampered with.
func TestDuoPushIsBoundToTheUserAndTheBrowser(t *testing.T) {
	g := NewWithT(t)
	f := newDuoFixture(t)
	alice := f.browser(duotest.UserApprove)
	g.Expect(alice.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(alice.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
	stolen := alice.form(duoPathCheck).Get(paramTx)

	// mallory: her own page and token, alice's transaction.
	mallory := f.browser(duotest.UserDeny)
	g.Expect(mallory.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(mallory.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
	// alice in another browser: her CSRF token there, the transaction of
	// the first browser.
	aliceElsewhere := f.browser(duotest.UserApprove)
	g.Expect(aliceElsewhere.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
	g.Expect(aliceElsewhere.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))

	statusBefore := len(f.duo.RequestsTo("/auth/v2/auth_status"))
	tampered := []byte(stolen)
	tampered[len(tampered)/2] ^= 1
	for name, tc := range map[string]struct {
		b  *browser
		tx string
	}{
		"another user":            {mallory, stolen},
		"the same user elsewhere": {aliceElsewhere, stolen},
		"a tampered transaction":  {alice, string(tampered)},
		"a made-up transaction":   {alice, base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))},
		"no transaction":          {alice, ""},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			form := tc.b.form(duoPathCheck)
			form.Set(paramTx, tc.tx)
			last := tc.b.last
			w := tc.b.post(challengePath+duoPathStatus, form)
			tc.b.last = last
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Header().Get("Content-Type")).To(Equal("application/json"))
			g.Expect(w.Body.String()).To(ContainSubstring(`"error":"invalid or expired push"`))
			w = tc.b.post(challengePath+duoPathCheck, form)
			tc.b.last = last
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring("Push expired or invalid"))
			g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
		})
	}
	g.Expect(f.duo.RequestsTo("/auth/v2/auth_status")).To(HaveLen(statusBefore), "no refused transaction reached Duo")

	t.Run("a status request without the form token", func(t *testing.T) {
		g := NewWithT(t)
		form := alice.form(duoPathCheck)
		form.Del(csrfField)
		last := alice.last
		w := alice.post(challengePath+duoPathStatus, form)
		alice.last = last
		g.Expect(w.Code).To(Equal(http.StatusForbidden))
		g.Expect(w.Body.String()).To(ContainSubstring(`"error":"invalid form token"`))
	})
	t.Run("an expired push", func(t *testing.T) {
		g := NewWithT(t)
		f.clock.Advance(duoTxTTL + time.Second)
		w := alice.submit(duoPathCheck, nil)
		g.Expect(w.Code).To(Equal(http.StatusForbidden))
		g.Expect(w.Body.String()).To(ContainSubstring("This push has expired."))
	})
}
