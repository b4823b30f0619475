package webhook

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
)

// The calls the Duo challenge makes to Duo's preauth and auth (a push, a
// passcode) are rate limited here, before they are made, per user of a
// provider and per client address: a page reloaded in a loop, a script
// posting forms, or many user names from one network cannot drive a flood
// of calls to Duo. Duo's own limits count per Duo application, so such a
// flood would have Duo refuse everybody. The waiting page's status polls
// (auth_status) have their own per-address limit (duoPollRateLimit) and
// follow a push, which is limited here and by duoPushRateLimit.

// duoUserKey is a user of a Duo provider, the key of the per-user limits.
// The provider is part of it because a Duo username means something only
// within one Duo application: one provider's users never use up the
// allowance of another's.
type duoUserKey struct{ provider, user string }

// duoCallLimits bound the calls to Duo's preauth and auth made for the
// challenge pages.
type duoCallLimits struct {
	// PerUser bounds the calls for one user of one Duo provider, whatever
	// the client address. Zero fields take defaultDuoUserLimit's.
	PerUser ratelimit.Limit
	// PerClient bounds the calls from one client address (an IPv6 /64),
	// whatever the user. Zero fields take defaultDuoClientLimit's.
	PerClient ratelimit.Limit
}

var (
	// defaultDuoUserLimit: a burst of 10 calls to Duo per user, then one
	// every 6 seconds. Loading the Duo page is one call, a push or a
	// passcode another: a user who pushes, mistypes a passcode and signs
	// in on a second device stays within it.
	defaultDuoUserLimit = ratelimit.Limit{PerMinute: 10, Burst: 10, MaxClients: 10000}
	// defaultDuoClientLimit: a burst of 20 calls to Duo per client
	// address, then one a second, room for a shared office address.
	defaultDuoClientLimit = ratelimit.Limit{PerMinute: 60, Burst: 20, MaxClients: 10000}
)

func (l duoCallLimits) withDefaults() duoCallLimits {
	return duoCallLimits{PerUser: l.PerUser.Or(defaultDuoUserLimit), PerClient: l.PerClient.Or(defaultDuoClientLimit)}
}

// duoCallLimiter holds the allowances of duoCallLimits.
type duoCallLimiter struct {
	perUser   *ratelimit.Limiter[duoUserKey]
	perClient *ratelimit.Limiter[netip.Addr]
}

func newDuoCallLimiter(l duoCallLimits, now func() time.Time) *duoCallLimiter {
	l = l.withDefaults()
	return &duoCallLimiter{
		perUser:   ratelimit.New[duoUserKey](l.PerUser, now),
		perClient: ratelimit.PerAddress(l.PerClient, now),
	}
}

// admitCall takes one call to Duo (call: preauth, push, passcode) from the
// client's allowance, then the user's. When either is used up it answers
// 429 with Retry-After, and Duo is not called.
func (d *duoPages) admitCall(w http.ResponseWriter, r *http.Request, cr *challengeRequest, call string) bool {
	client := d.proxies.clientIP(r)
	limit := "client"
	ok, retry := d.calls.perClient.Allow(client)
	if ok {
		limit = "user"
		ok, retry = d.calls.perUser.Allow(duoUserKey{cr.providerKey(), cr.user()})
	}
	if ok {
		return true
	}
	d.metrics.countChallenge(cr.providerKey(), challengeRateLimited)
	d.log.Warn("too many calls to Duo; refused without calling Duo", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
		"provider", cr.providerKey(), "user", cr.user(), "client", client.String(), "call", call, "limit", limit,
		"retryAfter", retry.String())
	text := "Duo was asked about your account too often in a short time."
	if limit == "client" {
		text = "Too many requests to Duo came from your network in a short time."
	}
	d.renderMessage(w, cr, message{
		status: http.StatusTooManyRequests, title: "Too many requests", alert: true,
		text:        text + " Wait " + waitText(retry) + ", then try again.",
		details:     []string{"Nothing was sent to Duo."},
		actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		actionLabel: "Try again",
		retryAfter:  retry,
	})
	return false
}
