package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Duo Security as a second factor, through Duo's Auth API v2:
//
//	GET  /challenge/{namespace}/{policy}?rd=URL&provider=NAME
//	     preauth decides: the user's ways to answer (a push to each device
//	     able to take one, a passcode), Duo's bypass, Duo's refusal, or
//	     Duo's enrolment portal
//	POST /challenge/{namespace}/{policy}/duo/push      send a push (async), show the waiting page
//	POST /challenge/{namespace}/{policy}/duo/status    JSON for the waiting page's script: {"state":"waiting"|"done"}
//	POST /challenge/{namespace}/{policy}/duo/check     the push's outcome: session and back to rd, or why not
//	POST /challenge/{namespace}/{policy}/duo/passcode  a passcode
//
// The Duo username is the user's id as the policy's identity source gives
// it (user.id: the identity header's value, or the JWT's subject claim),
// the same key the user's TOTP enrolment is stored under. Duo accounts
// must use that name (or a Duo username alias of it).
//
// A push is sent with async=1, the client's IP address (ipaddr) and a
// pushinfo naming the app's host and the MFAPolicy, so the user sees in
// Duo Mobile what the request is for. Its transaction ID never reaches the
// browser in clear: it is sealed with the keyring (AES-GCM), bound to the
// user, the provider, the policy and this browser's CSRF value, and
// expires, so nobody can poll or complete a push of another user, another
// browser or another policy; once it issued a session it is refused (see
// duoPages.used). The waiting page polls the status endpoint with a small
// script; without scripts its "Continue" button asks once.
//
// Outcomes and what apps are told (X-MFA-Multifactor, the assertion's
// multifactor and amr claims):
//   - a push or passcode Duo accepts: a session like TOTP's, claiming duo;
//   - Duo's bypass (preauth "allow", or an answer with status "bypass"):
//     the user passes, as Duo decided, but no factor was used, so the
//     session is marked like a fail-open one (SessionFailOpen): it
//     satisfies the rule for this browser session, is never remembered
//     and never claims duo (the header is empty); the decision log says
//     "bypassed by Duo";
//   - Duo unreachable (duo.IsUnreachable) with failMode open: the same
//     unclaimed session, logged at WARN with the policy, rule, provider and
//     user; with failMode closed (the default) a 503 page asks to try again;
//   - any other failure (Duo refusing the request, an answer this server
//     does not understand, a provider it cannot build a client for) fails
//     closed, whatever the fail mode.

// Duo form addresses (after /challenge/{namespace}/{policy}), fields and
// limits.
const (
	duoPathPush     = "/duo/push"
	duoPathStatus   = "/duo/status"
	duoPathCheck    = "/duo/check"
	duoPathPasscode = "/duo/passcode"

	paramDevice      = "device"
	paramDeviceLabel = "device_label"
	paramPasscode    = "passcode"
	paramTx          = "tx"

	// duoTxTTL is how long a sealed push can be polled and completed; Duo
	// itself times a push out after about a minute.
	duoTxTTL = 5 * time.Minute
	// duoTxVersion is the format of the sealed push.
	duoTxVersion = 1
	// maxDeviceLabel bounds the device name carried by the push form.
	maxDeviceLabel = 100
	// maxTxToken bounds the sealed push read from a form.
	maxTxToken = 1024
	// usedTxCacheSize bounds the pushes remembered as used: far more than
	// can be approved within duoTxTTL at DuoPushRateLimit.
	usedTxCacheSize = 10000
)

// Results of Duo challenges, the `result` label of mfa_challenges_total,
// besides the shared ones.
const (
	challengeBypass      = "bypass"
	challengeFailOpen    = "fail_open"
	challengeFraud       = "fraud"
	challengeRateLimited = "rate_limited"
)

// DuoPushRateLimit bounds the pushes one user may start: 3 a minute, in
// bursts of 3. Each push buzzes the user's phone; more would only be
// "push fatigue".
var DuoPushRateLimit = RateLimit{PerMinute: 3, Burst: 3, MaxClients: 10000}

// duoPollRateLimit bounds the waiting page's status requests per client
// address: one every 2 seconds per open page, with room for a few pages.
var duoPollRateLimit = RateLimit{PerMinute: 120, Burst: 30, MaxClients: 10000}

// Templates of the Duo pages (listed in mustParseTemplates).
const (
	pageDuo       = "duo.html"
	pageDuoPush   = "duo_push.html"
	pageDuoEnroll = "duo_enroll.html"
)

var duoTemplateNames = []string{pageDuo, pageDuoPush, pageDuoEnroll}

// duoView is what the Duo templates read, beyond the shared page.
type duoView struct {
	// Options page.
	Devices        []duoDeviceView
	Passcode       bool
	PushAction     string
	PasscodeAction string
	// Waiting page.
	DeviceLabel  string
	Tx           string
	CheckAction  string
	StatusAction string
	PageURL      string
	Notice       string
	// Enrolment page.
	StatusMsg string
	EnrollURL string
	RetryURL  string
}

type duoDeviceView struct {
	ID    string
	Label string
}

// duoPages serves the Duo challenge.
type duoPages struct {
	c *challengePages
	// clients are the Duo clients of the providers in force, rebuilt when
	// a provider's host or credentials change.
	clients duoClients
	// pushes limits pushes per user; polls limits status requests per
	// client address.
	pushes *rateLimiter
	polls  *rateLimiter
	// used holds the pushes that issued a session, so that a sealed push
	// issues one session only (a form sent again with the browser's back
	// button after a sign-out gets nothing). It is per replica: another
	// replica still accepts it until it expires, for the same user in the
	// same browser only.
	usedMu sync.Mutex
	used   *lru[string, struct{}]
}

func newDuoPages(c *challengePages) *duoPages {
	return &duoPages{
		c:       c,
		clients: duoClients{m: map[string]*duoClientEntry{}},
		pushes:  newRateLimiter(DuoPushRateLimit, c.s.now),
		polls:   newRateLimiter(duoPollRateLimit, c.s.now),
		used:    newLRU[string, struct{}](usedTxCacheSize),
	}
}

// register adds the Duo forms to the router.
func (d *duoPages) register(mux *http.ServeMux) {
	c := d.c
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathPush, c.post(d.duoOnly(d.handlePush)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathCheck, c.post(d.duoOnly(d.handleCheck)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathPasscode, c.post(d.duoOnly(d.handlePasscode)))
	mux.HandleFunc("POST /challenge/{namespace}/{policy}"+duoPathStatus, d.handleStatus)
	// A form's address opened directly leads back to the page.
	mux.HandleFunc("GET /challenge/{namespace}/{policy}/duo/{action}", d.handleFormAddress)
}

// duoOnly refuses a form naming a provider that is not a Duo one.
func (d *duoPages) duoOnly(next func(http.ResponseWriter, *http.Request, *challengeRequest)) func(http.ResponseWriter, *http.Request, *challengeRequest) {
	return func(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
		if cr.provider.Spec.Type != v1alpha1.ProviderDuo || cr.provider.Spec.Duo == nil {
			d.c.renderMessage(w, cr, message{
				status: http.StatusBadRequest, title: "Wrong verification method", alert: true,
				text:      "This form is for Duo, but it names another verification method.",
				actionURL: d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), actionLabel: "Open the page again",
			})
			return
		}
		next(w, r, cr)
	}
}

// show is the Duo page of a GET: what preauth says.
func (d *duoPages) show(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	d.showOptions(w, r, cr, "", http.StatusOK)
}

// showOptions asks Duo about the user (preauth) and answers accordingly;
// problem, when set, is shown above the options with status.
func (d *duoPages) showOptions(w http.ResponseWriter, r *http.Request, cr *challengeRequest, problem string, status int) {
	client, ok := d.client(w, cr)
	if !ok {
		return
	}
	pre, err := client.Preauth(r.Context(), cr.user(), d.ipaddr(r))
	if err != nil {
		d.failed(w, r, cr, err)
		return
	}
	switch pre.Result {
	case duo.PreauthAllow:
		d.bypassed(w, r, cr, "preauth", pre.StatusMsg)
	case duo.PreauthDeny:
		d.c.s.countChallenge(cr.providerKey(), challengeFailure)
		d.logf(cr, "second factor refused by Duo", "stage", "preauth", "duoStatus", pre.StatusMsg)
		d.c.renderMessage(w, cr, message{
			status: http.StatusForbidden, title: "Access denied by Duo", alert: true,
			text:    duoText(pre.StatusMsg, "Duo does not allow your account to sign in."),
			details: []string{"If you think this is a mistake, contact your help desk."},
		})
	case duo.PreauthEnroll:
		d.showEnroll(w, r, cr, pre)
	default:
		d.renderOptions(w, r, cr, pre, problem, status)
	}
}

// renderOptions shows the ways the user can answer: a push to each device
// able to take one and a passcode, as far as the provider's factors allow.
func (d *duoPages) renderOptions(w http.ResponseWriter, r *http.Request, cr *challengeRequest, pre *duo.PreauthResult, problem string, status int) {
	factors := cr.provider.Spec.Duo.GetFactors()
	v := &duoView{
		PushAction:     d.c.pagePath(cr.policy, duoPathPush),
		PasscodeAction: d.c.pagePath(cr.policy, duoPathPasscode),
		Passcode:       slices.Contains(factors, v1alpha1.DuoFactorPasscode),
	}
	if slices.Contains(factors, v1alpha1.DuoFactorPush) {
		for _, dev := range pre.Devices {
			if dev.Can(duo.CapabilityPush) {
				v.Devices = append(v.Devices, duoDeviceView{ID: dev.ID, Label: dev.Label()})
			}
		}
	}
	if len(v.Devices) == 0 && !v.Passcode {
		d.c.s.countChallenge(cr.providerKey(), challengeFailure)
		d.logf(cr, "no Duo device of the user can answer the provider's factors", "factors", fmt.Sprint(factors))
		m := message{
			status: http.StatusForbidden, title: "No Duo device can answer", alert: true,
			text:    "None of your Duo devices can answer a push, the only Duo method offered for " + hostOrApp(cr.appHost) + ".",
			details: []string{"Add a smartphone with Duo Mobile to your Duo account, or contact your help desk."},
		}
		if len(cr.choices) > 1 {
			m.actionURL, m.actionLabel = d.c.pageURL(cr, "", ""), "Choose another method"
		}
		d.c.renderMessage(w, cr, m)
		return
	}
	p := d.c.formPage(w, r, cr)
	p.Title = "Verify with Duo"
	p.Error = problem
	p.Duo = v
	d.c.render(w, status, pageDuo, p, originOf(cr.rd))
}

// showEnroll sends a user without a Duo device to Duo's enrolment portal.
func (d *duoPages) showEnroll(w http.ResponseWriter, r *http.Request, cr *challengeRequest, pre *duo.PreauthResult) {
	d.logf(cr, "Duo asks the user to enrol", "duoStatus", pre.StatusMsg)
	p := d.c.formPage(w, r, cr)
	p.Title = "Set up Duo"
	p.Duo = &duoView{
		StatusMsg: duoText(pre.StatusMsg, "Your account has no Duo device yet."),
		RetryURL:  d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
	}
	// Only Duo's own https portal is linked.
	if u, err := url.Parse(pre.EnrollPortalURL); err == nil && u.Scheme == "https" && u.Host != "" {
		p.Duo.EnrollURL = u.String()
	}
	d.c.render(w, http.StatusOK, pageDuoEnroll, p, "")
}

// handlePush sends a push to the chosen device and shows the waiting page.
func (d *duoPages) handlePush(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	if !slices.Contains(cr.provider.Spec.Duo.GetFactors(), v1alpha1.DuoFactorPush) {
		d.factorNotOffered(w, cr, "a push")
		return
	}
	if ok, retry := d.pushes.allow(userRateKey(cr.user())); !ok {
		d.c.s.countChallenge(cr.providerKey(), challengeRateLimited)
		d.c.s.log.Warn("Duo push rate limited", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(), "user", cr.user())
		d.c.renderMessage(w, cr, message{
			status: http.StatusTooManyRequests, title: "Too many pushes", alert: true,
			text:        "You asked for several pushes in a short time. Wait a minute before asking for another one.",
			details:     []string{"If a push you did not ask for reaches your phone, deny it and report it."},
			actionURL:   d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Back to Duo",
			retryAfter:  retry,
		})
		return
	}
	client, ok := d.client(w, cr)
	if !ok {
		return
	}
	device := strings.TrimSpace(r.PostForm.Get(paramDevice))
	if device == "" {
		device = duo.DeviceAuto
	}
	label := strings.TrimSpace(r.PostForm.Get(paramDeviceLabel))
	if label == "" || len(label) > maxDeviceLabel {
		label = "your phone"
	}
	info := url.Values{"policy": {cr.policy.Namespace + "/" + cr.policy.Name}}
	if cr.appHost != "" {
		info.Set("app", cr.appHost)
	}
	txid, err := client.Push(r.Context(), duo.PushRequest{
		Username: cr.user(),
		IPAddr:   d.ipaddr(r),
		Device:   device,
		PushInfo: info,
	})
	if err != nil {
		d.failed(w, r, cr, err)
		return
	}
	d.logf(cr, "Duo push sent", "device", device)
	token, err := d.sealTx(r, cr, duoTx{Txid: txid, Label: label})
	if err != nil {
		d.c.renderFailure(w, cr, err)
		return
	}
	d.renderWaiting(w, r, cr, token, label, "", http.StatusOK)
}

// renderWaiting shows the page that waits for the push's answer; its
// script polls the status endpoint and submits the form once Duo has an
// answer; without scripts, the form's button asks.
func (d *duoPages) renderWaiting(w http.ResponseWriter, r *http.Request, cr *challengeRequest, token, label, notice string, status int) {
	p := d.c.formPage(w, r, cr)
	p.Title = "Approve the push"
	p.Duo = &duoView{
		DeviceLabel:  label,
		Tx:           token,
		CheckAction:  d.c.pagePath(cr.policy, duoPathCheck),
		StatusAction: d.c.pagePath(cr.policy, duoPathStatus),
		PageURL:      d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		Notice:       notice,
	}
	d.c.render(&scriptPageWriter{ResponseWriter: w, p: p}, status, pageDuoPush, p, originOf(cr.rd))
}

// handleCheck asks Duo for the push's outcome.
func (d *duoPages) handleCheck(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	tx, token, ok := d.openTx(w, r, cr)
	if !ok {
		return
	}
	client, ok := d.client(w, cr)
	if !ok {
		return
	}
	res, err := client.AuthStatus(r.Context(), tx.Txid)
	switch {
	case err != nil:
		d.failed(w, r, cr, err)
	case res.Waiting():
		d.renderWaiting(w, r, cr, token, tx.Label, "Duo has no answer from your device yet. Approve the request in Duo Mobile, then continue.", http.StatusOK)
	case res.Allowed() && !d.claimTx(tx.Txid):
		d.txRefused(w, cr, errDuoTxUsed)
	case res.Allowed():
		d.allowed(w, r, cr, res, "push")
	default:
		d.refused(w, r, cr, res, "push")
	}
}

// duoStatusAnswer is the status endpoint's JSON.
type duoStatusAnswer struct {
	// State is waiting (poll again) or done (submit the form to see the
	// outcome).
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// handleStatus tells the waiting page's script whether Duo has an answer.
// It says nothing more: the outcome is acted on by the form's POST, so the
// session is issued by one handler only. It has its own per-address limit
// (polling is frequent) and answers errors in JSON; the script then
// submits the form, whose answer explains.
func (d *duoPages) handleStatus(w http.ResponseWriter, r *http.Request) {
	s := d.c.s
	if ok, retry := d.polls.allow(s.clientIP(r)); !ok {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		writeDuoStatus(w, http.StatusTooManyRequests, duoStatusAnswer{Error: "too many requests"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeDuoStatus(w, http.StatusBadRequest, duoStatusAnswer{Error: "form not understood"})
		return
	}
	// prepare answers with a page when the request cannot go on; the
	// script treats any answer but a 200 as "submit the form".
	cr, ok := d.c.prepare(w, r, r.PostForm)
	if !ok {
		return
	}
	if cr.provider == nil || cr.provider.Spec.Type != v1alpha1.ProviderDuo {
		writeDuoStatus(w, http.StatusBadRequest, duoStatusAnswer{Error: "not a Duo provider"})
		return
	}
	if err := s.checkCSRF(r, cr.user()); err != nil {
		writeDuoStatus(w, http.StatusForbidden, duoStatusAnswer{Error: "invalid form token"})
		return
	}
	tx, err := d.openTxToken(r, cr)
	if err != nil {
		writeDuoStatus(w, http.StatusForbidden, duoStatusAnswer{Error: "invalid or expired push"})
		return
	}
	client, err := d.clients.get(cr.provider)
	if err != nil || d.txUsed(tx.Txid) {
		writeDuoStatus(w, http.StatusOK, duoStatusAnswer{State: "done"})
		return
	}
	res, err := client.AuthStatus(r.Context(), tx.Txid)
	if err == nil && res.Waiting() {
		writeDuoStatus(w, http.StatusOK, duoStatusAnswer{State: "waiting"})
		return
	}
	// An answer, or an error the form's POST will meet and explain.
	writeDuoStatus(w, http.StatusOK, duoStatusAnswer{State: "done"})
}

func writeDuoStatus(w http.ResponseWriter, status int, a duoStatusAnswer) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

// handlePasscode checks a passcode with Duo.
func (d *duoPages) handlePasscode(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	if !slices.Contains(cr.provider.Spec.Duo.GetFactors(), v1alpha1.DuoFactorPasscode) {
		d.factorNotOffered(w, cr, "a passcode")
		return
	}
	code := strings.Join(strings.Fields(r.PostForm.Get(paramPasscode)), "")
	valid := len(code) >= 6 && len(code) <= 16
	for i := 0; valid && i < len(code); i++ {
		valid = code[i] >= '0' && code[i] <= '9'
	}
	if !valid {
		// Not a passcode: not sent to Duo, not an attempt.
		d.showOptions(w, r, cr, "Enter the passcode: digits only, as Duo Mobile, your token or your text message shows it.", http.StatusUnprocessableEntity)
		return
	}
	client, ok := d.client(w, cr)
	if !ok {
		return
	}
	res, err := client.Passcode(r.Context(), cr.user(), code, d.ipaddr(r))
	switch {
	case err != nil:
		d.failed(w, r, cr, err)
	case res.Allowed():
		d.allowed(w, r, cr, res, "passcode")
	default:
		d.c.s.countChallenge(cr.providerKey(), challengeFailure)
		d.logf(cr, "second factor refused by Duo", "with", "passcode", "duoStatus", res.Status)
		// preauth again: a user Duo has just locked out gets Duo's refusal.
		d.showOptions(w, r, cr, duoText(res.StatusMsg, "That passcode was not accepted.")+" Check it and try again, or send a push.", http.StatusUnprocessableEntity)
	}
}

// allowed issues the session after Duo accepted the second factor, or
// after Duo's bypass.
func (d *duoPages) allowed(w http.ResponseWriter, r *http.Request, cr *challengeRequest, res *duo.AuthResult, how string) {
	if res.Status == "bypass" {
		d.bypassed(w, r, cr, how, res.StatusMsg)
		return
	}
	d.c.accepted(w, r, cr, "Duo "+how)
	http.Redirect(w, r, cr.rd, http.StatusSeeOther)
}

// bypassed lets a user through whom Duo does not ask for a second factor
// (bypass status, or a policy allowing it). No factor was answered, so the
// session never claims duo and is not remembered: Duo is asked again in
// the next browser session.
func (d *duoPages) bypassed(w http.ResponseWriter, r *http.Request, cr *challengeRequest, stage, statusMsg string) {
	d.c.s.issueSession(w, r, cr.id, cr.policy, cr.rule, cr.providerKey(), SessionFailOpen)
	d.c.s.countChallenge(cr.providerKey(), challengeBypass)
	d.c.s.log.Info("second factor bypassed by Duo; the session does not claim duo", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
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
	d.c.s.countChallenge(cr.providerKey(), result)
	if result == challengeFraud {
		d.c.s.log.Warn("Duo push reported as fraud by the user", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
			"provider", cr.providerKey(), "user", cr.user(), "client", d.ipaddr(r))
	} else {
		d.logf(cr, "second factor refused by Duo", "with", how, "duoStatus", res.Status)
	}
	details := []string{}
	if res.StatusMsg != "" {
		details = append(details, "Duo says: "+res.StatusMsg)
	}
	d.c.renderMessage(w, cr, message{
		status: http.StatusForbidden, title: title, alert: true,
		text:        text,
		details:     append(details, "You can try again: send a new push or enter a passcode."),
		actionURL:   d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		actionLabel: "Try again",
	})
}

// failed answers an error of a call to Duo. Only an unreachable Duo
// follows the provider's fail mode; everything else fails closed.
func (d *duoPages) failed(w http.ResponseWriter, r *http.Request, cr *challengeRequest, err error) {
	s := d.c.s
	key := cr.providerKey()
	policyKey := cr.policy.Namespace + "/" + cr.policy.Name
	switch {
	case duo.IsUnreachable(err) && cr.provider.Spec.Duo.GetFailMode() == v1alpha1.FailOpen:
		s.issueSession(w, r, cr.id, cr.policy, cr.rule, key, SessionFailOpen)
		s.countChallenge(key, challengeFailOpen)
		s.log.Warn("DUO UNREACHABLE: failMode open lets the user through WITHOUT a second factor; the session does not claim duo",
			"policy", policyKey, "rule", cr.rule.Name, "provider", key, "user", cr.user(), "error", err.Error())
		http.Redirect(w, r, cr.rd, http.StatusSeeOther)
	case duo.IsUnreachable(err):
		s.countChallenge(key, challengeUnavailable)
		s.log.Error("Duo unreachable; failMode closed refuses", "policy", policyKey, "rule", cr.rule.Name, "provider", key,
			"user", cr.user(), "error", err.Error())
		d.c.renderMessage(w, cr, message{
			status: http.StatusServiceUnavailable, title: "Duo cannot be reached", alert: true,
			text:        "Duo cannot be reached right now, so your second step cannot be checked. Try again in a moment.",
			details:     []string{"Nothing was changed. If it keeps happening, tell the administrator (MFAProvider " + key + ")."},
			actionURL:   d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Try again",
			retryAfter:  5 * time.Second,
		})
	case errors.Is(err, context.Canceled):
		// The browser went away; nobody reads the answer.
		s.log.Debug("Duo call cancelled by the client", "policy", policyKey, "provider", key, "user", cr.user())
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		var input *duo.InputError
		if errors.As(err, &input) && input.Field == "username" {
			s.countChallenge(key, challengeFailure)
			s.log.Warn("user id cannot be a Duo username", "policy", policyKey, "provider", key, "error", err.Error())
			d.c.renderMessage(w, cr, message{
				status: http.StatusForbidden, title: "Account not supported", alert: true,
				text:    "Your account name cannot be used with Duo.",
				details: []string{"Tell the administrator: Duo usernames are 1 to 256 bytes of text without control characters."},
			})
			return
		}
		s.countChallenge(key, challengeUnavailable)
		s.log.Error("Duo refused or answered unexpectedly; failing closed", "policy", policyKey, "rule", cr.rule.Name,
			"provider", key, "user", cr.user(), "error", err.Error())
		details := []string{"Nothing was changed. Tell the administrator (MFAProvider " + key + ")."}
		var apiErr *duo.APIError
		if errors.As(err, &apiErr) && apiErr.Message != "" {
			details = append([]string{"Duo says: " + apiErr.Message}, details...)
		}
		d.c.renderMessage(w, cr, message{
			status: http.StatusServiceUnavailable, title: "Duo verification failed", alert: true,
			text:        "Duo did not accept the sign-in service's request, so your second step cannot be checked.",
			details:     details,
			actionURL:   d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Try again",
			retryAfter:  5 * time.Second,
		})
	}
}

// factorNotOffered refuses a form for a factor the provider does not allow.
func (d *duoPages) factorNotOffered(w http.ResponseWriter, cr *challengeRequest, what string) {
	d.c.renderMessage(w, cr, message{
		status: http.StatusBadRequest, title: "Method not offered", alert: true,
		text:      "Duo with " + what + " is not offered for " + hostOrApp(cr.appHost) + ".",
		actionURL: d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), actionLabel: "Back to Duo",
	})
}

// handleFormAddress answers a GET of a Duo form's address with the page.
func (d *duoPages) handleFormAddress(w http.ResponseWriter, r *http.Request) {
	switch "/duo/" + r.PathValue("action") {
	case duoPathPush, duoPathStatus, duoPathCheck, duoPathPasscode:
	default:
		http.NotFound(w, r)
		return
	}
	target := "/challenge/" + url.PathEscape(r.PathValue("namespace")) + "/" + url.PathEscape(r.PathValue("policy"))
	if d.c.s.publicURL != nil {
		target = d.c.s.publicURL.Path + target
	}
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// ipaddr is the client's address for Duo, "" when unknown.
func (d *duoPages) ipaddr(r *http.Request) string {
	ip := d.c.s.clientIP(r)
	if !ip.IsValid() || ip.IsUnspecified() {
		return ""
	}
	return ip.String()
}

// logf logs a Duo step at Info with the request's policy, provider and
// user.
func (d *duoPages) logf(cr *challengeRequest, msg string, args ...any) {
	d.c.s.log.Info(msg, append([]any{"policy", cr.policy.Namespace + "/" + cr.policy.Name, "provider", cr.providerKey(), "user", cr.user()}, args...)...)
}

// duoText is Duo's message, or def when Duo gave none.
func duoText(msg, def string) string {
	if strings.TrimSpace(msg) == "" {
		return def
	}
	return msg
}

// userRateKey maps a user to a key of the rate limiter, whose keys are
// addresses: the first 64 bits of the user's SHA-256 as an IPv6 /64 (the
// limiter groups IPv6 keys by /64).
func userRateKey(user string) netip.Addr {
	sum := sha256.Sum256([]byte("mfa-operator duo push\x00" + user))
	var a [16]byte
	copy(a[:8], sum[:8])
	return netip.AddrFrom16(a)
}

// The sealed push.

// duoTx is a push in flight, sealed into the waiting page's form.
type duoTx struct {
	Version int    `json:"v"`
	Txid    string `json:"t"`
	Label   string `json:"d,omitempty"`
	Expiry  int64  `json:"e"`
}

var errDuoTxInvalid = errors.New("the push is not valid for this user, browser and page")
var errDuoTxExpired = errors.New("the push has expired")
var errDuoTxUsed = errors.New("the push was already used")

// duoTxAAD binds a sealed push to the user, the provider, the policy and
// the browser (its CSRF value).
func duoTxAAD(cr *challengeRequest, browserID []byte) []byte {
	aad := "mfa-operator duo push\x00" + cr.user() + "\x00" + cr.providerKey() + "\x00" + cr.policy.Namespace + "/" + cr.policy.Name + "\x00"
	return append([]byte(aad), browserID...)
}

func (d *duoPages) sealTx(r *http.Request, cr *challengeRequest, tx duoTx) (string, error) {
	kr := d.c.s.keyring()
	browserID := d.c.s.csrfBrowserID(r)
	if kr == nil || browserID == nil {
		return "", errors.New("sealing a Duo push: no keyring or no CSRF cookie")
	}
	tx.Version = duoTxVersion
	tx.Expiry = d.c.s.now().Add(duoTxTTL).Unix()
	plain, err := json.Marshal(tx)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCSRF, plain, duoTxAAD(cr, browserID))), nil
}

// openTxToken opens the sealed push of the form.
func (d *duoPages) openTxToken(r *http.Request, cr *challengeRequest) (*duoTx, error) {
	token := r.PostForm.Get(paramTx)
	kr := d.c.s.keyring()
	browserID := d.c.s.csrfBrowserID(r)
	if token == "" || len(token) > maxTxToken || kr == nil || browserID == nil {
		return nil, errDuoTxInvalid
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, errDuoTxInvalid
	}
	plain, err := kr.Open(keyring.PurposeCSRF, sealed, duoTxAAD(cr, browserID))
	if err != nil {
		return nil, errDuoTxInvalid
	}
	var tx duoTx
	if err := json.Unmarshal(plain, &tx); err != nil || tx.Version != duoTxVersion || tx.Txid == "" {
		return nil, errDuoTxInvalid
	}
	if d.c.s.now().Unix() > tx.Expiry {
		return nil, errDuoTxExpired
	}
	return &tx, nil
}

// openTx opens the form's sealed push or answers with a page that offers a
// new one.
func (d *duoPages) openTx(w http.ResponseWriter, r *http.Request, cr *challengeRequest) (*duoTx, string, bool) {
	tx, err := d.openTxToken(r, cr)
	if err == nil && d.txUsed(tx.Txid) {
		err = errDuoTxUsed
	}
	if err == nil {
		return tx, r.PostForm.Get(paramTx), true
	}
	d.txRefused(w, cr, err)
	return nil, "", false
}

// txRefused answers a sealed push that cannot be used with a page that
// offers a new one.
func (d *duoPages) txRefused(w http.ResponseWriter, cr *challengeRequest, err error) {
	d.c.s.log.Warn("Duo push form refused", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(),
		"user", cr.user(), "reason", err.Error())
	text := "This page does not belong to a push of yours in this browser."
	switch {
	case errors.Is(err, errDuoTxExpired):
		text = "This push has expired."
	case errors.Is(err, errDuoTxUsed):
		text = "This push was already used to sign in."
	}
	d.c.renderMessage(w, cr, message{
		status: http.StatusForbidden, title: "Push expired or invalid", alert: true,
		text:      text,
		details:   []string{"Nothing was changed. Send a new push."},
		actionURL: d.c.pageURL(cr, choiceName(cr.policy, cr.provider), ""), actionLabel: "Back to Duo",
	})
}

// txUsed reports whether a push already issued a session.
func (d *duoPages) txUsed(txid string) bool {
	_, ok := d.used.Get(txid)
	return ok
}

// claimTx marks a push as having issued a session; false when it already
// had.
func (d *duoPages) claimTx(txid string) bool {
	d.usedMu.Lock()
	defer d.usedMu.Unlock()
	if _, ok := d.used.Get(txid); ok {
		return false
	}
	d.used.Add(txid, struct{}{})
	return true
}

// The Duo clients.

// duoClients holds one client per Duo provider, for as long as its host
// and credentials stay the same.
type duoClients struct {
	mu sync.Mutex
	m  map[string]*duoClientEntry
}

type duoClientEntry struct {
	apiHost string
	creds   policy.DuoCredentials
	client  duo.Client
}

// get returns the client of a Duo provider. A provider this server cannot
// build a client for is a configuration error, never an unreachable Duo:
// it fails closed. A host that is not a Duo API host is refused unless the
// provider trusts its own CA for it, as the controller requires.
func (dc *duoClients) get(bp *policy.BundleProvider) (duo.Client, error) {
	spec := bp.Spec.Duo
	if spec == nil || bp.Duo == nil {
		return nil, fmt.Errorf("MFAProvider %s has no Duo settings or credentials in the bundle", bp.Key())
	}
	if !duo.ValidAPIHost(spec.APIHost) && bp.Duo.CABundle == "" {
		return nil, fmt.Errorf("MFAProvider %s: spec.duo.apiHost %q is not a Duo API host and no caBundleRef is set", bp.Key(), spec.APIHost)
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if e := dc.m[bp.Key()]; e != nil && e.apiHost == spec.APIHost && e.creds == *bp.Duo {
		return e.client, nil
	}
	c, err := duo.New(spec.APIHost, *bp.Duo, duo.WithUserAgent("mfa-operator-webhook"))
	if err != nil {
		return nil, fmt.Errorf("MFAProvider %s: %w", bp.Key(), err)
	}
	dc.m[bp.Key()] = &duoClientEntry{apiHost: spec.APIHost, creds: *bp.Duo, client: c}
	return c, nil
}

// client returns the provider's client or answers with a page: a
// configuration this server cannot use fails closed.
func (d *duoPages) client(w http.ResponseWriter, cr *challengeRequest) (duo.Client, bool) {
	c, err := d.clients.get(cr.provider)
	if err == nil {
		return c, true
	}
	d.c.s.countChallenge(cr.providerKey(), challengeUnavailable)
	d.c.s.log.Error("Duo provider unusable; failing closed", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
		"provider", cr.providerKey(), "user", cr.user(), "error", err.Error())
	d.c.renderMessage(w, cr, message{
		status: http.StatusServiceUnavailable, title: "Duo is not available", alert: true,
		text:       "Duo verification is not set up correctly, so your second step cannot be checked.",
		details:    []string{"Tell the administrator (MFAProvider " + cr.providerKey() + ")."},
		retryAfter: 30 * time.Second,
	})
	return nil, false
}

// scriptPageWriter lets a page run its own inline script: the page's
// nonce (set by render) is added to the content security policy render
// writes, with fetches allowed to this origin only.
type scriptPageWriter struct {
	http.ResponseWriter
	p *page
}

func (w *scriptPageWriter) WriteHeader(status int) {
	h := w.Header()
	if csp := h.Get("Content-Security-Policy"); csp != "" && w.p.Nonce != "" {
		h.Set("Content-Security-Policy", csp+"; script-src 'nonce-"+w.p.Nonce+"'; connect-src 'self'")
	}
	w.ResponseWriter.WriteHeader(status)
}
