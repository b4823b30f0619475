package session

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

// AnsweredWithin returns the provider (namespace/name) of one of
// providers that user answered, in this browser session, no longer than
// within before now (a step-up for sensitive pages). Only the session
// cookie counts: a remembered browser proves an answer of long ago.
func (j *Jar) AnsweredWithin(r *http.Request, kr *keyring.Keyring, user string, providers []string, within time.Duration, now time.Time) (string, bool) {
	oldest := now.Add(-within).Unix()
	for o := range j.openAll(r, kr, CookieName, now) {
		if o.User != user || j.revoked(o) {
			continue
		}
		for _, f := range o.Factors {
			if !f.FailOpen && f.At >= oldest && f.At <= now.Unix() && slices.Contains(providers, f.Provider) {
				return f.Provider, true
			}
		}
	}
	return "", false
}

// Reissue seals this browser's MFA cookies of user again as issued now,
// with the same factors (and when they were answered) and expiry: after
// the user revoked every other browser, this one stays signed in. A
// cookie of another user, forged or expired is left as is.
func (j *Jar) Reissue(w http.ResponseWriter, r *http.Request, kr *keyring.Keyring, user string, now time.Time) {
	for _, name := range []string{CookieName, RememberCookieName} {
		for o := range j.openAll(r, kr, name, now) {
			if o.User != user {
				continue
			}
			sess := o.sealed
			sess.IssuedAt, sess.IssuedAtNano, sess.ID = now.Unix(), now.UnixNano(), newID()
			plain, err := json.Marshal(&sess)
			if err != nil {
				break
			}
			ck := &http.Cookie{
				Name: name, Value: base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCookie, plain, []byte(name))),
				Path: "/", Domain: j.domain, HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
			}
			if name == RememberCookieName {
				ck.MaxAge = int(sess.Expiry - now.Unix())
			}
			http.SetCookie(w, ck)
			break
		}
	}
}

// RememberedUntil is when this browser's remembered-browser cookie of
// user expires; zero when it has none.
func (j *Jar) RememberedUntil(r *http.Request, kr *keyring.Keyring, user string, now time.Time) time.Time {
	for o := range j.openAll(r, kr, RememberCookieName, now) {
		if o.User == user && !j.revoked(o) {
			return o.expires
		}
	}
	return time.Time{}
}
