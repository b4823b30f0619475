package webhook

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// withoutIdentity is the decision of an auth request with no identity. For
// a forwardAuth identity it says why, and what the front door gets:
//
//   - no first-factor session (the first factor answered 401): 401, with
//     Location the first factor's sign-in page, whose rd is the original
//     URL: after the sign-in the browser comes back through the front
//     door, which asks for the second factor only when it is due. A policy
//     that lists no hosts has not vouched for the original host, so its rd
//     is the challenge page, which checks it before sending the browser on.
//     (ingress-nginx sends the browser to its auth-signin, the challenge
//     page, which sends it to the sign-in page the same way.)
//   - the first factor refused the user (403): 403.
//   - the first factor cannot be asked (down, timeout, 5xx, circuit open)
//     or named no one: 401 with Location the challenge page, which shows
//     the browser a page saying so (503). Never a 200, and never a 5xx
//     to the front door, which would show its own error page or, for some
//     front doors, be configurable to let the request through.
func (e *policyEntry) withoutIdentity(d decision, err error, orig *originalRequest) decision {
	d.result, d.err, d.location, d.reason = decisionChallenge, err, e.challengeURL(orig.url()), "no identity"
	if e.firstFactor == nil || err == nil {
		return d
	}
	switch {
	case errors.Is(err, errSignInFirst):
		d.err, d.reason = nil, "no first-factor session"
		back := d.location
		if e.hosts.listed {
			back = orig.url() // the host is one the policy lists (checked before)
		}
		if isAbsoluteURL(back) {
			d.location = e.firstFactor.signinURL(back)
		}
	case errors.Is(err, errFirstFactorDenied):
		d.result, d.location, d.reason = decisionDeny, "", "the first factor refused the user"
	default:
		d.reason = "the first factor cannot be reached"
	}
	return d
}

func isAbsoluteURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// firstFactorMissing answers a challenge page whose first factor gave no
// identity: to its sign-in page when there is no session, returning to rd
// (checked against the policy's hosts) through the front door, else a page
// saying why nothing can be done (never a way in).
func (c *challengePages) firstFactorMissing(w http.ResponseWriter, r *http.Request, cr *challengeRequest, err error) {
	e := cr.entry
	switch {
	case errors.Is(err, errSignInFirst):
		back := cr.rd
		if !isAbsoluteURL(back) {
			back = requestScheme(r) + "://" + r.Host + back
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, e.firstFactor.signinURL(back), http.StatusFound)
	case errors.Is(err, errFirstFactorDenied):
		c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Access denied", alert: true,
			text: "Your single sign-on refused access to " + hostOrApp(cr.appHost) + ".",
		})
	default:
		c.log.Warn("challenge page without identity: the first factor cannot be reached", "policy", e.key, "error", err)
		c.renderMessage(w, cr, message{
			status: http.StatusServiceUnavailable, title: "Sign-in unavailable", alert: true,
			text:       "The single sign-on service cannot be reached right now, so you cannot be signed in to " + hostOrApp(cr.appHost) + ".",
			details:    []string{"Nothing was let through. Try again in a moment; if it keeps happening, tell the administrator."},
			retryAfter: 5 * time.Second,
		})
	}
}

// requestScheme is the scheme the browser used to reach a challenge page,
// as far as this server can tell without a --public-url.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
