package webhook

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/store"
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

// challengePages serves the challenge pages; it holds what they need
// beyond the server: the per-address limiter of form submissions.
type challengePages struct {
	s        *Server
	log      *slog.Logger
	now      func() time.Time
	sessions *session.Jar
	csrf     *csrfGuard
	limiter  *ratelimit.Limiter[netip.Addr]
	duo      *duoPages
}

// registerChallengeRoutes adds the challenge pages to the server's router.
func (s *Server) registerChallengeRoutes(mux *http.ServeMux) {
	publicHost := ""
	if s.publicURL != nil {
		publicHost = s.publicURL.Host
	}
	c := &challengePages{
		s:        s,
		log:      s.log,
		now:      s.now,
		sessions: s.sessions,
		csrf:     newCSRFGuard(s.opts.InsecureCookies, publicHost, s.now),
		limiter:  ratelimit.PerAddress(ratelimit.Default, s.now),
	}
	s.pages = c
	c.duo = newDuoPages(c)
	c.duo.register(mux)
	mux.HandleFunc("GET /challenge/{namespace}/{policy}", c.handleShow)
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/enroll", c.post(c.handleEnroll))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/verify", c.post(c.handleVerify))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/recovery", c.post(c.handleRecovery))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}/continue", c.post(c.handleContinue))
	// A form's address opened directly (history, a bookmark, a reload
	// after the POST was answered) leads back to the page.
	mux.HandleFunc("GET /challenge/{namespace}/{policy}/{action}", c.handleFormAddress)
}

// challengeRequest is one request to a challenge page, once the policy,
// the user, the rule and the provider are known.
type challengeRequest struct {
	// snap is the configuration the request is served with, read once;
	// entry is the policy in it.
	snap     *Snapshot
	entry    *policyEntry
	policy   *policy.CompiledPolicy
	id       *Identity
	rd       string // validated; where the browser goes afterwards
	appHost  string // the host of rd, named on every page
	rule     *policy.CompiledRule
	choices  []*policy.BundleProvider // the rule's providers in force, in order
	provider *policy.BundleProvider   // the one chosen; nil while choosing
}

func (cr *challengeRequest) providerKey() string {
	return cr.provider.Namespace + "/" + cr.provider.Name
}

// user is the user's id.
func (cr *challengeRequest) user() string { return cr.id.User.ID }

// enrollment is the key of the user's enrolment with the chosen provider.
func (cr *challengeRequest) enrollment() store.Key {
	return store.Key{Provider: cr.providerKey(), User: cr.id.User.ID, ProviderCreated: cr.provider.Created}
}

// userLabel is how the user is named on the pages.
func (cr *challengeRequest) userLabel() string {
	if cr == nil || cr.id == nil {
		return ""
	}
	if cr.id.User.Email != "" {
		return cr.id.User.Email
	}
	return cr.id.User.ID
}

// pagePath is the path of a challenge page of the policy; suffix is "" or
// "/enroll", "/verify"...
func (c *challengePages) pagePath(p *policy.CompiledPolicy, suffix string) string {
	prefix := ""
	if c.s.publicURL != nil {
		prefix = c.s.publicURL.Path
	}
	return prefix + "/challenge/" + url.PathEscape(p.Namespace) + "/" + url.PathEscape(p.Name) + suffix
}

// pageURL is the challenge page for cr with a provider and method chosen.
func (c *challengePages) pageURL(cr *challengeRequest, provider, method string) string {
	q := url.Values{paramRedirect: {cr.rd}}
	if provider != "" {
		q.Set(paramProvider, provider)
	}
	if method != "" {
		q.Set(paramMethod, method)
	}
	return c.pagePath(cr.policy, "") + "?" + q.Encode()
}

// prepare finds the policy, the user, the rule and the provider of a
// request, or answers it with a page saying why not. params are the query
// (GET) or the form (POST).
func (c *challengePages) prepare(w http.ResponseWriter, r *http.Request, params url.Values) (*challengeRequest, bool) {
	s := c.s
	snap := s.snapshot()
	if snap.Keyring == nil {
		c.renderMessage(w, nil, message{
			status: http.StatusServiceUnavailable, title: "Not ready yet", alert: true,
			text:       "The sign-in service is starting and has not loaded its configuration yet. Try again in a moment.",
			retryAfter: 5 * time.Second,
		})
		return nil, false
	}
	ns, name := r.PathValue("namespace"), r.PathValue("policy")
	e := snap.entry(ns, name)
	if e == nil {
		c.renderMessage(w, nil, message{
			status: http.StatusNotFound, title: "Sign-in page not found", alert: true,
			text:    "This two-step verification page is not configured.",
			details: []string{"No MFAPolicy " + ns + "/" + name + " is in force. If you followed a link from an app, tell its administrator."},
		})
		return nil, false
	}
	p := e.compiled
	cr := &challengeRequest{snap: snap, entry: e, policy: p}
	cr.rd = s.safeRedirect(params.Get(paramRedirect), p)
	rdURL, rdErr := url.Parse(cr.rd)
	if rdErr == nil {
		cr.appHost = rdURL.Host
	}

	id, err := s.identifyWith(r, e, nil)
	if err != nil || id == nil || id.User.ID == "" {
		if err != nil {
			s.log.Info("challenge identity refused", "policy", ns+"/"+name, "error", err)
		}
		c.renderMessage(w, cr, message{
			status: http.StatusUnauthorized, title: "Sign in first", alert: true,
			text:        "You are not signed in: the first sign-in step is missing or has expired, so the second step cannot start.",
			details:     []string{"Open the app again and sign in; you will be brought back here for the second step."},
			actionURL:   cr.rd,
			actionLabel: "Go to " + hostOrApp(cr.appHost),
		})
		return nil, false
	}
	cr.id = id

	if rdErr != nil || rdURL.Host == "" {
		// Only when the policy has no host and the server no public URL.
		c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Cannot continue", alert: true,
			text:    "The address to return to after the second step is missing.",
			details: []string{"Open the app again from its usual address."},
		})
		return nil, false
	}
	ri, err := s.requiredRule(r, e, id, rdURL)
	switch {
	case errors.Is(err, ErrDenied):
		c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Access denied", alert: true,
			text: "Your account is not allowed to open " + hostOrApp(cr.appHost) + ".",
		})
		return nil, false
	case err != nil:
		s.log.Error("challenge rule evaluation failed closed", "policy", p.Namespace+"/"+p.Name, "user", id.User.ID, "error", err)
		c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Cannot check access", alert: true,
			text:    "The access rules for " + hostOrApp(cr.appHost) + " could not be evaluated, so access is refused.",
			details: []string{"Try again later. If it keeps happening, tell the administrator (MFAPolicy " + p.Namespace + "/" + p.Name + ")."},
		})
		return nil, false
	case ri == nil:
		// No second factor is needed for rd (any more). A page rather than
		// a redirect: should /auth see the request differently (another
		// client address through a misconfigured proxy), an automatic
		// redirect would loop between the app and this page.
		c.renderMessage(w, cr, message{
			status: http.StatusOK, title: "No second step needed",
			text:        hostOrApp(cr.appHost) + " does not ask for a second step for this request.",
			actionURL:   cr.rd,
			actionLabel: "Continue to " + hostOrApp(cr.appHost),
		})
		return nil, false
	}
	rule := ri.rule
	cr.rule = rule
	for _, k := range ri.accepts.Providers {
		cr.choices = append(cr.choices, snap.Providers[k])
	}
	if len(cr.choices) == 0 {
		s.log.Error("no provider of the rule is in force", "policy", p.Namespace+"/"+p.Name, "rule", rule.Name, "providers", rule.Providers)
		c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "No verification method available", alert: true,
			text:    hostOrApp(cr.appHost) + " asks for a second step, but none of its verification methods is available.",
			details: []string{"Tell the administrator: rule " + rule.Name + " of MFAPolicy " + p.Namespace + "/" + p.Name + " names no MFAProvider that is in force."},
		})
		return nil, false
	}
	chosen := params.Get(paramProvider)
	if chosen == "" && len(cr.choices) == 1 {
		chosen = choiceName(p, cr.choices[0])
	}
	if chosen != "" {
		i := slices.IndexFunc(cr.choices, func(bp *policy.BundleProvider) bool { return choiceName(p, bp) == chosen })
		if i < 0 {
			c.renderMessage(w, cr, message{
				status: http.StatusBadRequest, title: "Unknown verification method", alert: true,
				text:      "The verification method " + chosen + " is not offered for " + hostOrApp(cr.appHost) + ".",
				actionURL: c.pageURL(cr, "", ""), actionLabel: "Choose a method",
			})
			return nil, false
		}
		cr.provider = cr.choices[i]
	}
	return cr, true
}

// choiceName names a provider in the page's provider parameter as the
// policy's rules name it: its name in the policy's namespace, else
// namespace/name.
func choiceName(p *policy.CompiledPolicy, bp *policy.BundleProvider) string {
	if bp.Namespace == p.Namespace {
		return bp.Name
	}
	return bp.Key()
}

func hostOrApp(host string) string {
	if host == "" {
		return "the app"
	}
	return host
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
	}
	return bp.Name
}

func providerDetail(bp *policy.BundleProvider) string {
	switch bp.Spec.Type {
	case v1alpha1.ProviderTOTP:
		return "A code from Google Authenticator or a compatible app (" + bp.Spec.TOTP.GetIssuer() + ")"
	case v1alpha1.ProviderDuo:
		return "A push notification or a passcode from Duo Mobile"
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
		if ok, retry := c.limiter.Allow(c.s.clientIP(r)); !ok {
			c.s.log.Warn("challenge form rate limited", "client", c.s.clientIP(r).String(), "path", r.URL.Path)
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
			c.s.log.Warn("challenge form refused", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "user", cr.user(), "reason", err.Error())
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
		next(w, r, cr)
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
	target := "/challenge/" + url.PathEscape(r.PathValue("namespace")) + "/" + url.PathEscape(r.PathValue("policy"))
	if c.s.publicURL != nil {
		target = c.s.publicURL.Path + target
	}
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
