package webhook

import (
	"net/http"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/session"
)

// issueSession sets the MFA session cookie (and the remembered-browser
// cookie, unless the rule says ignoreCookie or the mode is
// session.FailOpen) after cr's user answered cr's provider. Factors of
// other providers already in this user's cookies are kept.
func (c *challengePages) issueSession(w http.ResponseWriter, r *http.Request, cr *challengeRequest, mode session.Mode) {
	kr, id, prov := cr.snap.Keyring, cr.id, cr.provider
	if kr == nil || id == nil || id.User.ID == "" || prov == nil {
		key := ""
		if prov != nil {
			key = cr.providerKey()
		}
		c.log.Error("cannot issue an MFA session", "provider", key, "keyring", kr != nil, "identity", id != nil)
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
	f := session.Factor{Provider: providerKey, Multifactor: prov.Spec.MultifactorName(), Mode: mode}
	if err := c.sessions.Issue(w, r, kr, &u, f, c.now(), lifetime, remember); err != nil {
		c.log.Error("encoding MFA session", "error", err)
	}
	p := cr.policy
	c.log.Info("MFA session issued", "user", id.User.ID, "policy", p.Namespace+"/"+p.Name, "provider", providerKey,
		"remembered", remember, "failOpen", mode == session.FailOpen)
}
