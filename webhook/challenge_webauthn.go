package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/passkey"
	"github.com/mfa-operator/mfa-operator/internal/session"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// The WebAuthn pages (passkeys and security keys):
//
//	GET  /challenge/{namespace}/{policy}?provider=NAME[&method=add-key|recovery]
//	     registration (no key yet, or another one right after a sign-in)
//	     or sign-in with a key
//	POST /challenge/{namespace}/{policy}/webauthn/register  the new key
//	POST /challenge/{namespace}/{policy}/webauthn/login     a key's answer
//
// The page carries the ceremony's options; its script (with the page's
// nonce, from this server only) asks the browser and posts the answer in
// the form, with the form token. A ceremony is bound to the browser that
// began it, expires with the provider's timeout, and is finished once.
const (
	webAuthnPathRegister = "/webauthn/register"
	webAuthnPathLogin    = "/webauthn/login"

	methodAddKey = "add-key"

	paramCredential = "credential"
	paramKeyName    = "name"

	// maxKeyName is the longest key name kept, in characters.
	maxKeyName = 64
	// addKeyWithin: another key may be registered only this soon after a
	// sign-in with this provider in this browser session, so a first
	// factor alone never adds a key.
	addKeyWithin = 15 * time.Minute
)

// webAuthnView is what the WebAuthn page shows.
type webAuthnView struct {
	Lead    string
	Mode    string // create or get
	Options string // JSON for navigator.credentials
	Button  string
	KeyName string
	Keys    []string
	AddURL  string
}

// showWebAuthn shows the registration page to a user without a key (or
// adding one), else the sign-in page; problem, when set, is the error
// shown with status.
func (c *challengePages) showWebAuthn(w http.ResponseWriter, r *http.Request, cr *challengeRequest, method, problem string, status int) {
	rp, ok := c.webAuthnRP(w, cr)
	if !ok {
		return
	}
	if method == methodRecovery {
		c.showWebAuthnRecovery(w, r, cr, problem, status)
		return
	}
	e, err := c.store.Get(r.Context(), cr.enrollment())
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	adding := method == methodAddKey && e.HasCredentials()
	if adding && !c.freshlyVerified(r, cr) {
		adding = false
		if problem == "" {
			problem, status = "To register another key, first sign in with a key you registered.", http.StatusForbidden
		}
	}
	browser := c.csrf.ensureCookie(w, r)
	view := &webAuthnView{Mode: "get", Button: "Use my key"}
	p := c.formPage(w, r, cr)
	var options []byte
	if !e.HasCredentials() || adding {
		view.Mode, view.Button = "create", "Register my key"
		view.Lead = "Register a security key, or a passkey on this device or your phone. You will use it to confirm it is you."
		view.KeyName = fmt.Sprintf("Key %d", len(keyNames(e))+1)
		p.Title, p.Action = "Register a security key or passkey", c.pagePath(cr.policy, webAuthnPathRegister)
		if adding {
			p.Title = "Register another key"
			view.Keys = keyNames(e)
		}
		options, err = c.passkeys.BeginRegistration(r.Context(), rp, cr.enrollment(), browser)
	} else {
		view.Lead = "Use your security key or passkey: insert or tap your key, or unlock this device or your phone when the browser asks."
		view.Keys = keyNames(e)
		view.AddURL = c.pageURL(cr, choiceName(cr.policy, cr.provider), methodAddKey)
		p.Title, p.Action = "Use your security key or passkey", c.pagePath(cr.policy, webAuthnPathLogin)
		p.RecoveryURL = c.pageURL(cr, choiceName(cr.policy, cr.provider), methodRecovery)
		options, err = c.passkeys.BeginLogin(r.Context(), rp, cr.enrollment(), browser)
	}
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	view.Options = string(options)
	p.WebAuthn, p.Script, p.Error = view, true, problem
	c.render(w, status, pageWebAuthn, p, originOf(cr.rd))
}

// showWebAuthnRecovery is the recovery code form of a WebAuthn provider;
// the TOTP recovery handler checks the code.
func (c *challengePages) showWebAuthnRecovery(w http.ResponseWriter, r *http.Request, cr *challengeRequest, problem string, status int) {
	p := c.formPage(w, r, cr)
	p.Error = problem
	p.Title = "Use a recovery code"
	p.Action = c.pagePath(cr.policy, "/recovery")
	p.CodeURL = c.pageURL(cr, choiceName(cr.policy, cr.provider), "")
	p.RecoveryExample = "7k3m-q9tz-4h"
	c.render(w, status, pageRecovery, p, originOf(cr.rd))
}

// handleWebAuthnRegister stores a new key: the first one issues the
// session and shows the recovery codes, once; another one (right after a
// sign-in) leads back to rd.
func (c *challengePages) handleWebAuthnRegister(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	rp, ok := c.webAuthnRP(w, cr)
	if !ok {
		return
	}
	name := keyName(r.PostForm.Get(paramKeyName), c.now())
	res, err := c.passkeys.FinishRegistration(r.Context(), rp, cr.enrollment(), c.csrf.browserID(r),
		[]byte(r.PostForm.Get(paramCredential)), name, c.freshlyVerified(r, cr))
	if err != nil {
		c.webAuthnRefused(w, r, cr, err, methodAddKey)
		return
	}
	cr.method = amrMethod(&res.Credential)
	c.accepted(w, r, cr, "new WebAuthn key "+fmt.Sprintf("%q", name))
	if c.isSecurityURL(cr.rd) {
		c.auditEvent(r, cr, audit.EventFactorAdded, audit.OutcomeSuccess, "self-service: WebAuthn key")
	}
	if len(res.RecoveryCodes) == 0 {
		http.Redirect(w, r, cr.rd, http.StatusSeeOther)
		return
	}
	p := c.formPage(w, r, cr)
	p.Title = "Save your recovery codes"
	p.Notice = "Your key “" + name + "” is registered."
	p.Action = c.pagePath(cr.policy, "/continue")
	p.Codes = res.RecoveryCodes
	p.CodesFile = textDataURI(recoveryCodesFile(cr, res.RecoveryCodes))
	p.CodesFileName = recoveryCodesFileName(cr.appHost, c.now())
	c.render(w, http.StatusOK, pageRecoveryCodes, p, originOf(cr.rd))
}

// handleWebAuthnLogin checks a key's answer and issues the session.
func (c *challengePages) handleWebAuthnLogin(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	rp, ok := c.webAuthnRP(w, cr)
	if !ok {
		return
	}
	cred, err := c.passkeys.FinishLogin(r.Context(), rp, cr.enrollment(), c.csrf.browserID(r), []byte(r.PostForm.Get(paramCredential)))
	if errors.Is(err, store.ErrCounterRegressed) && cred != nil {
		c.log.Warn("WebAuthn key refused: its signature counter went backwards (a cloned key?)",
			"audit", true, "event", "webauthn_counter_regressed", "outcome", "refused",
			"user", cr.user(), "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(),
			"client_ip", c.proxies.clientIP(r).String(), "user_agent", r.UserAgent(),
			"key", cred.Name, "storedCounter", cred.SignCount)
	}
	if err != nil {
		c.webAuthnRefused(w, r, cr, err, "")
		return
	}
	cr.method = amrMethod(cred)
	c.accepted(w, r, cr, "WebAuthn key "+fmt.Sprintf("%q", cred.Name))
	http.Redirect(w, r, cr.rd, http.StatusSeeOther)
}

// webAuthnRefused answers a registration or sign-in that did not go
// through with the page again and what to do.
func (c *challengePages) webAuthnRefused(w http.ResponseWriter, r *http.Request, cr *challengeRequest, err error, method string) {
	var refused *passkey.RefusedError
	status, result := http.StatusUnprocessableEntity, challengeFailure
	var text string
	switch {
	case errors.Is(err, passkey.ErrBadResponse):
		text = "The browser refused, or sent no answer from your key. Try again."
	case errors.Is(err, store.ErrNoCeremony):
		text, result = "This request timed out or was already used. Try again.", challengeReused
	case errors.Is(err, store.ErrUnknownCredential):
		text = "This key is not registered. Use a key you registered here, or a recovery code."
	case errors.Is(err, store.ErrCredentialExists):
		text = "This key is already registered. Use another key to add one."
	case errors.Is(err, store.ErrTooManyCredentials):
		text = fmt.Sprintf("You have registered %d keys, the most allowed.", store.MaxWebAuthnCredentials)
	case errors.Is(err, passkey.ErrNotAllowedModel):
		text, status = "This kind of key is not allowed here. Use a key your organisation approved.", http.StatusForbidden
	case errors.Is(err, passkey.ErrAlreadyEnrolled):
		text, status = "To register another key, first sign in with a key you registered.", http.StatusForbidden
	case errors.Is(err, store.ErrCounterRegressed):
		text, status = "This key was refused: it looks copied (its use counter went backwards). Use another key or a recovery code, and tell your administrator.", http.StatusForbidden
	case errors.Is(err, passkey.ErrNotEnrolled):
		http.Redirect(w, r, c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), http.StatusSeeOther)
		return
	case errors.As(err, &refused):
		text = "Your key's answer was not accepted: it may be for another site, or it took too long. Try again."
	default:
		c.renderFailure(w, cr, err)
		return
	}
	c.metrics.countChallenge(cr.providerKey(), result)
	c.log.Info("second factor refused", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(),
		"user", cr.user(), "result", result, "reason", err.Error())
	c.showWebAuthn(w, r, cr, method, text, status)
}

// webAuthnRP is the provider's relying party for cr's policy; a provider
// that cannot make one is answered with a page that names the setting.
func (c *challengePages) webAuthnRP(w http.ResponseWriter, cr *challengeRequest) (*passkey.RelyingParty, bool) {
	d := c.webAuthnDefaults
	d.Hosts = cr.policy.Spec.Hosts
	rp, err := passkey.New(cr.provider.Spec.WebAuthn, d)
	if err == nil {
		return rp, true
	}
	c.log.Error("WebAuthn provider cannot run", "provider", cr.providerKey(), "error", err)
	c.renderMessage(w, cr, message{
		status: http.StatusServiceUnavailable, title: "Security keys are not available", alert: true,
		text:    "Security keys and passkeys are not set up correctly for this site.",
		details: []string{"Tell the administrator (MFAProvider " + cr.providerKey() + ": " + err.Error() + ")."},
	})
	return nil, false
}

// freshlyVerified says whether this browser session answered cr's
// provider within addKeyWithin.
func (c *challengePages) freshlyVerified(r *http.Request, cr *challengeRequest) bool {
	rule := session.Rule{Providers: []string{cr.providerKey()}, RememberFor: addKeyWithin, IgnoreCookie: true}
	_, ok := c.sessions.Check(r, cr.snap.Keyring, &rule, &session.User{ID: cr.user()}, c.now())
	return ok
}

// webAuthnOnly refuses a WebAuthn form for another kind of provider.
func (c *challengePages) webAuthnOnly(next func(http.ResponseWriter, *http.Request, *challengeRequest)) func(http.ResponseWriter, *http.Request, *challengeRequest) {
	return func(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
		if cr.provider.Spec.Type != v1alpha1.ProviderWebAuthn {
			c.renderMessage(w, cr, message{
				status: http.StatusBadRequest, title: "Wrong form", alert: true,
				text:      "This form is for security keys and passkeys only.",
				actionURL: c.pageURL(cr, "", ""), actionLabel: "Start again",
			})
			return
		}
		next(w, r, cr)
	}
}

// amrMethod is the RFC 8176 method of a key: hwk when it cannot leave its
// hardware, swk for a passkey that may be synced.
func amrMethod(c *store.WebAuthnCredential) string {
	if passkey.HardwareBound(c) {
		return "hwk"
	}
	return "swk"
}

func keyNames(e *store.Enrollment) []string {
	if e.WebAuthn == nil {
		return nil
	}
	names := make([]string, 0, len(e.WebAuthn.Credentials))
	for _, c := range e.WebAuthn.Credentials {
		names = append(names, c.Name)
	}
	return names
}

// keyName is the name typed for a key: printable, at most maxKeyName
// characters; a date when none was typed.
func keyName(typed string, now time.Time) string {
	name := strings.Join(strings.FieldsFunc(typed, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if !utf8.ValidString(name) {
		name = ""
	}
	if utf8.RuneCountInString(name) > maxKeyName {
		name = string([]rune(name)[:maxKeyName])
	}
	if name == "" {
		name = "Key registered " + now.UTC().Format("2006-01-02")
	}
	return name
}
