package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/passkey"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// The challenge pages, where a browser sent by the front door answers a
// second factor:
//
//	GET  /challenge/{namespace}/{policy}?rd=URL[&provider=NAME][&method=recovery]
//	     provider choice, TOTP enrolment (QR code) or TOTP code form
//	POST /challenge/{namespace}/{policy}/enroll    first code of a new enrolment
//	POST /challenge/{namespace}/{policy}/verify    TOTP code
//	POST /challenge/{namespace}/{policy}/recovery  recovery code
//	POST /challenge/{namespace}/{policy}/continue  after the recovery codes: back to rd
//
// Every POST is rate limited per client address and carries a CSRF token
// bound to the user and the browser. The user is identified exactly as
// /auth does; the rule asking for a second factor is the one /auth would
// apply to rd.

// Form and query parameters.
const (
	paramRedirect = "rd"
	paramProvider = "provider"
	paramMethod   = "method"
	paramCode     = "code"

	methodRecovery = "recovery"

	// maxFormBytes bounds a challenge form (a code, a token, rd).
	maxFormBytes = 16 << 10
)

// challengePages serves the challenge pages. What every page shares
// (rendering, addresses, the form token, sessions) is its pageKit; the
// Duo pages are their own handler with the same kit.
type challengePages struct {
	*pageKit
	config *config
	paths  pathMode
	// cookieDomain and publicURL are where rd may lead (safeRedirect).
	cookieDomain, publicURL string
	limiter                 *ratelimit.Limiter[netip.Addr]
	// totp verifies and enrols TOTP codes against store.
	totp  *totp.Authenticator
	store store.Store
	duo   *duoPages
	// revoker records a user's "sign out of all other browsers" (nil:
	// not offered).
	revoker RevocationStore
	// passkeys runs WebAuthn ceremonies against store; webAuthnDefaults
	// are what unset RP IDs and origins default to.
	passkeys         *passkey.Ceremonies
	webAuthnDefaults passkey.Defaults
}

// pageOptions are what the challenge pages are built from.
type pageOptions struct {
	config        *config
	proxies       *proxies
	paths         pathMode
	sessions      *session.Jar
	metrics       *metrics
	log           *slog.Logger
	now           func() time.Time
	publicURL     *url.URL
	cookieDomain  string
	insecure      bool
	store         store.Store
	lockout       totp.Lockout
	duoCallLimits duoCallLimits
	audit         *audit.Logger
	revoker       RevocationStore
}

func newChallengePages(o pageOptions) *challengePages {
	kit := &pageKit{log: o.log, now: o.now, metrics: o.metrics, proxies: o.proxies, sessions: o.sessions, audit: o.audit, remembered: o.store}
	publicHost, publicURL := "", ""
	if o.publicURL != nil {
		kit.publicPath, publicHost, publicURL = o.publicURL.Path, o.publicURL.Host, o.publicURL.String()
	}
	kit.csrf = newCSRFGuard(o.insecure, publicHost, o.now)
	c := &challengePages{
		pageKit:      kit,
		config:       o.config,
		paths:        o.paths,
		cookieDomain: o.cookieDomain,
		publicURL:    publicURL,
		limiter:      ratelimit.PerAddress(ratelimit.Default, o.now),
		store:        o.store,
		revoker:      o.revoker,
		totp: &totp.Authenticator{
			Store: &lockoutCounter{Store: o.store, now: o.now, counted: func(ctx context.Context, k store.Key, e *store.Enrollment) {
				lockedOut(ctx, o.metrics, kit.audit, k, e)
			}},
			Now:     o.now,
			Lockout: o.lockout,
		},
	}
	c.duo = newDuoPages(kit, c.prepare, o.store, o.duoCallLimits)
	c.passkeys = &passkey.Ceremonies{Store: o.store, Now: o.now}
	c.webAuthnDefaults = passkey.Defaults{CookieDomain: o.cookieDomain, PublicURL: o.publicURL}
	return c
}

// register adds the challenge pages to the server's router.
func (c *challengePages) register(mux *http.ServeMux) {
	d := c.duo
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathPush, c.post(d.duoOnly(d.handlePush)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathCheck, c.post(d.duoOnly(d.handleCheck)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathPasscode, c.post(d.duoOnly(d.handlePasscode)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathStatus, d.handleStatus)
	// A Duo form's address opened directly leads back to the page.
	mux.HandleFunc("GET /challenge/{namespace}/{policy}/duo/{action}", d.handleFormAddress)
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+webAuthnPathRegister, c.post(c.webAuthnOnly(c.handleWebAuthnRegister)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+webAuthnPathLogin, c.post(c.webAuthnOnly(c.handleWebAuthnLogin)))
	mux.HandleFunc("GET /challenge/{namespace}/{policy}/webauthn/{action}", c.backToPage)
	mux.HandleFunc("GET /challenge/{namespace}/{policy}", c.handleShow)
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/enroll", c.post(c.handleEnroll))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/verify", c.post(c.handleVerify))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/recovery", c.post(c.handleRecovery))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/continue", c.post(c.handleContinue))
	// A form's address opened directly (history, a bookmark, a reload
	// after the POST was answered) leads back to the page.
	mux.HandleFunc("GET /challenge/{namespace}/{policy}/{action}", c.handleFormAddress)
	c.registerSecurity(mux)
}

// handleShow serves the page for the request's state: the provider choice,
// or the chosen provider's page.
func (c *challengePages) handleShow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cr, ok := c.prepare(w, r, q)
	if !ok {
		return
	}
	if cr.provider == nil {
		c.showChoice(w, cr)
		return
	}
	switch cr.provider.Spec.Type {
	case v1alpha1.ProviderTOTP:
		c.showTOTP(w, r, cr, q.Get(paramMethod) == methodRecovery, "", http.StatusOK)
	case v1alpha1.ProviderDuo:
		c.duo.show(w, r, cr)
	case v1alpha1.ProviderWebAuthn:
		c.showWebAuthn(w, r, cr, q.Get(paramMethod), "", http.StatusOK)
	default:
		c.showUnavailable(w, cr)
	}
}

// showChoice lists the rule's providers.
func (c *challengePages) showChoice(w http.ResponseWriter, cr *challengeRequest) {
	p := &page{Title: "Choose how to verify", AppHost: cr.appHost, User: cr.userLabel()}
	for _, bp := range cr.choices {
		p.Choices = append(p.Choices, choice{URL: c.pageURL(cr, choiceName(cr.policy, bp), ""), Label: providerLabel(bp), Detail: providerDetail(bp)})
	}
	c.render(w, http.StatusOK, pageChoose, p, "")
}

func providerLabel(bp *policy.BundleProvider) string {
	switch bp.Spec.Type {
	case v1alpha1.ProviderTOTP:
		return "Authenticator app"
	case v1alpha1.ProviderDuo:
		return "Duo"
	case v1alpha1.ProviderWebAuthn:
		return "Security key or passkey"
	}
	return bp.Name
}

func providerDetail(bp *policy.BundleProvider) string {
	switch bp.Spec.Type {
	case v1alpha1.ProviderTOTP:
		return "A code from Google Authenticator or a compatible app (" + bp.Spec.TOTP.GetIssuer() + ")"
	case v1alpha1.ProviderDuo:
		return "A push notification or a passcode from Duo Mobile"
	case v1alpha1.ProviderWebAuthn:
		return "A security key, or a passkey on this device or your phone"
	}
	return ""
}

// showUnavailable answers for a provider type these pages cannot serve
// (one newer than this server).
func (c *challengePages) showUnavailable(w http.ResponseWriter, cr *challengeRequest) {
	m := message{
		status: http.StatusNotImplemented, title: providerLabel(cr.provider) + " is not available", alert: true,
		text:    "Verification with " + providerLabel(cr.provider) + " is not available on this sign-in page yet.",
		details: []string{"Choose another method if one is offered, or tell the administrator (MFAProvider " + cr.providerKey() + ")."},
	}
	if len(cr.choices) > 1 {
		m.actionURL, m.actionLabel = c.pageURL(cr, "", ""), "Choose another method"
	}
	c.renderMessage(w, cr, m)
}

// post wraps a form handler: rate limit per client address, body limit,
// form parsing, the request's policy, user and provider, then the CSRF
// check against that user.
func (c *challengePages) post(next func(http.ResponseWriter, *http.Request, *challengeRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, retry := c.limiter.Allow(c.proxies.clientIP(r)); !ok {
			c.log.Warn("challenge form rate limited", "client", c.proxies.clientIP(r).String(), "path", r.URL.Path)
			c.renderMessage(w, nil, message{
				status: http.StatusTooManyRequests, title: "Too many attempts", alert: true,
				text:       "Too many attempts came from your network. Wait a minute, then try again.",
				retryAfter: retry,
			})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.renderMessage(w, nil, message{
				status: http.StatusBadRequest, title: "Form not understood", alert: true,
				text: "The form could not be read. Go back, reload the page and try again.",
			})
			return
		}
		cr, ok := c.prepare(w, r, r.PostForm)
		if !ok {
			return
		}
		if err := c.csrf.check(r, cr.snap.Keyring, cr.user()); err != nil {
			c.log.Warn("challenge form refused", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "user", cr.user(), "reason", err.Error())
			text := "This form could not be accepted because it did not come from this page in this browser."
			if errors.Is(err, errCSRFExpired) {
				text = "This form was open too long and has expired."
			}
			c.renderMessage(w, cr, message{
				status: http.StatusForbidden, title: "Form expired or invalid", alert: true,
				text:      text,
				details:   []string{"Nothing was changed. Open the page again and retry."},
				actionURL: c.pageURL(cr, r.PostForm.Get(paramProvider), ""), actionLabel: "Open the page again",
			})
			return
		}
		if cr.provider == nil {
			c.renderMessage(w, cr, message{
				status: http.StatusBadRequest, title: "Choose a verification method", alert: true,
				text:      "The form did not say which verification method it is for.",
				actionURL: c.pageURL(cr, "", ""), actionLabel: "Choose a method",
			})
			return
		}
		next(w, c.withAudit(r, cr), cr)
	}
}

// handleContinue sends the browser back to rd after the recovery codes.
func (c *challengePages) handleContinue(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	http.Redirect(w, r, cr.rd, http.StatusSeeOther)
}

// handleFormAddress answers a GET of a form's address with the page.
func (c *challengePages) handleFormAddress(w http.ResponseWriter, r *http.Request) {
	switch r.PathValue("action") {
	case "enroll", "verify", "recovery", "continue":
	default:
		http.NotFound(w, r)
		return
	}
	c.backToPage(w, r)
}
