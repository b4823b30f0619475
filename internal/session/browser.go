package session

import (
	"net/http"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

// BrowserID is the id of this browser carried by its MFA cookies of user
// (the remembered-browser cookie's first, else the session cookie's); ""
// when it has none that is valid, unrevoked and carries one.
func (j *Jar) BrowserID(r *http.Request, kr *keyring.Keyring, user string, now time.Time) string {
	for _, name := range []string{RememberCookieName, CookieName} {
		for o := range j.openAll(r, kr, name, now) {
			if o.User == user && o.Browser != "" && !j.revoked(o) {
				return o.Browser
			}
		}
	}
	return ""
}
