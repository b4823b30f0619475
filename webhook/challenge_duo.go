package webhook

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/lru"
	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/store"
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
// browser or another policy. Once approved it issues one session only,
// whichever replica the form reaches: its use is recorded in the enrolment
// store before the session is issued (see claimTx). The waiting page polls
// the status endpoint with a small script; without scripts its "Continue"
// button asks once.
//
// Outcomes and what apps are told (X-MFA-Multifactor, the assertion's
// multifactor and amr claims):
//   - a push or passcode Duo accepts: a session like TOTP's, claiming duo;
//   - Duo's bypass (preauth "allow", or an answer with status "bypass"):
//     the user passes, as Duo decided, but no factor was used, so the
//     session is marked like a fail-open one (session.FailOpen): it
//     satisfies the rule for this browser session, is never remembered
//     and never claims duo (the header is empty); the decision log says
//     "bypassed by Duo";
//   - Duo unreachable (duo.IsUnreachable: no answer, or an HTTP 5xx) with
//     failMode open: the same unclaimed session, logged at WARN with the
//     policy, rule, provider and user; with failMode closed (the default)
//     a 503 page asks to try again;
//   - Duo rate limiting (HTTP 429): a 429 page with Duo's Retry-After,
//     whatever the fail mode;
//   - any other failure (Duo refusing the request, a peer at Duo's address
//     that fails TLS verification, an answer this server does not
//     understand, a provider it cannot build a client for) fails closed,
//     whatever the fail mode (see challenge_duo_failure.go).

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

	// maxDeviceLabel bounds the device name carried by the push form.
	maxDeviceLabel = 100
)

// Results of Duo challenges, the `result` label of mfa_challenges_total,
// besides the shared ones.
const (
	challengeBypass   = "bypass"
	challengeFailOpen = "fail_open"
	challengeFraud    = "fraud"
	// challengeRateLimited: this server refused to call Duo (too many
	// requests from the user or the client); challengeDuoRateLimited: Duo
	// refused the call (HTTP 429).
	challengeRateLimited    = "rate_limited"
	challengeDuoRateLimited = "duo_rate_limited"
)

// duoPushRateLimit bounds the pushes one user may start: 3 a minute, in
// bursts of 3. Each push buzzes the user's phone; more would only be
// "push fatigue".
var duoPushRateLimit = ratelimit.Limit{PerMinute: 3, Burst: 3, MaxClients: 10000}

// duoPollRateLimit bounds the waiting page's status requests per client
// address: one every 2 seconds per open page, with room for a few pages.
var duoPollRateLimit = ratelimit.Limit{PerMinute: 120, Burst: 30, MaxClients: 10000}

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

// duoPages serves the Duo challenge, with the pages' kit.
type duoPages struct {
	*pageKit
	// prepare resolves a request as every challenge page does (the
	// status endpoint answers in JSON, not through challengePages.post).
	prepare func(w http.ResponseWriter, r *http.Request, params url.Values) (*challengeRequest, bool)
	// clients are the Duo clients of the providers in force, rebuilt when
	// a provider's host or credentials change.
	clients *duo.Clients
	// calls limits the calls to Duo's preauth and auth per user and per
	// client address; pushes limits pushes per user; polls limits status
	// requests per client address.
	calls  *duoCallLimiter
	pushes *ratelimit.Limiter[duoUserKey]
	polls  *ratelimit.Limiter[netip.Addr]
	// store records the approved pushes that issued a session, for every
	// replica: the authority on whether a push is used (claimTx).
	store store.Store
	// used holds the pushes this replica saw issue a session or refused as
	// used, so that a form sent again here (the back button after a
	// sign-out) is refused without asking Duo or the store.
	used *lru.Cache[string, struct{}]
}

func newDuoPages(kit *pageKit, prepare func(http.ResponseWriter, *http.Request, url.Values) (*challengeRequest, bool), st store.Store, limits duoCallLimits) *duoPages {
	return &duoPages{
		pageKit: kit,
		prepare: prepare,
		clients: duo.NewClients(duo.WithUserAgent("mfa-operator-webhook")),
		calls:   newDuoCallLimiter(limits, kit.now),
		pushes:  ratelimit.New[duoUserKey](duoPushRateLimit, kit.now),
		polls:   ratelimit.PerAddress(duoPollRateLimit, kit.now),
		store:   st,
		used:    lru.New[string, struct{}](usedTxCacheSize),
	}
}

// duoOnly refuses a form naming a provider that is not a Duo one.
func (d *duoPages) duoOnly(next func(http.ResponseWriter, *http.Request, *challengeRequest)) func(http.ResponseWriter, *http.Request, *challengeRequest) {
	return func(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
		if cr.provider.Spec.Type != v1alpha1.ProviderDuo || cr.provider.Spec.Duo == nil {
			d.renderMessage(w, cr, message{
				status: http.StatusBadRequest, title: "Wrong verification method", alert: true,
				text:      "This form is for Duo, but it names another verification method.",
				actionURL: d.pageURL(cr, choiceName(cr.policy, cr.provider), ""), actionLabel: "Open the page again",
			})
			return
		}
		next(w, r, cr)
	}
}

// show is the Duo page of a GET: what preauth says.
func (d *duoPages) show(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	if !d.admitCall(w, r, cr, "preauth") {
		return
	}
	d.showOptions(w, r, cr, "", http.StatusOK)
}

// showOptions asks Duo about the user (preauth) and answers accordingly;
// problem, when set, is shown above the options with status. The caller
// has admitted the call (admitCall).
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
		d.metrics.countChallenge(cr.providerKey(), challengeFailure)
		d.logf(cr, "second factor refused by Duo", "stage", "preauth", "duoStatus", pre.StatusMsg)
		d.renderMessage(w, cr, message{
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
		PushAction:     d.pagePath(cr.policy, duoPathPush),
		PasscodeAction: d.pagePath(cr.policy, duoPathPasscode),
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
		d.metrics.countChallenge(cr.providerKey(), challengeFailure)
		d.logf(cr, "no Duo device of the user can answer the provider's factors", "factors", fmt.Sprint(factors))
		m := message{
			status: http.StatusForbidden, title: "No Duo device can answer", alert: true,
			text:    "None of your Duo devices can answer a push, the only Duo method offered for " + hostOrApp(cr.appHost) + ".",
			details: []string{"Add a smartphone with Duo Mobile to your Duo account, or contact your help desk."},
		}
		if len(cr.choices) > 1 {
			m.actionURL, m.actionLabel = d.pageURL(cr, "", ""), "Choose another method"
		}
		d.renderMessage(w, cr, m)
		return
	}
	p := d.formPage(w, r, cr)
	p.Title = "Verify with Duo"
	p.Error = problem
	p.Duo = v
	d.render(w, status, pageDuo, p, originOf(cr.rd))
}

// showEnroll sends a user without a Duo device to Duo's enrolment portal.
func (d *duoPages) showEnroll(w http.ResponseWriter, r *http.Request, cr *challengeRequest, pre *duo.PreauthResult) {
	d.logf(cr, "Duo asks the user to enrol", "duoStatus", pre.StatusMsg)
	p := d.formPage(w, r, cr)
	p.Title = "Set up Duo"
	p.Duo = &duoView{
		StatusMsg: duoText(pre.StatusMsg, "Your account has no Duo device yet."),
		RetryURL:  d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
	}
	// Only Duo's own https portal is linked.
	if u, err := url.Parse(pre.EnrollPortalURL); err == nil && u.Scheme == "https" && u.Host != "" {
		p.Duo.EnrollURL = u.String()
	}
	d.render(w, http.StatusOK, pageDuoEnroll, p, "")
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
		// Not a passcode: not sent to Duo, not an attempt; the page's
		// preauth is a call like any other.
		if !d.admitCall(w, r, cr, "preauth") {
			return
		}
		d.showOptions(w, r, cr, "Enter the passcode: digits only, as Duo Mobile, your token or your text message shows it.", http.StatusUnprocessableEntity)
		return
	}
	if !d.admitCall(w, r, cr, "passcode") {
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
		d.metrics.countChallenge(cr.providerKey(), challengeFailure)
		d.logf(cr, "second factor refused by Duo", "with", "passcode", "duoStatus", res.Status)
		// preauth again: a user Duo has just locked out gets Duo's refusal.
		// Admitting the passcode admitted this preauth too: one form, at
		// most two calls.
		d.showOptions(w, r, cr, duoText(res.StatusMsg, "That passcode was not accepted.")+" Check it and try again, or send a push.", http.StatusUnprocessableEntity)
	}
}

// factorNotOffered refuses a form for a factor the provider does not allow.
func (d *duoPages) factorNotOffered(w http.ResponseWriter, cr *challengeRequest, what string) {
	d.renderMessage(w, cr, message{
		status: http.StatusBadRequest, title: "Method not offered", alert: true,
		text:      "Duo with " + what + " is not offered for " + hostOrApp(cr.appHost) + ".",
		actionURL: d.pageURL(cr, choiceName(cr.policy, cr.provider), ""), actionLabel: "Back to Duo",
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
	d.backToPage(w, r)
}

// ipaddr is the client's address for Duo, "" when unknown.
func (d *duoPages) ipaddr(r *http.Request) string {
	ip := d.proxies.clientIP(r)
	if !ip.IsValid() || ip.IsUnspecified() {
		return ""
	}
	return ip.String()
}

// logf logs a Duo step at Info with the request's policy, provider and
// user.
func (d *duoPages) logf(cr *challengeRequest, msg string, args ...any) {
	d.log.Info(msg, append([]any{"policy", cr.policy.Namespace + "/" + cr.policy.Name, "provider", cr.providerKey(), "user", cr.user()}, args...)...)
}

// duoText is Duo's message, or def when Duo gave none.
func duoText(msg, def string) string {
	if strings.TrimSpace(msg) == "" {
		return def
	}
	return msg
}
