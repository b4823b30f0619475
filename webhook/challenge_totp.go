package webhook

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/totp"
	"golang.org/x/net/idna"
)

// qrPixels is the size of the QR code image; it is shown at half that
// size, so it stays sharp on high-density screens.
const qrPixels = 384

// How a factor was accepted, as logged and audited.
const (
	howEnrolment    = "enrolment"
	howRecoveryCode = "recovery code"
)

// maxRecoveryCodeInput bounds what is accepted in the recovery code field.
const maxRecoveryCodeInput = 40

// Challenge results, the `result` label of mfa_challenges_total.
const (
	challengeSuccess     = "success"
	challengeFailure     = "failure"
	challengeReused      = "reused"
	challengeLocked      = "locked"
	challengeUnavailable = "unavailable"
)

// showTOTP shows a user without an authenticator app the enrolment page,
// and an enrolled user the code form (or the recovery code form). problem,
// when set, is shown as the form's error with status.
func (c *challengePages) showTOTP(w http.ResponseWriter, r *http.Request, cr *challengeRequest, recovery bool, problem string, status int) {
	if cr.provider.Spec.Type == v1alpha1.ProviderWebAuthn {
		// The recovery codes of a WebAuthn provider share this form's handler.
		method := ""
		if recovery {
			method = methodRecovery
		}
		c.showWebAuthn(w, r, cr, method, problem, status)
		return
	}
	e, err := c.store.Get(r.Context(), cr.enrollment())
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	if problem == "" && c.now().Before(e.LockedUntil) {
		// A fresh page during a lockout says so before any code is typed.
		problem = lockoutNotice(e.LockedUntil, c.now())
	}
	if e.TOTP == nil {
		c.showEnroll(w, r, cr, problem, status)
		return
	}
	params := totp.ParamsFrom(cr.provider.Spec.TOTP)
	p := c.formPage(w, r, cr)
	p.Error = problem
	p.Issuer = params.Issuer
	if recovery {
		p.Title = "Use a recovery code"
		p.Action = c.pagePath(cr.policy, "/recovery")
		p.CodeURL = c.pageURL(cr, choiceName(cr.policy, cr.provider), "")
		p.RecoveryExample = "7k3m-q9tz-4h"
		c.render(w, status, pageRecovery, p, originOf(cr.rd))
		return
	}
	// The app keeps the parameters it was enrolled with.
	p.Title = "Enter your verification code"
	p.Action = c.pagePath(cr.policy, "/verify")
	p.Digits = e.TOTP.Digits
	p.PeriodSeconds = e.TOTP.PeriodSeconds
	p.RecoveryURL = c.pageURL(cr, choiceName(cr.policy, cr.provider), methodRecovery)
	c.render(w, status, pageVerify, p, originOf(cr.rd))
}

// showEnroll shows the QR code and key of the user's pending secret (the
// same one on every reload) and the form for the first code.
func (c *challengePages) showEnroll(w http.ResponseWriter, r *http.Request, cr *challengeRequest, problem string, status int) {
	params := totp.ParamsFrom(cr.provider.Spec.TOTP)
	// The pending secret is bound to this browser: another browser, even
	// with the same first factor, never sees it.
	browser := c.csrf.ensureCookie(w, r)
	uri, secret, err := c.authenticator(cr).BeginEnrollment(r.Context(), cr.enrollment(), browser, params)
	if errors.Is(err, totp.ErrAlreadyEnrolled) {
		// Confirmed meanwhile (another tab): the code form is next.
		http.Redirect(w, r, c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), http.StatusSeeOther)
		return
	}
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	png, err := totp.QRCodePNG(uri, qrPixels)
	if err != nil {
		png, err = totp.QRCodePNG(uri, 2*qrPixels)
	}
	if err != nil {
		c.renderFailure(w, cr, err)
		return
	}
	p := c.formPage(w, r, cr)
	p.Title = "Set up your authenticator app"
	p.Action = c.pagePath(cr.policy, "/enroll")
	p.Error = problem
	p.Issuer = params.Issuer
	p.AccountName = cr.user()
	p.Digits = params.Digits
	p.PeriodSeconds = int(params.Period / time.Second)
	p.Algorithm = string(params.Algorithm)
	p.QR = pngDataURI(png)
	// otpauth:// is built here from the provider's settings, percent-encoded.
	p.OTPAuthURL = template.URL(uri)
	p.KeyGroups = groupKey(secret)
	c.render(w, status, pageEnroll, p, originOf(cr.rd))
}

// handleEnroll checks the first code of a new enrolment; on success the
// session is issued and the recovery codes are shown, once.
func (c *challengePages) handleEnroll(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	code, ok := c.totpCodeInput(w, r, cr)
	if !ok {
		return
	}
	codes, err := c.authenticator(cr).ConfirmEnrollment(r.Context(), cr.enrollment(), c.csrf.browserID(r), code)
	switch {
	case err == nil:
	case errors.Is(err, totp.ErrAlreadyEnrolled), errors.Is(err, totp.ErrNoPending):
		http.Redirect(w, r, c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), http.StatusSeeOther)
		return
	default:
		c.codeRefused(w, r, cr, err, false)
		return
	}
	c.accepted(w, r, cr, howEnrolment)
	if c.isSecurityURL(cr.rd) {
		c.auditEvent(r, cr, audit.EventFactorAdded, audit.OutcomeSuccess, "self-service")
	}
	p := c.formPage(w, r, cr)
	p.Title = "Save your recovery codes"
	p.Action = c.pagePath(cr.policy, "/continue")
	p.Codes = codes
	p.CodesFile = textDataURI(recoveryCodesFile(cr, codes))
	p.CodesFileName = recoveryCodesFileName(cr.appHost, c.now())
	c.render(w, http.StatusOK, pageRecoveryCodes, p, originOf(cr.rd))
}

// handleVerify checks a code of the user's authenticator app.
func (c *challengePages) handleVerify(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	code, ok := c.totpCodeInput(w, r, cr)
	if !ok {
		return
	}
	c.verified(w, r, cr, c.authenticator(cr).VerifyCode(r.Context(), cr.enrollment(), code), false)
}

// handleRecovery checks a recovery code; each works once.
func (c *challengePages) handleRecovery(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	code := strings.TrimSpace(r.PostForm.Get(paramCode))
	if code == "" || len(code) > maxRecoveryCodeInput {
		c.showTOTP(w, r, cr, true, "Enter one of your recovery codes, for example 7k3m-q9tz-4h.", http.StatusUnprocessableEntity)
		return
	}
	c.verified(w, r, cr, c.authenticator(cr).VerifyRecoveryCode(r.Context(), cr.enrollment(), code), true)
}

// verified answers a code or recovery code check: back to rd with a
// session, to enrolment when there is nothing to verify, or the form again
// with the reason.
func (c *challengePages) verified(w http.ResponseWriter, r *http.Request, cr *challengeRequest, err error, recovery bool) {
	switch {
	case err == nil:
		what := "code"
		if recovery {
			what = howRecoveryCode
		}
		c.accepted(w, r, cr, what)
		http.Redirect(w, r, cr.rd, http.StatusSeeOther)
	case errors.Is(err, totp.ErrNotEnrolled):
		http.Redirect(w, r, c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), http.StatusSeeOther)
	default:
		c.codeRefused(w, r, cr, err, recovery)
	}
}

// totpCodeInput reads the code field: digits, spaces allowed in between.
// Anything else is answered with the form again and is not counted as an
// attempt, since it cannot be a code.
func (c *challengePages) totpCodeInput(w http.ResponseWriter, r *http.Request, cr *challengeRequest) (string, bool) {
	code := strings.Join(strings.Fields(r.PostForm.Get(paramCode)), "")
	valid := len(code) >= 6 && len(code) <= 8
	for i := 0; valid && i < len(code); i++ {
		valid = code[i] >= '0' && code[i] <= '9'
	}
	if !valid {
		c.showTOTP(w, r, cr, false, "Enter the code your authenticator app shows: digits only.", http.StatusUnprocessableEntity)
		return "", false
	}
	return code, true
}

// codeRefused answers a refused code with the form and a message that says
// what to do. While locked out, codes are not checked, so the message
// says nothing about the code itself.
func (c *challengePages) codeRefused(w http.ResponseWriter, r *http.Request, cr *challengeRequest, err error, recovery bool) {
	var locked *totp.LockedError
	var text, result string
	status := http.StatusUnprocessableEntity
	switch {
	case errors.As(err, &locked):
		text = lockoutNotice(locked.Until, c.now())
		result, status = challengeLocked, http.StatusTooManyRequests
		w.Header().Set("Retry-After", retryAfterSeconds(locked.Until.Sub(c.now())))
	case errors.Is(err, totp.ErrReusedCode):
		text = "That code was already used. Wait until your app shows a new code, then enter it."
		result = challengeReused
	case errors.Is(err, totp.ErrInvalidCode) && recovery:
		text = "That recovery code is not valid, or it was already used. Check it and try again."
		result = challengeFailure
	case errors.Is(err, totp.ErrInvalidCode):
		text = "That code is not right, or it has expired. Enter the code your app shows now. If it keeps failing, check that your phone sets its clock automatically."
		result = challengeFailure
	default:
		c.renderFailure(w, cr, err)
		return
	}
	c.metrics.countChallenge(cr.providerKey(), result)
	c.log.Info("second factor refused", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(),
		"user", cr.user(), "result", result, "recoveryCode", recovery)
	reason := result
	if recovery {
		reason += " (recovery code)"
	}
	c.auditEvent(r, cr, audit.EventVerificationFailure, audit.OutcomeFailure, reason)
	c.showTOTP(w, r, cr, recovery, text, status)
}

func providerName(cr *challengeRequest) string {
	if cr.provider == nil {
		return ""
	}
	return cr.provider.Name
}

func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

// authenticator is the TOTP authenticator with the request's keyring.
func (c *challengePages) authenticator(cr *challengeRequest) *totp.Authenticator {
	a := *c.totp
	a.Keyring = func() *keyring.Keyring { return cr.snap.Keyring }
	return &a
}

// recoveryCodesFile is the text of the downloadable copy of the codes.
func recoveryCodesFile(cr *challengeRequest, codes []string) string {
	var b strings.Builder
	b.WriteString("Recovery codes for " + hostOrApp(cr.appHost) + " (" + cr.userLabel() + ")\n")
	b.WriteString("Each code lets you sign in once if you lose your authenticator app.\n\n")
	for _, code := range codes {
		b.WriteString(code + "\n")
	}
	return b.String()
}

// recoveryCodesFileName is the download's file name, portable to every
// file system: recovery-codes-<host>-<yyyymmdd-hhmm>.txt in UTC, of
// [A-Za-z0-9._-] only. The port is left out (a colon is not allowed on
// Windows) and an internationalised host is written in its ASCII form.
func recoveryCodesFileName(appHost string, now time.Time) string {
	host := (&url.URL{Host: appHost}).Hostname()
	if ascii, err := idna.ToASCII(host); err == nil {
		host = ascii
	}
	host = strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '-'
	}, host), ".-_")
	name := "recovery-codes-"
	if host != "" {
		name += host + "-"
	}
	return name + now.UTC().Format("20060102-1504") + ".txt"
}
