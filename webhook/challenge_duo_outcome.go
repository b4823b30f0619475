package webhook

import (
	"net/http"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// allowed issues the session after Duo accepted the second factor, or
// after Duo's bypass.
func (d *duoPages) allowed(w http.ResponseWriter, r *http.Request, cr *challengeRequest, res *duo.AuthResult, how string) {
	if res.Status == "bypass" {
		d.bypassed(w, r, cr, how, res.StatusMsg)
		return
	}
	d.accepted(w, r, cr, "Duo "+how)
	http.Redirect(w, r, cr.rd, http.StatusSeeOther)
}

// bypassed lets a user through whom Duo does not ask for a second factor
// (bypass status, or a policy allowing it). No factor was answered, so the
// session never claims duo and is not remembered: Duo is asked again in
// the next browser session.
func (d *duoPages) bypassed(w http.ResponseWriter, r *http.Request, cr *challengeRequest, stage, statusMsg string) {
	d.issueSession(w, r, cr, session.FailOpen)
	d.metrics.countChallenge(cr.providerKey(), challengeBypass)
	d.log.Info("second factor bypassed by Duo; the session does not claim duo", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
		"rule", cr.rule.Name, "provider", cr.providerKey(), "user", cr.user(), "stage", stage, "duoStatus", statusMsg)
	http.Redirect(w, r, cr.rd, http.StatusSeeOther)
}

// refused explains a push Duo did not accept and offers another try.
func (d *duoPages) refused(w http.ResponseWriter, r *http.Request, cr *challengeRequest, res *duo.AuthResult, how string) {
	result := challengeFailure
	title, text := "Request denied", "The request was denied."
	switch res.Status {
	case "deny":
		title, text = "Request denied", "You denied the request in Duo Mobile, so you were not signed in."
	case "timeout":
		title, text = "Request timed out", "The request was not answered in time."
	case "fraud":
		result = challengeFraud
		title, text = "Request reported as fraud", "You reported the request as fraudulent. You were not signed in, and Duo has recorded the report."
	case "locked_out":
		title, text = "Account locked by Duo", "Duo has locked your account after too many attempts."
	}
	d.metrics.countChallenge(cr.providerKey(), result)
	d.auditEvent(r, cr, audit.EventVerificationFailure, audit.OutcomeFailure, "Duo "+how+": "+res.Status)
	if result == challengeFraud {
		d.log.Warn("Duo push reported as fraud by the user", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
			"provider", cr.providerKey(), "user", cr.user(), "client", d.ipaddr(r))
	} else {
		d.logf(cr, "second factor refused by Duo", "with", how, "duoStatus", res.Status)
	}
	details := []string{}
	if res.StatusMsg != "" {
		details = append(details, "Duo says: "+res.StatusMsg)
	}
	d.renderMessage(w, cr, message{
		status: http.StatusForbidden, title: title, alert: true,
		text:        text,
		details:     append(details, "You can try again: send a new push or enter a passcode."),
		actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		actionLabel: "Try again",
	})
}
