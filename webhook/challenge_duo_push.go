package webhook

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duo"
)

// The push: sent asynchronously, then a waiting page whose script polls
// the status endpoint and posts the check form once Duo has an answer.

// handlePush sends a push to the chosen device and shows the waiting page.
func (d *duoPages) handlePush(w http.ResponseWriter, r *http.Request, cr *challengeRequest) {
	if !slices.Contains(cr.provider.Spec.Duo.GetFactors(), v1alpha1.DuoFactorPush) {
		d.factorNotOffered(w, cr, "a push")
		return
	}
	if !d.admitCall(w, r, cr, "push") {
		return
	}
	if ok, retry := d.pushes.Allow(duoUserKey{cr.providerKey(), cr.user()}); !ok {
		d.metrics.countChallenge(cr.providerKey(), challengeRateLimited)
		d.log.Warn("Duo push rate limited", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(), "user", cr.user())
		d.renderMessage(w, cr, message{
			status: http.StatusTooManyRequests, title: "Too many pushes", alert: true,
			text:        "You asked for several pushes in a short time. Wait a minute before asking for another one.",
			details:     []string{"If a push you did not ask for reaches your phone, deny it and report it."},
			actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
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
		d.renderFailure(w, cr, err)
		return
	}
	d.renderWaiting(w, r, cr, token, label, "", http.StatusOK)
}

// renderWaiting shows the page that waits for the push's answer; its
// script polls the status endpoint and submits the form once Duo has an
// answer; without scripts, the form's button asks.
func (d *duoPages) renderWaiting(w http.ResponseWriter, r *http.Request, cr *challengeRequest, token, label, notice string, status int) {
	p := d.formPage(w, r, cr)
	p.Title = "Approve the push"
	p.Duo = &duoView{
		DeviceLabel:  label,
		Tx:           token,
		CheckAction:  d.pagePath(cr.policy, duoPathCheck),
		StatusAction: d.pagePath(cr.policy, duoPathStatus),
		PageURL:      d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
		Notice:       notice,
	}
	d.render(&scriptPageWriter{ResponseWriter: w, p: p}, status, pageDuoPush, p, originOf(cr.rd))
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
	case res.Allowed():
		if d.claimTx(w, r, cr, tx) {
			d.allowed(w, r, cr, res, "push")
		}
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
	if ok, retry := d.polls.Allow(d.proxies.clientIP(r)); !ok {
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
	cr, ok := d.prepare(w, r, r.PostForm)
	if !ok {
		return
	}
	if cr.provider == nil || cr.provider.Spec.Type != v1alpha1.ProviderDuo {
		writeDuoStatus(w, http.StatusBadRequest, duoStatusAnswer{Error: "not a Duo provider"})
		return
	}
	if err := d.csrf.check(r, cr.snap.Keyring, cr.user()); err != nil {
		writeDuoStatus(w, http.StatusForbidden, duoStatusAnswer{Error: "invalid form token"})
		return
	}
	tx, err := d.openTxToken(r, cr)
	if err != nil {
		writeDuoStatus(w, http.StatusForbidden, duoStatusAnswer{Error: "invalid or expired push"})
		return
	}
	client, err := d.clients.Get(cr.provider)
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
