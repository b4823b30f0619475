package webhook

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// A call to Duo that failed. Only an unreachable Duo (duo.IsUnreachable:
// no answer at all, or an HTTP 5xx) follows the provider's failMode. Duo
// refusing the request (any 4xx, 429 included), a peer at Duo's address
// that cannot prove it is Duo (duo.TLSError) and an answer this server
// does not understand fail closed, whatever the failMode: were it
// otherwise, whoever can make Duo refuse (by flooding it) or can answer in
// its place would switch the second factor off.

// client returns the provider's client or answers with a page: a
// configuration this server cannot use fails closed.
func (d *duoPages) client(w http.ResponseWriter, cr *challengeRequest) (duo.Client, bool) {
	c, err := d.clients.Get(cr.provider)
	if err == nil {
		return c, true
	}
	d.metrics.countChallenge(cr.providerKey(), challengeUnavailable)
	d.log.Error("Duo provider unusable; failing closed", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
		"provider", cr.providerKey(), "user", cr.user(), "error", err.Error())
	d.renderMessage(w, cr, message{
		status: http.StatusServiceUnavailable, title: "Duo is not available", alert: true,
		text:       "Duo verification is not set up correctly, so your second step cannot be checked.",
		details:    []string{"Tell the administrator (MFAProvider " + cr.providerKey() + ")."},
		retryAfter: 30 * time.Second,
	})
	return nil, false
}

// duoRetryAfterDefault is the wait asked of the user when Duo rate limits
// without saying for how long.
const duoRetryAfterDefault = time.Minute

// failed answers an error of a call to Duo.
func (d *duoPages) failed(w http.ResponseWriter, r *http.Request, cr *challengeRequest, err error) {
	key := cr.providerKey()
	policyKey := cr.policy.Namespace + "/" + cr.policy.Name
	failMode := cr.provider.Spec.Duo.GetFailMode()
	var (
		apiErr *duo.APIError
		tlsErr *duo.TLSError
		input  *duo.InputError
	)
	switch {
	case duo.IsUnreachable(err) && failMode == v1alpha1.FailOpen:
		d.issueSession(w, r, cr, session.FailOpen)
		d.metrics.countChallenge(key, challengeFailOpen)
		d.log.Warn("DUO UNREACHABLE: failMode open lets the user through WITHOUT a second factor; the session does not claim duo",
			"policy", policyKey, "rule", cr.rule.Name, "provider", key, "user", cr.user(), "error", err.Error())
		http.Redirect(w, r, cr.rd, http.StatusSeeOther)
	case duo.IsUnreachable(err):
		d.metrics.countChallenge(key, challengeUnavailable)
		d.log.Error("Duo unreachable; failMode closed refuses", "policy", policyKey, "rule", cr.rule.Name, "provider", key,
			"user", cr.user(), "error", err.Error())
		d.renderMessage(w, cr, message{
			status: http.StatusServiceUnavailable, title: "Duo cannot be reached", alert: true,
			text:        "Duo cannot be reached right now, so your second step cannot be checked. Try again in a moment.",
			details:     []string{"Nothing was changed. If it keeps happening, tell the administrator (MFAProvider " + key + ")."},
			actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Try again",
			retryAfter:  5 * time.Second,
		})
	case errors.Is(err, context.Canceled):
		// The browser went away; nobody reads the answer.
		d.log.Debug("Duo call cancelled by the client", "policy", policyKey, "provider", key, "user", cr.user())
		w.WriteHeader(http.StatusServiceUnavailable)
	case errors.As(err, &apiErr) && apiErr.RateLimited():
		d.duoRateLimited(w, cr, apiErr, failMode)
	case errors.As(err, &tlsErr):
		d.metrics.countChallenge(key, challengeUnavailable)
		d.log.Error("Duo's identity not verified (TLS): possible interception or a wrong caBundleRef; failing closed whatever the failMode",
			"policy", policyKey, "rule", cr.rule.Name, "provider", key, "user", cr.user(), "failMode", string(failMode), "error", err.Error())
		d.renderMessage(w, cr, message{
			status: http.StatusServiceUnavailable, title: "Duo cannot be verified", alert: true,
			text:        "The connection to Duo could not be verified, so your second step cannot be checked.",
			details:     []string{"Nothing was changed. Tell the administrator (MFAProvider " + key + "): the server answering for Duo did not prove it is Duo."},
			actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Try again",
			retryAfter:  30 * time.Second,
		})
	case errors.As(err, &input) && input.Field == "username":
		d.metrics.countChallenge(key, challengeFailure)
		d.log.Warn("user id cannot be a Duo username", "policy", policyKey, "provider", key, "error", err.Error())
		d.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Account not supported", alert: true,
			text:    "Your account name cannot be used with Duo.",
			details: []string{"Tell the administrator: Duo usernames are 1 to 256 bytes of text without control characters."},
		})
	default:
		d.metrics.countChallenge(key, challengeUnavailable)
		d.log.Error("Duo refused or answered unexpectedly; failing closed whatever the failMode", "policy", policyKey, "rule", cr.rule.Name,
			"provider", key, "user", cr.user(), "failMode", string(failMode), "error", err.Error())
		details := []string{"Nothing was changed. Tell the administrator (MFAProvider " + key + ")."}
		if apiErr != nil && apiErr.Message != "" {
			details = append([]string{"Duo says: " + apiErr.Message}, details...)
		}
		d.renderMessage(w, cr, message{
			status: http.StatusServiceUnavailable, title: "Duo verification failed", alert: true,
			text:        "Duo did not accept the sign-in service's request, so your second step cannot be checked.",
			details:     details,
			actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Try again",
			retryAfter:  5 * time.Second,
		})
	}
}

// duoRateLimited answers Duo refusing requests because the application
// sent too many: a 429 page asking to come back when Duo says (or in a
// minute), never a session.
func (d *duoPages) duoRateLimited(w http.ResponseWriter, cr *challengeRequest, apiErr *duo.APIError, failMode v1alpha1.FailMode) {
	key := cr.providerKey()
	retry := apiErr.RetryAfter
	if retry <= 0 {
		retry = duoRetryAfterDefault
	}
	d.metrics.countChallenge(key, challengeDuoRateLimited)
	d.log.Warn("Duo is rate limiting this application; failing closed whatever the failMode",
		"policy", cr.policy.Namespace+"/"+cr.policy.Name, "rule", cr.rule.Name, "provider", key, "user", cr.user(),
		"failMode", string(failMode), "retryAfter", retry.String(), "error", apiErr.Error())
	d.renderMessage(w, cr, message{
		status: http.StatusTooManyRequests, title: "Duo is busy", alert: true,
		text:        "Duo is refusing requests right now, so your second step cannot be checked. Try again in " + waitText(retry) + ".",
		details:     []string{"Nothing was changed. If it keeps happening, tell the administrator (MFAProvider " + key + ")."},
		actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		actionLabel: "Try again",
		retryAfter:  retry,
	})
}

// waitText says how long to wait, in words: "a minute", "30 seconds",
// "5 minutes".
func waitText(d time.Duration) string {
	secs := int((d + time.Second - 1) / time.Second)
	switch {
	case secs <= 1:
		return "a second"
	case secs < 60:
		return strconv.Itoa(secs) + " seconds"
	case secs < 120:
		return "a minute"
	}
	return strconv.Itoa((secs+59)/60) + " minutes"
}
