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
		var b budget
		c := cookieCursor{lines: r.Header["Cookie"]}
		for !b.spent() {
			part, ok := c.next()
			if !ok {
				break
			}
			v, ok := cookiePart(part, name)
			if !ok {
				continue
			}
			if o := j.open(kr, name, v, now, &b); o != nil && o.User == user && o.Browser != "" && !j.revoked(o) {
				return o.Browser
			}
		}
	}
	return ""
}
