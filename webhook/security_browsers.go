package webhook

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// Remembered browsers on the Security page. A remembered browser's cookie
// is the proof, checked without I/O; beside it, the enrolment of the
// provider answered keeps a short record of the browser (store.
// RememberedBrowser), written when the cookie is issued, never on /auth.
// Signing one browser out lists its id as revoked until its cookie
// expires (revocation.List.BrowserRevoked), on every replica.
//
//	POST /security/{namespace}/{policy}/signout-browser   browser=ID

// paramBrowser names the browser to sign out.
const paramBrowser = "browser"

// browserRevoker revokes one browser of a user alone
// (revocation.ClusterStore and revocation.FileStore).
type browserRevoker interface {
	RevokeBrowser(ctx context.Context, user, browser string, until time.Time) error
}

// securityBrowser is one remembered browser on the Security page.
type securityBrowser struct {
	ID                string
	Label, Detail     string
	Created, Until    string
	LastSeenIP        string
	This, CanSignOut  bool
	issued, expiresAt time.Time
}

// rememberBrowser records the browser just remembered in the enrolment of
// cr's provider. A failure is logged: the cookie counts all the same, and
// "sign out of all other browsers" still reaches the browser.
func (k *pageKit) rememberBrowser(r *http.Request, cr *challengeRequest, issued session.Issued) {
	if k.remembered == nil || issued.Browser == "" || issued.RememberedExpiry.IsZero() {
		return
	}
	now := k.now()
	b := store.RememberedBrowser{ID: issued.Browser, Created: now, Issued: now, Expires: issued.RememberedExpiry,
		UserAgent: r.UserAgent(), ClientIP: k.proxies.clientIP(r).String()}
	_, err := k.remembered.Update(r.Context(), cr.enrollment(), func(e *store.Enrollment) error {
		e.RememberBrowser(b, now)
		return nil
	})
	if err != nil {
		k.log.Error("recording the remembered browser failed; it is not listed on the Security page",
			"user", cr.user(), "provider", cr.providerKey(), "error", err)
	}
}

// rememberedBrowsers is the user's remembered browsers recorded with the
// enrolments es (one browser may be in several: the latest issuance
// wins), most recently issued first; this is this browser's id.
func rememberedBrowsers(es []*store.Enrollment, this string, now time.Time) []securityBrowser {
	byID := map[string]store.RememberedBrowser{}
	for _, e := range es {
		for _, b := range e.LiveBrowsers(now) {
			old, ok := byID[b.ID]
			if ok {
				if b.Issued.Before(old.Issued) {
					b, old = old, b
				}
				b.Created = minTime(b.Created, old.Created)
				if old.Expires.After(b.Expires) {
					b.Expires = old.Expires
				}
			}
			byID[b.ID] = b
		}
	}
	out := make([]securityBrowser, 0, len(byID))
	for _, b := range byID {
		out = append(out, securityBrowser{
			ID: b.ID, Label: browserLabel(b.UserAgent), Detail: b.UserAgent, LastSeenIP: b.ClientIP,
			Created: b.Created.UTC().Format(dateLayout), Until: b.Expires.UTC().Format(dateLayout),
			This: b.ID == this, CanSignOut: b.ID != this, issued: b.Issued, expiresAt: b.Expires,
		})
	}
	slices.SortFunc(out, func(x, y securityBrowser) int {
		if x.This != y.This {
			if x.This {
				return -1
			}
			return 1
		}
		if c := y.issued.Compare(x.issued); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// browserLabel names a browser from its User-Agent: "Firefox on Linux".
func browserLabel(ua string) string {
	name := "Unknown browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chromium/", "Chromium"},
		{"HeadlessChrome/", "Chrome (headless)"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.token) {
			name = b.name
			break
		}
	}
	for _, os := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, os.token) {
			return name + " on " + os.name
		}
	}
	return name
}

// userEnrollments reads the user's enrolment with each provider of the
// policy's rule, in the order of cr.choices.
func (c *challengePages) userEnrollments(r *http.Request, cr *challengeRequest) ([]*store.Enrollment, error) {
	out := make([]*store.Enrollment, 0, len(cr.choices))
	for _, bp := range cr.choices {
		e, err := c.store.Get(r.Context(), store.Key{Provider: bp.Key(), User: cr.user(), ProviderCreated: bp.Created})
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// forgetBrowsers drops the browsers for which drop is true from the
// user's records with every provider of the policy's rule.
func (c *challengePages) forgetBrowsers(r *http.Request, cr *challengeRequest, drop func(store.RememberedBrowser) bool) error {
	for _, bp := range cr.choices {
		k := store.Key{Provider: bp.Key(), User: cr.user(), ProviderCreated: bp.Created}
		e, err := c.store.Get(r.Context(), k)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(e.Browsers, drop) {
			continue // nothing to write
		}
		if _, err := c.store.Update(r.Context(), k, func(e *store.Enrollment) error {
			e.ForgetBrowsers(drop)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// handleSignOutBrowser signs one of the user's other remembered browsers
// out: its id is revoked until its cookie expires, and it leaves the list.
func (c *challengePages) handleSignOutBrowser(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	revoker, ok := c.revoker.(browserRevoker)
	if !ok {
		http.Error(w, "Signing out of one browser is not available.", http.StatusNotImplemented)
		return
	}
	es, err := c.userEnrollments(r, cr)
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	now := c.now()
	this := c.sessions.BrowserID(r, cr.snap.Keyring, cr.user(), now)
	id := r.PostForm.Get(paramBrowser)
	i := slices.IndexFunc(rememberedBrowsers(es, this, now), func(b securityBrowser) bool { return b.ID == id })
	if i < 0 {
		c.showSecurity(w, r, cr, &securityView{}, "That browser is no longer remembered: it was signed out already, or its time ran out.", http.StatusNotFound)
		return
	}
	target := rememberedBrowsers(es, this, now)[i]
	if target.This {
		c.showSecurity(w, r, cr, &securityView{this: this}, "That is the browser you are using. Sign out of another one, or clear this browser's cookies.", http.StatusBadRequest)
		return
	}
	if err := revoker.RevokeBrowser(r.Context(), cr.user(), id, target.expiresAt); err != nil {
		c.log.Error("revoking one browser of the user failed", "user", cr.user(), "error", err)
		c.showSecurity(w, r, cr, &securityView{this: this}, "That browser could not be signed out. Try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	c.auditEvent(r, cr, audit.EventBrowserRevocation, audit.OutcomeSuccess, "self-service: sign out of one browser ("+target.Label+", remembered since "+target.Created+")")
	if err := c.forgetBrowsers(r, cr, func(b store.RememberedBrowser) bool { return b.ID == id }); err != nil {
		// Signed out all the same; it stays listed until its time runs out.
		c.log.Error("dropping a signed-out browser from the list failed", "user", cr.user(), "error", err)
	}
	c.showSecurity(w, r, cr, &securityView{Notice: target.Label + " is signed out. Your other browsers stay signed in.", this: this}, "", http.StatusOK)
}

// forgetOtherBrowsers drops every browser but this one (its id read
// before the revocation) from the list, after "sign out of all other
// browsers". A failure is logged: they are signed out all the same.
func (c *challengePages) forgetOtherBrowsers(r *http.Request, cr *challengeRequest, this string) {
	err := c.forgetBrowsers(r, cr, func(b store.RememberedBrowser) bool { return b.ID != this })
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Error("dropping the signed-out browsers from the list failed", "user", cr.user(), "error", err)
	}
}
