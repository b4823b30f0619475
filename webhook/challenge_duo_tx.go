package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// The sealed push: a push in flight travels in the waiting page's form,
// sealed with the keyring and bound to the user, the provider, the policy
// and the browser. Once approved it issues one session, whichever replica
// the form is sent to: the enrolment store records its use (claimTx).

// Limits of the sealed push.
const (
	// duoTxTTL is how long a sealed push can be polled and completed; Duo
	// itself times a push out after about a minute.
	duoTxTTL = 5 * time.Minute
	// duoTxVersion is the format of the sealed push.
	duoTxVersion = 1
	// maxTxToken bounds the sealed push read from a form.
	maxTxToken = 1024
	// usedTxCacheSize bounds the pushes a replica remembers as used: far
	// more than can be approved within duoTxTTL at duoPushRateLimit.
	usedTxCacheSize = 10000
	// maxUsedPushes bounds the used pushes recorded per user and provider
	// in the store. Each needs the user's approval on the phone, and each
	// replica lets a user start 3 pushes, then one every 20 seconds: tens
	// of sign-ins within an entry's lifetime are not a person's.
	maxUsedPushes = 64
	// usedPushSlack keeps a used push recorded this long after its sealed
	// form expires, for replicas whose clocks are behind the one that
	// sealed it.
	usedPushSlack = 5 * time.Minute
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
	kr := cr.snap.Keyring
	browserID := d.csrf.browserID(r)
	if kr == nil || browserID == nil {
		return "", errors.New("sealing a Duo push: no keyring or no CSRF cookie")
	}
	tx.Version = duoTxVersion
	tx.Expiry = d.now().Add(duoTxTTL).Unix()
	plain, err := json.Marshal(tx)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCSRF, plain, duoTxAAD(cr, browserID))), nil
}

// openTxToken opens the sealed push of the form.
func (d *duoPages) openTxToken(r *http.Request, cr *challengeRequest) (*duoTx, error) {
	token := r.PostForm.Get(paramTx)
	kr := cr.snap.Keyring
	browserID := d.csrf.browserID(r)
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
	if d.now().Unix() > tx.Expiry {
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
	d.log.Warn("Duo push form refused", "policy", cr.policy.Namespace+"/"+cr.policy.Name, "provider", cr.providerKey(),
		"user", cr.user(), "reason", err.Error())
	text := "This page does not belong to a push of yours in this browser."
	switch {
	case errors.Is(err, errDuoTxExpired):
		text = "This push has expired."
	case errors.Is(err, errDuoTxUsed):
		text = "This push was already used to sign in."
	}
	d.renderMessage(w, cr, message{
		status: http.StatusForbidden, title: "Push expired or invalid", alert: true,
		text:      text,
		details:   []string{"Nothing was changed. Send a new push."},
		actionURL: d.pageURL(cr, choiceName(cr.policy, cr.provider), ""), actionLabel: "Back to Duo",
	})
}

// txUsed reports whether this replica has seen the push issue a session
// (or be refused as used): a shortcut that spares Duo a call. Only the
// store says a push is unused (claimTx).
func (d *duoPages) txUsed(txid string) bool {
	_, ok := d.used.Get(txid)
	return ok
}

// claimTx records in the enrolment store, shared by every replica, that
// the approved push issues a session, before it does. One Update reads the
// user's record, refuses a push already recorded and records this one, and
// the store's compare-and-swap lets only one writer win, so a sealed push
// sent again to any replica, at once or later, issues nothing. When it
// returns false it has answered: the push was used (403), too many pushes
// were used lately (429), or the store could not say (503): never a
// session.
func (d *duoPages) claimTx(w http.ResponseWriter, r *http.Request, cr *challengeRequest, tx *duoTx) bool {
	now := d.now()
	use := store.UsedDuoPush{TxHash: duoTxHash(tx.Txid), Until: time.Unix(tx.Expiry, 0).UTC().Add(usedPushSlack)}
	_, err := d.store.Update(r.Context(), cr.enrollment(), func(e *store.Enrollment) error {
		return recordUsedPush(e, use, now)
	})
	var full *usedPushesFull
	switch {
	case err == nil:
		d.used.Add(tx.Txid, struct{}{})
		return true
	case errors.Is(err, errDuoTxUsed):
		d.used.Add(tx.Txid, struct{}{})
		d.txRefused(w, cr, err)
	case errors.As(err, &full):
		d.log.Warn("Duo push refused: too many pushes used lately", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
			"provider", cr.providerKey(), "user", cr.user(), "until", full.until.UTC().Format(time.RFC3339))
		d.renderMessage(w, cr, message{
			status: http.StatusTooManyRequests, title: "Too many sign-ins", alert: true,
			text:        "You signed in with many pushes in a short time. Wait a few minutes, then send a new push.",
			actionURL:   d.pageURL(cr, choiceName(cr.policy, cr.provider), ""),
			actionLabel: "Back to Duo",
			retryAfter:  full.until.Sub(now),
		})
	default:
		d.renderFailure(w, cr, err)
	}
	return false
}

// duoTxHash is what the store keeps of a transaction ID.
func duoTxHash(txid string) string {
	sum := sha256.Sum256([]byte("mfa-operator used duo push\x00" + txid))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// usedPushesFull: maxUsedPushes pushes of the user are recorded and none
// can be dropped before until.
type usedPushesFull struct{ until time.Time }

func (e *usedPushesFull) Error() string {
	return fmt.Sprintf("%d pushes used to sign in are recorded until %s", maxUsedPushes, e.until.UTC().Format(time.RFC3339))
}

// recordUsedPush records use in e, dropping the records past their time;
// errDuoTxUsed when the push is recorded already. It decides from e and
// now only, as store.Update requires.
func recordUsedPush(e *store.Enrollment, use store.UsedDuoPush, now time.Time) error {
	if slices.ContainsFunc(e.DuoPushesUsed, func(u store.UsedDuoPush) bool { return u.TxHash == use.TxHash }) {
		return errDuoTxUsed
	}
	e.DuoPushesUsed = slices.DeleteFunc(e.DuoPushesUsed, func(u store.UsedDuoPush) bool { return now.After(u.Until) })
	if len(e.DuoPushesUsed) >= maxUsedPushes {
		first := slices.MinFunc(e.DuoPushesUsed, func(a, b store.UsedDuoPush) int { return a.Until.Compare(b.Until) })
		return &usedPushesFull{until: first.Until}
	}
	e.DuoPushesUsed = append(e.DuoPushesUsed, use)
	return nil
}
