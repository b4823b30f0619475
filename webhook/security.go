package webhook

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// The Security page: a user's own verification methods, after answering
// a second factor in this browser within stepUpWithin.
//
//	GET  /security/{namespace}/{policy}          the page (else the challenge, back here)
//	POST /security/{namespace}/{policy}/codes    new recovery codes; the old ones die
//	POST /security/{namespace}/{policy}/remove   remove a method, unless it is the last
//	POST /security/{namespace}/{policy}/signout  sign out of every other browser
//	POST /security/{namespace}/{policy}/signout-browser  sign out of one (security_browsers.go)
//
// Adding an authenticator is the enrolment page of a provider the user has
// not enrolled with (an authenticator app, a first security key or
// passkey), or the page adding another key to a WebAuthn provider, back
// here afterwards.
const (
	pageSecurity = "security.html"
	stepUpWithin = 5 * time.Minute
	// dateLayout is how the page writes an instant.
	dateLayout = "2 January 2006 15:04 UTC"
)

// securityView is what the Security page shows.
type securityView struct {
	Factors         []securityFactor
	Add             []choice
	Browsers        []securityBrowser
	RememberedUntil string
	CanRemove       bool
	CanSignOut      bool
	// CanSignOutBrowser: one browser can be signed out alone.
	CanSignOutBrowser bool
	Codes             []string
	Notice            string
	// this is this browser's id, when read before a revocation; else
	// showSecurity reads it.
	this string
}

type securityFactor struct {
	Label, Detail, Provider string
	Created, LastUsed       string
	CodesLeft               string
	// Enrolled: an enrolment (authenticator app, keys) this page can act on.
	Enrolled bool
	// Keys are a WebAuthn provider's keys; AddKeyURL registers another.
	Keys      []securityKey
	AddKeyURL string
}

func (c *challengePages) registerSecurity(mux *http.ServeMux) {
	mux.HandleFunc("GET /security/{namespace}/{policy}", c.handleSecurity)
	mux.HandleFunc("POST /security/{namespace}/{policy}/codes", c.post(c.steppedUp(c.handleNewCodes)))
	mux.HandleFunc("POST /security/{namespace}/{policy}/remove", c.post(c.steppedUp(c.handleRemove)))
	mux.HandleFunc("POST /security/{namespace}/{policy}/signout", c.post(c.steppedUp(c.handleSignOut)))
	mux.HandleFunc("POST /security/{namespace}/{policy}/signout-browser", c.post(c.steppedUp(c.handleSignOutBrowser)))
}

// securityURL is the Security page of the policy of r, absolute: the
// challenge's rd for the step-up. "" without --public-url.
func (c *challengePages) securityURL(r *http.Request) string {
	if c.publicURL == "" {
		return ""
	}
	return c.publicURL + "/security/" + url.PathEscape(r.PathValue("namespace")) + "/" + url.PathEscape(r.PathValue("policy"))
}

// isSecurityURL says whether rd leads back to a Security page.
func (c *challengePages) isSecurityURL(rd string) bool {
	return c.publicURL != "" && strings.HasPrefix(rd, c.publicURL+"/security/")
}

func (c *challengePages) handleSecurity(w http.ResponseWriter, r *http.Request) {
	self := c.securityURL(r)
	if self == "" {
		c.renderMessage(w, nil, message{status: http.StatusNotFound, title: "Security page not available", alert: true,
			text: "This sign-in service has no public address (--public-url), so it cannot offer the Security page."})
		return
	}
	cr, ok := c.prepare(w, r, url.Values{paramRedirect: {self}})
	if !ok {
		return
	}
	if _, ok := c.answeredRecently(r, cr); !ok {
		http.Redirect(w, r, c.pageURL(cr, "", ""), http.StatusSeeOther)
		return
	}
	c.showSecurity(w, r, cr, &securityView{}, "", http.StatusOK)
}

// answeredRecently is the provider of the policy's rule that the user
// answered in this browser within stepUpWithin.
func (c *challengePages) answeredRecently(r *http.Request, cr *challengeRequest) (string, bool) {
	keys := make([]string, 0, len(cr.choices))
	for _, bp := range cr.choices {
		keys = append(keys, bp.Key())
	}
	return c.sessions.AnsweredWithin(r, cr.snap.Keyring, cr.user(), keys, stepUpWithin, c.now())
}

// steppedUp wraps a Security form: without a recent answer, back through
// the challenge (nothing is changed).
func (c *challengePages) steppedUp(next func(http.ResponseWriter, *http.Request, *challengeRequest)) func(http.ResponseWriter, *http.Request, *challengeRequest) {
	return func(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
		if !c.isSecurityURL(cr.rd) {
			http.Error(w, "Not a Security page form.", http.StatusBadRequest)
			return
		}
		if _, ok := c.answeredRecently(r, cr); !ok {
			http.Redirect(w, r, c.pageURL(cr, "", ""), http.StatusSeeOther)
			return
		}
		next(w, r, cr)
	}
}

// showSecurity renders the page for cr's user.
func (c *challengePages) showSecurity(w http.ResponseWriter, r *http.Request, cr *challengeRequest, v *securityView, problem string, status int) {
	es, err := c.userEnrollments(r, cr)
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	methods := 0
	for i, bp := range cr.choices {
		f, add := c.securityFactor(cr, bp, es[i])
		if add != nil {
			v.Add = append(v.Add, *add)
			continue
		}
		methods++
		v.Factors = append(v.Factors, f)
	}
	now := c.now()
	v.CanRemove = methods > 1
	v.CanSignOut = c.revoker != nil
	_, v.CanSignOutBrowser = c.revoker.(browserRevoker)
	if v.this == "" {
		v.this = c.sessions.BrowserID(r, cr.snap.Keyring, cr.user(), now)
	}
	v.Browsers = rememberedBrowsers(es, v.this, now)
	if until := c.sessions.RememberedUntil(r, cr.snap.Keyring, cr.user(), now); !until.IsZero() {
		v.RememberedUntil = until.UTC().Format(dateLayout)
	}
	// The forms name a provider: the one chosen, else the rule's first
	// (a page offering several providers has none chosen).
	shown := *cr
	if shown.provider == nil && len(shown.choices) > 0 {
		shown.provider = shown.choices[0]
	}
	p := c.formPage(w, r, &shown)
	p.Title = "Security"
	p.Action = c.publicPath + "/security/" + url.PathEscape(cr.policy.Namespace) + "/" + url.PathEscape(cr.policy.Name)
	p.Error = problem
	p.Security = v
	c.render(w, status, pageSecurity, p, "")
}

// handleNewCodes replaces the recovery codes of the chosen provider.
func (c *challengePages) handleNewCodes(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	codes, hashes, err := totp.NewRecoveryCodes(10)
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	_, err = c.store.Update(r.Context(), cr.enrollment(), func(e *store.Enrollment) error {
		if !holdsCodes(cr.provider, e) {
			return totp.ErrNotEnrolled
		}
		e.RecoveryCodeHashes = hashes
		return nil
	})
	if errors.Is(err, totp.ErrNotEnrolled) {
		c.showSecurity(w, r, cr, &securityView{}, "There is no authenticator app or key to make recovery codes for.", http.StatusConflict)
		return
	}
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	c.auditEvent(r, cr, audit.EventRecoveryCodesRegenerated, audit.OutcomeSuccess, "self-service")
	c.showSecurity(w, r, cr, &securityView{Codes: codes, Notice: "New recovery codes made."}, "", http.StatusOK)
}

// handleRemove removes the chosen provider's authenticator app or keys,
// unless it is the user's last verification method.
func (c *challengePages) handleRemove(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	es, err := c.userEnrollments(r, cr)
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	others, removable := 0, false
	for i, bp := range cr.choices {
		switch {
		case bp == cr.provider:
			removable = holdsCodes(bp, es[i])
		case hasMethod(bp, es[i]):
			others++
		}
	}
	if !removable {
		c.showSecurity(w, r, cr, &securityView{}, "There is no authenticator app or key of this kind to remove.", http.StatusConflict)
		return
	}
	if others == 0 {
		c.showSecurity(w, r, cr, &securityView{}, "This is your only verification method: add another one before removing it.", http.StatusConflict)
		return
	}
	if err := c.removeMethod(r, cr); err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	c.auditEvent(r, cr, audit.EventFactorRemoved, audit.OutcomeSuccess, "self-service")
	c.showSecurity(w, r, cr, &securityView{Notice: providerLabel(cr.provider) + " removed."}, "", http.StatusOK)
}

// handleSignOut revokes every session and remembered browser of the user
// issued before now, then seals this browser's cookies again, so that
// only this one stays signed in.
func (c *challengePages) handleSignOut(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	if c.revoker == nil {
		http.Error(w, "Signing out of other browsers is not available.", http.StatusNotImplemented)
		return
	}
	now := c.now()
	this := c.sessions.BrowserID(r, cr.snap.Keyring, cr.user(), now)
	if err := c.revoker.Revoke(r.Context(), cr.user(), now); err != nil {
		c.log.Error("revoking the user's other browsers failed", "user", cr.user(), "error", err)
		c.showSecurity(w, r, cr, &securityView{}, "Your other browsers could not be signed out. Try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	c.sessions.Reissue(w, r, cr.snap.Keyring, cr.user(), now)
	c.auditEvent(r, cr, audit.EventRevocation, audit.OutcomeSuccess, "self-service: sign out of all other browsers")
	c.forgetOtherBrowsers(r, cr, this)
	c.showSecurity(w, r, cr, &securityView{Notice: "Every other browser is signed out. This one stays signed in.", this: this}, "", http.StatusOK)
}
