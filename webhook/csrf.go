package webhook

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

// Forms carry a CSRF token that is bound to the user and to a random
// per-browser value kept in a cookie (double submit). The token is the
// browser value and an expiry sealed with the keyring's CSRF key and the
// user as additional data, so a token made for one user or one browser is
// useless for another, and a key rotation keeps open forms valid.
const (
	// csrfCookieSecure is the cookie's name over https: the __Host- prefix
	// makes browsers refuse it unless it is Secure, host-only and Path=/,
	// so a sibling subdomain cannot plant one.
	csrfCookieSecure = "__Host-mfa_csrf"
	// csrfCookieInsecure is its name for local http demos.
	csrfCookieInsecure = "mfa_csrf"
	// csrfField is the form field holding the token.
	csrfField = "csrf"
	// csrfTokenTTL is how long a rendered form stays usable.
	csrfTokenTTL = 12 * time.Hour
	// csrfCookieMaxAge keeps the browser value across tabs and restarts.
	csrfCookieMaxAge = 24 * time.Hour
	csrfBrowserIDLen = 32
	csrfTokenVersion = 1
)

var (
	errCSRFMissing = errors.New("the form has no security token")
	errCSRFInvalid = errors.New("the form's security token does not match this browser or user")
	errCSRFExpired = errors.New("the form's security token has expired")
	errCSRFOrigin  = errors.New("the form was sent from another site")
)

// csrfGuard makes and checks the forms' tokens and keeps the browser
// value's cookie.
type csrfGuard struct {
	// cookieName is csrfCookieSecure, or csrfCookieInsecure without
	// Secure cookies (local http demos).
	cookieName string
	secure     bool
	// publicHost is the public URL's host, an origin forms may come from.
	publicHost string
	now        func() time.Time
}

func newCSRFGuard(insecureCookies bool, publicHost string, now func() time.Time) *csrfGuard {
	g := &csrfGuard{cookieName: csrfCookieSecure, secure: !insecureCookies, publicHost: publicHost, now: now}
	if insecureCookies {
		g.cookieName = csrfCookieInsecure
	}
	return g
}

// browserID returns this browser's CSRF value, or nil when it has none
// (or a malformed one).
func (g *csrfGuard) browserID(r *http.Request) []byte {
	c, err := r.Cookie(g.cookieName)
	if err != nil {
		return nil
	}
	id, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(id) != csrfBrowserIDLen {
		return nil
	}
	return id
}

// ensureCookie returns this browser's CSRF value, giving the browser a
// new one when it has none.
func (g *csrfGuard) ensureCookie(w http.ResponseWriter, r *http.Request) []byte {
	if id := g.browserID(r); id != nil {
		return id
	}
	// A page may ask twice (a pending secret bound to the browser, then the
	// form's token): the value this response already gives is the one.
	for _, sc := range w.Header()["Set-Cookie"] {
		if c, err := http.ParseSetCookie(sc); err == nil && c.Name == g.cookieName {
			if id, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(id) == csrfBrowserIDLen {
				return id
			}
		}
	}
	id := make([]byte, csrfBrowserIDLen)
	_, _ = rand.Read(id)
	http.SetCookie(w, &http.Cookie{
		Name:     g.cookieName,
		Value:    base64.RawURLEncoding.EncodeToString(id),
		Path:     "/",
		MaxAge:   int(csrfCookieMaxAge / time.Second),
		HttpOnly: true,
		Secure:   g.secure,
		SameSite: http.SameSiteLaxMode,
	})
	return id
}

// token makes the token of a form shown to user in this browser, sealed
// with kr (the request's keyring; "" without one).
func (g *csrfGuard) token(w http.ResponseWriter, r *http.Request, kr *keyring.Keyring, user string) string {
	if kr == nil {
		return ""
	}
	return newCSRFToken(kr, g.ensureCookie(w, r), user, g.now())
}

// check checks a POST: where it comes from, then its token against the
// browser's cookie and the user, with kr, the request's keyring.
func (g *csrfGuard) check(r *http.Request, kr *keyring.Keyring, user string) error {
	if err := checkOrigin(r, g.publicHost); err != nil {
		return err
	}
	if kr == nil {
		return errCSRFInvalid
	}
	return checkCSRFToken(kr, r.PostFormValue(csrfField), g.browserID(r), user, g.now())
}

func csrfAAD(user string) []byte {
	return []byte("mfa-operator csrf\x00" + user)
}

// newCSRFToken seals version | expiry | browser value for user.
func newCSRFToken(kr *keyring.Keyring, browserID []byte, user string, now time.Time) string {
	pt := make([]byte, 0, 1+8+len(browserID))
	pt = append(pt, csrfTokenVersion)
	pt = binary.BigEndian.AppendUint64(pt, uint64(now.Add(csrfTokenTTL).Unix()))
	pt = append(pt, browserID...)
	return base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCSRF, pt, csrfAAD(user)))
}

// checkCSRFToken accepts a token made by newCSRFToken for the same browser
// value and user, before its expiry.
func checkCSRFToken(kr *keyring.Keyring, token string, browserID []byte, user string, now time.Time) error {
	if token == "" || browserID == nil {
		return errCSRFMissing
	}
	if len(token) > 512 {
		return errCSRFInvalid
	}
	sealed, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return errCSRFInvalid
	}
	pt, err := kr.Open(keyring.PurposeCSRF, sealed, csrfAAD(user))
	if err != nil || len(pt) != 1+8+csrfBrowserIDLen || pt[0] != csrfTokenVersion {
		return errCSRFInvalid
	}
	if subtle.ConstantTimeCompare(pt[9:], browserID) != 1 {
		return errCSRFInvalid
	}
	if expiry := int64(binary.BigEndian.Uint64(pt[1:9])); now.Unix() > expiry {
		return errCSRFExpired
	}
	return nil
}

// checkOrigin refuses a request that a browser says comes from another
// site: Sec-Fetch-Site other than same-origin (or none, typed by the user),
// or an Origin (else a Referer) whose host is neither the request's Host
// nor the public URL's. A request without any of these headers is left to
// the token.
func checkOrigin(r *http.Request, publicHost string) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return errCSRFOrigin
	}
	source := r.Header.Get("Origin")
	if source == "" {
		source = r.Header.Get("Referer")
		if source == "" {
			return nil
		}
	}
	u, err := url.Parse(source)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		// Includes Origin: null (sandboxed frames, some redirects).
		return errCSRFOrigin
	}
	if strings.EqualFold(u.Host, r.Host) || (publicHost != "" && strings.EqualFold(u.Host, publicHost)) {
		return nil
	}
	return errCSRFOrigin
}
