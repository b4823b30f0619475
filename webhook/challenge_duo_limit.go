package webhook

import (
	"net/http"
	"net/netip"

	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
)

// The calls the Duo challenge makes to Duo's preauth and auth (a push, a
// passcode) are rate limited here, before they are made, per user of a
// provider and per client address: a page reloaded in a loop, a script
// posting forms, or many user names from one network cannot drive a flood
// of calls to Duo. Duo's own limits count per Duo application, so such a
// flood would have Duo refuse everybody. The waiting page's status polls
// (auth_status) have their own per-address limit (duoPollRateLimit) and
// follow a push, which is limited here and by DuoPushRateLimit.

// duoUserKey is a user of a Duo provider, the key of the per-user limits.
// The provider is part of it because a Duo username means something only
// within one Duo application: one provider's users never use up the
// allowance of another's.
type duoUserKey struct{ provider, user string }

// DuoCallLimits bound the calls to Duo's preauth and auth made for the
// challenge pages.
type DuoCallLimits struct {
	// PerUser bounds the calls for one user of one Duo provider, whatever
	// the client address. Zero fields take DefaultDuoUserLimit's.
	PerUser ratelimit.Limit
	// PerClient bounds the calls from one client address (an IPv6 /64),
	// whatever the user. Zero fields take DefaultDuoClientLimit's.
	PerClient ratelimit.Limit
}

var (
	// DefaultDuoUserLimit: a burst of 5 calls to Duo per user, then one
	// every 10 seconds. Loading the Duo page is one call, a push or a
	// passcode another.
	DefaultDuoUserLimit = ratelimit.Limit{PerMinute: 6, Burst: 5, MaxClients: 10000}
	// DefaultDuoClientLimit: a burst of 20 calls to Duo per client
	// address, then one a second, room for a shared office address.
	DefaultDuoClientLimit = ratelimit.Limit{PerMinute: 60, Burst: 20, MaxClients: 10000}
)

func (l DuoCallLimits) withDefaults() DuoCallLimits {
	return DuoCallLimits{PerUser: l.PerUser.Or(DefaultDuoUserLimit), PerClient: l.PerClient.Or(DefaultDuoClientLimit)}
}

// duoCallLimiter holds the allowances of DuoCallLimits.
type duoCallLimiter struct {
	perUser   *ratelimit.Limiter[duoUserKey]
	perClient *ratelimit.Limiter[netip.Addr]
}

func newDuoCallLimiter(l DuoCallLimits, s *Server) *duoCallLimiter {
	l = l.withDefaults()
	return &duoCallLimiter{
		perUser:   ratelimit.New[duoUserKey](l.PerUser, s.now),
		perClient: ratelimit.PerAddress(l.PerClient, s.now),
	}
}

// admitCall takes one call to Duo (call: preauth, push, passcode) from the
// client's allowance, then the user's. When either is used up it answers
// 429 with Retry-After, and Duo is not called.
func (d *duoPages) admitCall(w http.ResponseWriter, r *http.Request, cr *challengeRequest, call string) bool {
	s := d.c.s
	client := s.clientIP(r)
	limit := "client"
	ok, retry := d.calls.perClient.Allow(client)
	if ok {
		limit = "user"
		ok, retry = d.calls.perUser.Allow(duoUserKey{cr.providerKey(), cr.user()})
	}
	if ok {
		return true
	}
	s.countChallenge(cr.providerKey(), challengeRateLimited)
	s.log.Warn("too many calls to Duo; refused without calling Duo", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
		"provider", cr.providerKey(), "user", cr.user(), "client", client.String(), "call", call, "limit", limit,
		"retryAfter", retry.String())
	text := "Duo was asked about your account too often in a short time."
	if limit == "client" {
		text = "Too many requests to Duo came from your network in a short time."
	}
	d.c.renderMessage(w, cr, message{
		status: http.StatusTooManyRequests, title: "Too many requests", alert: true,
		text:        text + " Wait " + waitText(retry) + ", then try again.",
		details:     []string{"Nothing was sent to Duo."},
		actionURL:   d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		actionLabel: "Try again",
		retryAfter:  retry,
	})
	return false
}
