package webhook

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// TestDuoCallsAreLimitedBeforeCallingDuo: the Duo page's preauth is
// limited per user (whatever the address) and per client address
// (whatever the user); past the burst the page is a 429 with Retry-After
// and Duo is not called; the allowance comes back with time.
func TestDuoCallsAreLimitedBeforeCallingDuo(t *testing.T) {
	tests := []struct {
		name   string
		burst  int
		refill time.Duration
		// page opens the Duo page for the i-th time; every time counts
		// against the same allowance.
		page func(f *duoFixture, i int) *httptest.ResponseRecorder
		// another opens it for another user or from another address,
		// which has its own allowance.
		another func(f *duoFixture) *httptest.ResponseRecorder
		text    string
	}{
		{
			name: "per user, from many addresses", burst: defaultDuoUserLimit.Burst, refill: 6 * time.Second,
			page: func(f *duoFixture, i int) *httptest.ResponseRecorder {
				f.clientIP = fmt.Sprintf("198.51.100.%d", 100+i)
				return f.browser(duotest.UserApprove).get(challengeURL(duoRD))
			},
			another: func(f *duoFixture) *httptest.ResponseRecorder {
				return f.browser(duotest.UserDeny).get(challengeURL(duoRD))
			},
			text: "Duo was asked about your account too often in a short time. Wait 6 seconds, then try again.",
		},
		{
			name: "per client address, for many users", burst: defaultDuoClientLimit.Burst, refill: time.Second,
			page: func(f *duoFixture, i int) *httptest.ResponseRecorder {
				f.clientIP = "198.51.100.20"
				return f.browser(fmt.Sprintf("user-%d@example.com", i)).get(challengeURL(duoRD))
			},
			another: func(f *duoFixture) *httptest.ResponseRecorder {
				f.clientIP = "203.0.113.9"
				return f.browser("someone-else@example.com").get(challengeURL(duoRD))
			},
			text: "Too many requests to Duo came from your network in a short time. Wait a second, then try again.",
		},
		{
			name: "per IPv6 /64, for many users", burst: defaultDuoClientLimit.Burst, refill: time.Second,
			page: func(f *duoFixture, i int) *httptest.ResponseRecorder {
				f.clientIP = fmt.Sprintf("2001:db8:1:2::%x", i+1)
				return f.browser(fmt.Sprintf("user-%d@example.com", i)).get(challengeURL(duoRD))
			},
			another: func(f *duoFixture) *httptest.ResponseRecorder {
				f.clientIP = "2001:db8:1:3::1"
				return f.browser("someone-else@example.com").get(challengeURL(duoRD))
			},
			text: "Too many requests to Duo came from your network",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newDuoFixture(t)
			preauths := func() int { return len(f.duo.RequestsTo("/auth/v2/preauth")) }
			i := 0
			next := func() *httptest.ResponseRecorder { i++; return tt.page(f, i) }

			for range tt.burst {
				w := next()
				g.Expect(w.Code).To(Equal(http.StatusOK), "page %d: %s", i, w.Body.String())
			}
			g.Expect(preauths()).To(Equal(tt.burst))

			w := next()
			g.Expect(w.Code).To(Equal(http.StatusTooManyRequests), w.Body.String())
			g.Expect(w.Header().Get("Retry-After")).To(Equal(strconv.Itoa(int(tt.refill / time.Second))))
			g.Expect(w.Body.String()).To(ContainSubstring("Too many requests"))
			g.Expect(w.Body.String()).To(ContainSubstring(tt.text))
			g.Expect(w.Body.String()).To(ContainSubstring("Nothing was sent to Duo."))
			g.Expect(cookieNames(w)).NotTo(ContainElement(session.CookieName))
			g.Expect(preauths()).To(Equal(tt.burst), "Duo was not called")
			g.Expect(f.logs.String()).To(ContainSubstring("too many calls to Duo; refused without calling Duo"))

			g.Expect(tt.another(f).Code).To(Equal(http.StatusOK), "another allowance")
			g.Expect(preauths()).To(Equal(tt.burst + 1))

			// One call comes back per refill interval, no sooner.
			if tt.refill > time.Second {
				f.clock.Advance(tt.refill - time.Second)
				g.Expect(next().Code).To(Equal(http.StatusTooManyRequests))
				f.clock.Advance(time.Second)
			} else {
				f.clock.Advance(tt.refill)
			}
			g.Expect(next().Code).To(Equal(http.StatusOK))
			g.Expect(next().Code).To(Equal(http.StatusTooManyRequests))

			// The whole burst comes back once the allowance has refilled.
			f.clock.Advance(time.Duration(tt.burst) * tt.refill)
			for range tt.burst {
				g.Expect(next().Code).To(Equal(http.StatusOK))
			}
			g.Expect(next().Code).To(Equal(http.StatusTooManyRequests))
			g.Expect(preauths()).To(Equal(2*tt.burst + 2))
		})
	}
}

// TestDuoPushAndPasscodeShareTheUsersAllowance: a push and a passcode are
// calls like the page's preauth, and the one past the user's allowance (5)
// is not sent to Duo. A wrong passcode's page (the passcode, then preauth
// again for the options) is admitted as one.
func TestDuoPushAndPasscodeShareTheUsersAllowance(t *testing.T) {
	wrong := "wrong passcode"
	tests := []struct {
		name                  string
		spend                 []string // the allowance of 5, each step one
		refused               string   // then refused without calling Duo
		wantPreauth, wantAuth int      // the calls Duo received
	}{
		{"a push past the allowance", []string{"page", wrong, wrong, wrong, wrong}, "push", 5, 4},
		{"a passcode past the allowance", []string{"page", "push", "page", "push", "page"}, "passcode", 3, 2},
		{"the page past the allowance", []string{"page", wrong, wrong, wrong, wrong}, "page", 5, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newDuoFixture(t, func(o *Options) {
				o.duoCallLimits = duoCallLimits{PerUser: ratelimit.Limit{PerMinute: 6, Burst: 5}}
			})
			b := f.browser(duotest.UserApprove)
			do := func(step string) *httptest.ResponseRecorder {
				switch step {
				case "page":
					return b.get(challengeURL(duoRD))
				case "push":
					return b.submit(duoPathPush, nil)
				}
				return b.submit(duoPathPasscode, url.Values{"passcode": {"271828"}})
			}
			for _, step := range tt.spend {
				w := do(step)
				want := http.StatusOK
				if step == wrong {
					want = http.StatusUnprocessableEntity
				}
				g.Expect(w.Code).To(Equal(want), "%s: %s", step, w.Body.String())
			}
			w := do(tt.refused)
			g.Expect(w.Code).To(Equal(http.StatusTooManyRequests), w.Body.String())
			g.Expect(w.Body.String()).To(ContainSubstring("Nothing was sent to Duo."))
			g.Expect(f.duo.RequestsTo("/auth/v2/preauth")).To(HaveLen(tt.wantPreauth))
			g.Expect(f.duo.RequestsTo("/auth/v2/auth")).To(HaveLen(tt.wantAuth))
		})
	}
}

func TestDuoCallLimitsDefaults(t *testing.T) {
	g := NewWithT(t)
	g.Expect(duoCallLimits{}.withDefaults()).To(Equal(duoCallLimits{PerUser: defaultDuoUserLimit, PerClient: defaultDuoClientLimit}))
	g.Expect(duoCallLimits{PerUser: ratelimit.Limit{Burst: 2}}.withDefaults().PerUser).To(Equal(ratelimit.Limit{PerMinute: 10, Burst: 2, MaxClients: 10000}))
	g.Expect(defaultDuoUserLimit).To(Equal(ratelimit.Limit{PerMinute: 10, Burst: 10, MaxClients: 10000}), "a burst of 10, then one every 6 seconds")
	g.Expect(defaultDuoClientLimit).To(Equal(ratelimit.Limit{PerMinute: 60, Burst: 20, MaxClients: 10000}), "a burst of 20, then one a second")
}
