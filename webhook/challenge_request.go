package webhook

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// challengeRequest is one request to a challenge page, once the policy,
// the user, the rule and the provider are known.
type challengeRequest struct {
	// snap is the configuration the request is served with, read once;
	// entry is the policy in it.
	snap     *snapshot
	entry    *policyEntry
	policy   *policy.CompiledPolicy
	id       *identity
	rd       string // validated; where the browser goes afterwards
	appHost  string // the host of rd, named on every page
	rule     *policy.CompiledRule
	choices  []*policy.BundleProvider // the rule's providers in force, in order
	provider *policy.BundleProvider   // the one chosen; nil while choosing
	// method is the RFC 8176 method of the factor answered, when the
	// provider type does not tell it (a WebAuthn key: hwk or swk).
	method string
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

// prepare finds the policy, the user, the rule and the provider of a
// request, or answers it with a page saying why not. params are the query
// (GET) or the form (POST).
func (c *challengePages) prepare(w http.ResponseWriter, r *http.Request, params url.Values) (*challengeRequest, bool) {
	snap := c.config.snapshot()
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
	cr.rd = safeRedirect(params.Get(paramRedirect), p, c.cookieDomain, c.publicURL, c.paths)
	rdURL, rdErr := url.Parse(cr.rd)
	if rdErr == nil {
		cr.appHost = rdURL.Host
	}

	id, err := e.identify(r.Context(), r, nil, c.proxies.fromTrustedProxy(r), nil)
	if e.firstFactor != nil && err != nil {
		c.firstFactorMissing(w, r, cr, err)
		return nil, false
	}
	if err != nil || id == nil || id.User.ID == "" {
		if err != nil {
			c.log.Info("challenge identity refused", "policy", ns+"/"+name, "error", err)
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
	ri, err := c.requiredRule(r, e, id, rdURL)
	switch {
	case errors.Is(err, errDenied):
		c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Access denied", alert: true,
			text: "Your account is not allowed to open " + hostOrApp(cr.appHost) + ".",
		})
		return nil, false
	case err != nil:
		c.log.Error("challenge rule evaluation failed closed", "policy", p.Namespace+"/"+p.Name, "user", id.User.ID, "error", err)
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
		c.log.Error("no provider of the rule is in force", "policy", p.Namespace+"/"+p.Name, "rule", rule.Name, "providers", rule.Providers)
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

// requiredRule judges the request the browser will be sent back to
// (original, from rd) as /auth would, and returns the RequireMFA rule that
// asks for a second factor. nil, nil: no second factor is needed;
// errDenied: a rule or the default denies; any other error: fail closed.
func (c *challengePages) requiredRule(r *http.Request, e *policyEntry, id *identity, original *url.URL) (*ruleInfo, error) {
	if id == nil {
		return nil, errDenied
	}
	var st authState
	if err := parseOriginalURL(original.String(), http.MethodGet, c.paths, &st.orig); err != nil {
		return nil, err
	}
	_, ip := c.proxies.clientAddr(r, peerAddr(r))
	buildRequest(r, e, &st.orig, ip, c.now(), &st.req)
	v, err := e.judge(&policy.Vars{User: &id.User, Request: &st.req})
	if err != nil {
		return nil, err
	}
	switch v.action {
	case v1alpha1.ActionRequireMFA:
		return v.info, nil
	case v1alpha1.ActionAllow:
		return nil, nil
	}
	return nil, errDenied
}
