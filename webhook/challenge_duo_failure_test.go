package webhook

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// TestDuoFailModes: only an unreachable Duo (no answer, or an HTTP 5xx)
// follows failMode; open lets the user through without claiming duo,
// loudly. Duo refusing (any 4xx, 429 included), a peer at Duo's address
// that is not Duo, and a provider this server cannot use fail closed,
// whatever the fail mode.
func TestDuoFailModes(t *testing.T) {
	rateLimit := func(d time.Duration) func(*duotest.Server) {
		return func(s *duotest.Server) { s.RateLimit(d) }
	}
	failWith := func(status int) func(*duotest.Server) {
		return func(s *duotest.Server) { s.FailWith(status) }
	}
	impostor := func(s *duotest.Server) { s.PresentUntrustedCertificate(true) }
	const refused = "Duo did not accept the sign-in service&#39;s request"
	tests := []struct {
		name    string
		rd      string
		breakIt func(s *duotest.Server)
		open    bool // the user passes without a second factor
		// The refusal page.
		status     int
		text       string
		retryAfter string
		// duoAnswered: Duo received the preauth and answered this status.
		duoAnswered int
	}{
		{name: "stopped, failMode closed", rd: duoRD, breakIt: (*duotest.Server).Stop,
			status: http.StatusServiceUnavailable, text: "Duo cannot be reached right now", retryAfter: "5"},
		{name: "stopped, failMode open", rd: duoOpenRD, breakIt: (*duotest.Server).Stop, open: true},
		{name: "HTTP 503, failMode closed", rd: duoRD, breakIt: failWith(http.StatusServiceUnavailable),
			status: http.StatusServiceUnavailable, text: "Duo cannot be reached right now", retryAfter: "5", duoAnswered: http.StatusServiceUnavailable},
		{name: "HTTP 503, failMode open", rd: duoOpenRD, breakIt: failWith(http.StatusServiceUnavailable), open: true, duoAnswered: http.StatusServiceUnavailable},
		{name: "HTTP 500, failMode open", rd: duoOpenRD, breakIt: failWith(http.StatusInternalServerError), open: true, duoAnswered: http.StatusInternalServerError},

		{name: "Duo rate limiting with Retry-After, failMode open", rd: duoOpenRD, breakIt: rateLimit(30 * time.Second),
			status: http.StatusTooManyRequests, text: "Duo is refusing requests right now, so your second step cannot be checked. Try again in 30 seconds.",
			retryAfter: "30", duoAnswered: http.StatusTooManyRequests},
		{name: "Duo rate limiting without Retry-After, failMode open", rd: duoOpenRD, breakIt: rateLimit(0),
			status: http.StatusTooManyRequests, text: "Duo is refusing requests right now, so your second step cannot be checked. Try again in a minute.",
			retryAfter: "60", duoAnswered: http.StatusTooManyRequests},
		{name: "Duo rate limiting, failMode closed", rd: duoRD, breakIt: rateLimit(5 * time.Minute),
			status: http.StatusTooManyRequests, text: "Try again in 5 minutes.", retryAfter: "300", duoAnswered: http.StatusTooManyRequests},
		{name: "HTTP 400, failMode open", rd: duoOpenRD, breakIt: failWith(http.StatusBadRequest),
			status: http.StatusServiceUnavailable, text: refused, retryAfter: "5", duoAnswered: http.StatusBadRequest},
		{name: "HTTP 401, failMode open", rd: duoOpenRD, breakIt: failWith(http.StatusUnauthorized),
			status: http.StatusServiceUnavailable, text: refused, retryAfter: "5", duoAnswered: http.StatusUnauthorized},
		{name: "HTTP 403, failMode open", rd: duoOpenRD, breakIt: failWith(http.StatusForbidden),
			status: http.StatusServiceUnavailable, text: refused, retryAfter: "5", duoAnswered: http.StatusForbidden},

		{name: "an impostor's certificate, failMode open", rd: duoOpenRD, breakIt: impostor,
			status: http.StatusServiceUnavailable, text: "The connection to Duo could not be verified", retryAfter: "30"},
		{name: "an impostor's certificate, failMode closed", rd: duoRD, breakIt: impostor,
			status: http.StatusServiceUnavailable, text: "The connection to Duo could not be verified", retryAfter: "30"},
		{name: "a host that is not Duo's without a CA bundle fails closed even with failMode open", rd: duoNoHostRD, breakIt: func(*duotest.Server) {},
			status: http.StatusServiceUnavailable, text: "Duo verification is not set up correctly", retryAfter: "30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newDuoFixture(t)
			tt.breakIt(f.duo)
			b := f.browser(duotest.UserApprove)
			w := b.get(challengeURL(tt.rd))
			aw := f.authFor(b, tt.rd)
			preauths := f.duo.RequestsTo("/auth/v2/preauth")
			if tt.duoAnswered != 0 {
				g.Expect(preauths).To(HaveLen(1))
				g.Expect(preauths[0].HTTPStatus).To(Equal(tt.duoAnswered))
			} else {
				g.Expect(preauths).To(BeEmpty())
			}
			if !tt.open {
				g.Expect(w.Code).To(Equal(tt.status), w.Body.String())
				g.Expect(w.Body.String()).To(ContainSubstring(tt.text))
				g.Expect(w.Header().Get("Retry-After")).To(Equal(tt.retryAfter))
				g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
				g.Expect(aw.Code).To(Equal(http.StatusUnauthorized))
				g.Expect(f.logs.String()).NotTo(ContainSubstring("WITHOUT a second factor"))
				return
			}
			g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())
			g.Expect(w.Header().Get("Location")).To(Equal(tt.rd))
			g.Expect(cookieNames(w)).To(ConsistOf(session.CookieName), "never remembered")
			g.Expect(aw.Code).To(Equal(http.StatusOK))
			g.Expect(aw.Header().Get(headerMultifactor)).To(BeEmpty(), "a fail-open session never claims duo")
			g.Expect(assertionClaims(g, aw)["multifactor"]).To(BeEmpty())
			g.Expect(f.logs.String()).To(MatchRegexp(
				`"level":"WARN","msg":"DUO UNREACHABLE: failMode open lets the user through WITHOUT a second factor; the session does not claim duo","policy":"apps/admin","rule":"open","provider":"apps/duo-open","user":"approve"`))
		})
	}
	t.Run("unreachable while a push is pending, failMode closed", func(t *testing.T) {
		g := NewWithT(t)
		f := newDuoFixture(t)
		b := f.browser(duotest.UserApprove)
		g.Expect(b.get(challengeURL(duoRD)).Code).To(Equal(http.StatusOK))
		g.Expect(b.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
		f.duo.Stop()
		code, a := b.pollStatus()
		g.Expect(code).To(Equal(http.StatusOK))
		g.Expect(a.State).To(Equal("done"), "the form's answer explains")
		w := b.submit(duoPathCheck, nil)
		g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
		g.Expect(w.Body.String()).To(ContainSubstring("Duo cannot be reached right now"))
		g.Expect(f.authFor(b, duoRD).Code).To(Equal(http.StatusUnauthorized))
	})
}

// TestDuoRefusalsAfterThePageNeverFailOpen: a push, its outcome or a
// passcode that Duo refuses fails closed on a fail-open provider, as a
// refused preauth does.
func TestDuoRefusalsAfterThePageNeverFailOpen(t *testing.T) {
	tests := []struct {
		name   string
		act    func(f *duoFixture, b *browser) (int, string)
		status int
		text   string
	}{
		{"Duo rate limiting the push", func(f *duoFixture, b *browser) (int, string) {
			f.duo.RateLimit(20 * time.Second)
			w := b.submit(duoPathPush, nil)
			return w.Code, w.Body.String()
		}, http.StatusTooManyRequests, "Duo is refusing requests right now"},
		{"Duo rate limiting the push's outcome", func(f *duoFixture, b *browser) (int, string) {
			NewWithT(f.t).Expect(b.submit(duoPathPush, nil).Code).To(Equal(http.StatusOK))
			f.duo.RateLimit(20 * time.Second)
			code, a := b.pollStatus()
			NewWithT(f.t).Expect(code).To(Equal(http.StatusOK))
			NewWithT(f.t).Expect(a.State).To(Equal("done"), "the form's answer explains")
			w := b.submit(duoPathCheck, nil)
			return w.Code, w.Body.String()
		}, http.StatusTooManyRequests, "Duo is refusing requests right now"},
		{"Duo refusing the passcode with HTTP 403", func(f *duoFixture, b *browser) (int, string) {
			f.duo.FailWith(http.StatusForbidden)
			w := b.submit(duoPathPasscode, url.Values{"passcode": {duotest.ValidPasscode}})
			return w.Code, w.Body.String()
		}, http.StatusServiceUnavailable, "Duo did not accept the sign-in service&#39;s request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newDuoFixture(t)
			b := f.browser(duotest.UserApprove)
			g.Expect(b.get(challengeURL(duoOpenRD)).Code).To(Equal(http.StatusOK))
			status, body := tt.act(f, b)
			g.Expect(status).To(Equal(tt.status), body)
			g.Expect(body).To(ContainSubstring(tt.text))
			g.Expect(f.authFor(b, duoOpenRD).Code).To(Equal(http.StatusUnauthorized))
			g.Expect(f.logs.String()).NotTo(ContainSubstring("WITHOUT a second factor"))
			g.Expect(f.logs.String()).To(ContainSubstring(`"failMode":"open"`))
			g.Expect(f.logs.String()).To(ContainSubstring("failing closed whatever the failMode"))
		})
	}
}

func TestWaitText(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "a second"},
		{time.Second, "a second"},
		{1500 * time.Millisecond, "2 seconds"},
		{30 * time.Second, "30 seconds"},
		{time.Minute, "a minute"},
		{90 * time.Second, "a minute"},
		{2 * time.Minute, "2 minutes"},
		{121 * time.Second, "3 minutes"},
		{time.Hour, "60 minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			NewWithT(t).Expect(waitText(tt.d)).To(Equal(tt.want))
		})
	}
}
