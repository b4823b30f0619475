package webhook

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

// The sealed push: a push in flight travels in the waiting page's form,
// sealed with the keyring and bound to the user, the provider, the policy
// and the browser.

// Limits of the sealed push.
const (
	// duoTxTTL is how long a sealed push can be polled and completed; Duo
	// itself times a push out after about a minute.
	duoTxTTL = 5 * time.Minute
	// duoTxVersion is the format of the sealed push.
	duoTxVersion = 1
	// maxTxToken bounds the sealed push read from a form.
	maxTxToken = 1024
	// usedTxCacheSize bounds the pushes remembered as used: far more than
	// can be approved within duoTxTTL at DuoPushRateLimit.
	usedTxCacheSize = 10000
)

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
