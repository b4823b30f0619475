package webhook

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// pageKit is what every challenge page uses, the TOTP and the Duo pages
// alike: rendering, the pages' addresses, the form token, issuing the
// session, counting and logging.
type pageKit struct {
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	proxies  *proxies
	csrf     *csrfGuard
	sessions *session.Jar
	// audit records the audit trail.
	audit *audit.Logger
	// publicPath prefixes the pages' paths (the public URL's path).
	publicPath string
	// remembered keeps the record of the users' remembered browsers (the
	// enrolment store), written when a browser is remembered.
	remembered store.Store
}

// pagePath is the path of a challenge page of the policy; suffix is "" or
// "/enroll", "/verify"...
func (k *pageKit) pagePath(p *policy.CompiledPolicy, suffix string) string {
	return k.publicPath + "/challenge/" + url.PathEscape(p.Namespace) + "/" + url.PathEscape(p.Name) + suffix
}

// pageURL is the challenge page for cr with a provider and method chosen.
func (k *pageKit) pageURL(cr *challengeRequest, provider, method string) string {
	q := url.Values{paramRedirect: {cr.rd}}
	if provider != "" {
		q.Set(paramProvider, provider)
	}
	if method != "" {
		q.Set(paramMethod, method)
	}
	return k.pagePath(cr.policy, "") + "?" + q.Encode()
}

// backToPage answers a GET of a form's address (history, a bookmark, a
// reload after the POST was answered) with a redirect to the page.
func (k *pageKit) backToPage(w http.ResponseWriter, r *http.Request) {
	target := k.publicPath + "/challenge/" + url.PathEscape(r.PathValue("namespace")) + "/" + url.PathEscape(r.PathValue("policy"))
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// formPage is a page with a form of cr: its token, rd and provider.
func (k *pageKit) formPage(w http.ResponseWriter, r *http.Request, cr *challengeRequest) *page {
	p := &page{
		AppHost:  cr.appHost,
		User:     cr.userLabel(),
		CSRF:     k.csrf.token(w, r, cr.snap.Keyring, cr.user()),
		RD:       cr.rd,
		Provider: choiceName(cr.policy, cr.provider),
	}
	if len(cr.choices) > 1 {
		p.ChooseURL = k.pageURL(cr, "", "")
	}
	return p
}

// accepted issues the session after a second factor.
func (k *pageKit) accepted(w http.ResponseWriter, r *http.Request, cr *challengeRequest, how string) {
	k.issueSession(w, r, cr, session.Verified)
	k.metrics.countChallenge(cr.providerKey(), challengeSuccess)
	k.log.Info("second factor accepted", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "rule", cr.rule.Name,
		"provider", cr.providerKey(), "user", cr.user(), "with", how)
	event := audit.EventVerification
	switch how {
	case howEnrolment:
		event = audit.EventEnrollment
	case howRecoveryCode:
		event = audit.EventRecoveryCodeUse
	}
	k.auditEvent(r, cr, event, audit.OutcomeSuccess, how)
}

// issueSession sets the MFA session cookie (and the remembered-browser
// cookie, unless the rule says ignoreCookie or the mode is
// session.FailOpen) after cr's user answered cr's provider. Factors of
// other providers already in this user's cookies are kept.
func (k *pageKit) issueSession(w http.ResponseWriter, r *http.Request, cr *challengeRequest, mode session.Mode) {
	kr, id, prov := cr.snap.Keyring, cr.id, cr.provider
	if kr == nil || id == nil || id.User.ID == "" || prov == nil {
		key := ""
		if prov != nil {
			key = cr.providerKey()
		}
		k.log.Error("cannot issue an MFA session", "provider", key, "keyring", kr != nil, "identity", id != nil)
		return
	}
	providerKey := cr.providerKey()
	rememberFor, ignoreCookie := time.Duration(0), false
	if cr.rule != nil {
		rememberFor, ignoreCookie = cr.rule.RememberFor, cr.rule.IgnoreCookie
	}
	if rememberFor <= 0 {
		rememberFor = defaultRememberFor
	}
	// The cookies live as long as the longest rememberFor of the policy's
	// rules accepting this provider; each rule checks its own against the
	// time the factor was answered.
	lifetime := max(rememberFor, cr.entry.maxRemember[providerKey])
	remember := !ignoreCookie && mode == session.Verified
	u := session.User{ID: id.User.ID, AuthTime: id.AuthTime}
	f := session.Factor{Provider: providerKey, Multifactor: prov.Spec.MultifactorName(), Mode: mode, Method: cr.method}
	issued, err := k.sessions.IssueBrowser(w, r, kr, &u, f, k.now(), lifetime, remember)
	if err != nil {
		k.log.Error("encoding MFA session", "error", err)
	}
	if remember && err == nil {
		k.rememberBrowser(r, cr, issued)
	}
	p := cr.policy
	k.log.Info("MFA session issued", "user", id.User.ID, "policy", p.Namespace+"/"+p.Name, "provider", providerKey,
		"remembered", remember, "failOpen", mode == session.FailOpen)
}

// renderFailure answers an error of the store or the keyring: nothing was
// decided, the user may try again. The error is logged, never shown.
func (k *pageKit) renderFailure(w http.ResponseWriter, cr *challengeRequest, err error) {
	key := ""
	if cr.provider != nil {
		key = cr.providerKey()
	}
	if errors.Is(err, store.ErrInvalidUser) {
		k.log.Warn("challenge refused: user id cannot be stored", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "error", err)
		k.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Account not supported", alert: true,
			text:    "Your account name cannot be used for two-step verification.",
			details: []string{"Tell the administrator: user ids must be 1 to 1024 bytes of UTF-8."},
		})
		return
	}
	k.metrics.countChallenge(key, challengeUnavailable)
	k.log.Error("challenge failed; answered 503", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", key, "user", cr.user(), "error", err)
	k.renderMessage(w, cr, message{
		status: http.StatusServiceUnavailable, title: "Please try again", alert: true,
		text:        "Your verification could not be checked right now. Nothing was changed.",
		details:     []string{"Wait a few seconds, then try again."},
		actionURL:   k.pageURL(cr, providerName(cr), ""),
		actionLabel: "Try again",
		retryAfter:  5 * time.Second,
	})
}
