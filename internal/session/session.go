// Package session is the MFA cookies: the session cookie, which proves a
// second factor for the browser session, and the remembered-browser
// cookie, which proves it for the rule's rememberFor across browser
// sessions. Both are sealed with the keyring (AES-GCM, the cookie name as
// additional data, so one cannot be passed off as the other); opened
// cookies are cached, so that a remembered user costs a lookup, not a
// decryption.
package session

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/lru"
)

// Cookie names. The MFA session cookie lives as long as the browser
// session; the remembered-browser cookie persists for the rule's
// rememberFor.
const (
	CookieName         = "mfa_session"
	RememberCookieName = "mfa_remember"

	cacheSize      = 10000
	sessionVersion = 1
)

// A request may carry several cookies of one name: a sibling domain's app
// may set its own next to ours, and a hostile client may send hundreds.
// The values of a name are looked at up to MaxValuesPerName times (a
// cache lookup and a look at the key id, no decryption); values sealed
// with a key of our keyring and not yet cached are decrypted at most
// MaxOpensPerName times. Other apps' and installations' cookies therefore
// never push ours out, and no request costs more than 2*MaxOpensPerName
// decryptions.
const (
	MaxValuesPerName = 16
	MaxOpensPerName  = 4
	// MaxValueLen is what browsers keep of a cookie (name included).
	MaxValueLen = 4096
)

// Mode says what a session proves.
type Mode int

const (
	// Verified: the user answered the provider.
	Verified Mode = iota
	// FailOpen: the provider could not be reached and its fail mode is
	// open, or it let the user through without asking (Duo's bypass). The
	// session lets the user through for this browser session but never
	// claims the factor (no X-MFA-Multifactor, no amr) and is never
	// remembered.
	FailOpen
)

// Rule is what a RequireMFA rule accepts of a session.
type Rule struct {
	// Providers are the namespace/name of the providers that satisfy it.
	Providers []string
	// RememberFor is how long after it was answered a factor counts.
	RememberFor time.Duration
	// IgnoreCookie: the remembered-browser cookie does not count, and a
	// session issued before the user's verified login does not either.
	IgnoreCookie bool
}

// User is whom a session is for.
type User struct {
	ID string
	// AuthTime is when the user logged in upstream (JWT auth_time or
	// iat); zero when unknown. A session records it.
	AuthTime time.Time
	// AuthTimeVerified: AuthTime comes from a verified token, so that a
	// rule with IgnoreCookie refuses sessions issued before it.
	AuthTimeVerified bool
}

// Factor is a second factor the user answered.
type Factor struct {
	// Provider is the MFAProvider's namespace/name.
	Provider string
	// Multifactor is the name reported to apps (google-authenticator, duo).
	Multifactor string
	// Mode is what answering it proves.
	Mode Mode
	// Method is the factor's RFC 8176 authentication method when the
	// provider type alone does not tell it: hwk or swk for a WebAuthn key.
	Method string
}

// sealed is the sealed content of both cookies.
type sealed struct {
	Version int    `json:"v"`
	User    string `json:"u"`
	// Factors are the providers answered, each with when.
	Factors  []sealedFactor `json:"f"`
	IssuedAt int64          `json:"iat"`
	// IssuedAtNano is IssuedAt in Unix nanoseconds, compared with the
	// user's revocation; 0 in cookies issued before it was sealed.
	IssuedAtNano int64  `json:"iatn,omitempty"`
	ID           string `json:"sid"`
	// Browser is the browser's id: one for both cookies of a browser, kept
	// when they are issued again, so that this browser's cookies can be
	// revoked alone (see BrowserRevocations); "" in cookies issued before.
	Browser string `json:"bid,omitempty"`
	// AuthTime is the identity's login time (JWT auth_time or iat) when
	// the session was issued; 0 when unknown.
	AuthTime int64 `json:"auth_time,omitempty"`
	Expiry   int64 `json:"exp"`
}

type sealedFactor struct {
	// Provider is the MFAProvider's namespace/name.
	Provider string `json:"p"`
	// Multifactor is the name reported to apps (google-authenticator, duo).
	Multifactor string `json:"m"`
	// FailOpen marks a provider that could not be reached and let the user
	// through: it satisfies the rule but is never claimed.
	FailOpen bool `json:"o,omitempty"`
	// At is when the factor was answered (unix seconds); rememberFor is
	// counted from it.
	At int64 `json:"t"`
	// Method is the RFC 8176 method of the factor (hwk, swk), if told.
	Method string `json:"a,omitempty"`
	// claim is what Check reports of the factor: Multifactor, or
	// Multifactor+Method (see Claimed); set when the cookie is opened.
	claim string
}

// Claimed splits one entry of what Check reports into the multifactor
// name reported to apps and the factor's RFC 8176 method ("" if none).
func Claimed(entry string) (multifactor, method string) {
	multifactor, method, _ = strings.Cut(entry, "+")
	return multifactor, method
}

// Revocations says, per user, before when (Unix nanoseconds) sessions
// and remembered-browser cookies no longer count (0: no revocation). It is
// asked on every check, so it must answer from memory.
type Revocations interface {
	NotBefore(user string) int64
}

// BrowserRevocations says whether the cookies of one of user's browsers
// (their Browser id) were revoked alone. Revocations that implement it
// are asked on every check too, so it must answer from memory.
type BrowserRevocations interface {
	BrowserRevoked(user, browser string) bool
}

// Jar reads and writes the MFA cookies of one cookie domain.
type Jar struct {
	domain string
	secure bool
	opened *lru.Cache[cookieKey, *opened]
	// revocations, when set, refuses cookies issued before the user's
	// revocation; browsers, when set, the cookies of a revoked browser.
	revocations Revocations
	browsers    BrowserRevocations
}

// SetRevocations makes the jar refuse a user's cookies issued before the
// user's revocation in r, and the cookies of a browser revoked alone when
// r is also a BrowserRevocations. Call it before the jar serves requests.
func (j *Jar) SetRevocations(r Revocations) {
	j.revocations = r
	j.browsers, _ = r.(BrowserRevocations)
}

// revoked says whether o was issued before its user's revocation, or its
// browser was revoked.
func (j *Jar) revoked(o *opened) bool {
	if j.revocations == nil {
		return false
	}
	nb := j.revocations.NotBefore(o.User)
	if nb != 0 && o.issuedNano() < nb {
		return true
	}
	return o.Browser != "" && j.browsers != nil && j.browsers.BrowserRevoked(o.User, o.Browser)
}

// NewJar returns a jar for cookies of domain (empty: host-only); secure
// false drops the Secure attribute (local http demos only).
func NewJar(domain string, secure bool) *Jar {
	return &Jar{domain: domain, secure: secure, opened: lru.New[cookieKey, *opened](cacheSize)}
}

// Check says whether the request carries an MFA session or a
// remembered-browser cookie of u that satisfies rule: one of the rule's
// providers, answered within its rememberFor. With IgnoreCookie the
// remembered cookie does not count, and a session older than u's verified
// login does not either. A session cookie that satisfies the rule wins
// over a remembered one (their factors may differ); both are found in one
// pass over the Cookie header. multifactor names the claimed factors that
// satisfied the rule, comma-separated.
func (j *Jar) Check(r *http.Request, kr *keyring.Keyring, rule *Rule, u *User, now time.Time) (multifactor string, ok bool) {
	remember := RememberCookieName
	if rule.IgnoreCookie {
		remember = ""
	}
	var sessions, remembered budget
	var fallback string
	found := false
	c := cookieCursor{lines: r.Header["Cookie"]}
	for !sessions.spent() || (remember != "" && !found && !remembered.spent()) {
		part, ok := c.next()
		if !ok {
			break
		}
		if v, ok := cookiePart(part, CookieName); ok {
			if mf, ok := j.satisfies(kr, CookieName, v, rule, u, now, &sessions); ok {
				return mf, true
			}
		} else if remember != "" && !found {
			if v, ok := cookiePart(part, remember); ok {
				fallback, found = j.satisfies(kr, remember, v, rule, u, now, &remembered)
			}
		}
	}
	return fallback, found
}

// satisfies opens one cookie value and says whether it is u's and
// satisfies the rule.
func (j *Jar) satisfies(kr *keyring.Keyring, name, value string, rule *Rule, u *User, now time.Time, b *budget) (string, bool) {
	o := j.open(kr, name, value, now, b)
	if o == nil || o.User != u.ID || j.revoked(o) {
		return "", false
	}
	if rule.IgnoreCookie && u.AuthTimeVerified && !u.AuthTime.IsZero() && u.AuthTime.Unix() > o.AuthTime {
		return "", false
	}
	return o.satisfies(rule, now)
}

// satisfies finds the session's factors that the rule accepts. A factor
// with a method is reported as multifactor+method (see Claimed).
func (o *opened) satisfies(rule *Rule, now time.Time) (string, bool) {
	oldest := now.Add(-rule.RememberFor).Unix()
	var multifactor string
	ok := false
	for i := range o.Factors {
		f := &o.Factors[i]
		if f.At < oldest || !slices.Contains(rule.Providers, f.Provider) {
			continue
		}
		ok = true
		if f.FailOpen || f.claim == "" {
			continue
		}
		switch {
		case multifactor == "":
			multifactor = f.claim
		case !HasFactor(multifactor, f.claim):
			multifactor += "," + f.claim
		}
	}
	return multifactor, ok
}

// HasFactor says whether list, comma-separated multifactor names as Check
// reports them, holds name.
func HasFactor(list, name string) bool {
	for n := range strings.SplitSeq(list, ",") {
		if n == name {
			return true
		}
	}
	return false
}

// Issue sets the MFA session cookie after u answered f, and the
// remembered-browser cookie too when remember. Both live for lifetime
// from now (or as long as the cookie they replace); factors of other
// providers already in u's cookie of the same name are kept. Only an
// encoding error is returned; the cookies are set regardless of the other.
func (j *Jar) Issue(w http.ResponseWriter, r *http.Request, kr *keyring.Keyring, u *User, f Factor, now time.Time, lifetime time.Duration, remember bool) error {
	_, err := j.IssueBrowser(w, r, kr, u, f, now, lifetime, remember)
	return err
}

// Issued is what IssueBrowser set: the browser's id, the same in both
// cookies (the one they already carried, else a new one), and when the
// remembered-browser cookie expires (zero when none was set).
type Issued struct {
	Browser          string
	RememberedExpiry time.Time
}

// IssueBrowser is Issue, and says which browser was issued the cookies.
func (j *Jar) IssueBrowser(w http.ResponseWriter, r *http.Request, kr *keyring.Keyring, u *User, f Factor, now time.Time, lifetime time.Duration, remember bool) (Issued, error) {
	sf := sealedFactor{Provider: f.Provider, Multifactor: f.Multifactor, FailOpen: f.Mode == FailOpen, At: now.Unix(), Method: f.Method}
	out := Issued{Browser: j.BrowserID(r, kr, u.ID, now)}
	if out.Browser == "" {
		out.Browser = newID()
	}
	_, err := j.set(w, r, kr, CookieName, u, sf, now, lifetime, false, out.Browser)
	if remember {
		expiry, rerr := j.set(w, r, kr, RememberCookieName, u, sf, now, lifetime, true, out.Browser)
		if err == nil {
			err = rerr
		}
		if rerr == nil {
			out.RememberedExpiry = expiry
		}
	}
	return out, err
}

func (j *Jar) set(w http.ResponseWriter, r *http.Request, kr *keyring.Keyring, name string, u *User, f sealedFactor, now time.Time, lifetime time.Duration, persistent bool, browser string) (time.Time, error) {
	sess := sealed{
		Version:      sessionVersion,
		User:         u.ID,
		IssuedAt:     now.Unix(),
		IssuedAtNano: now.UnixNano(),
		ID:           newID(),
		Browser:      browser,
		Expiry:       now.Add(lifetime).Unix(),
	}
	if !u.AuthTime.IsZero() {
		sess.AuthTime = u.AuthTime.Unix()
	}
	// Keep this user's other factors from the current cookie.
	for old := range j.openAll(r, kr, name, now) {
		if old.User != u.ID || j.revoked(old) {
			continue // a revoked cookie's factors are not carried over
		}
		for _, of := range old.Factors {
			if of.Provider != f.Provider && !slices.ContainsFunc(sess.Factors, func(x sealedFactor) bool { return x.Provider == of.Provider }) {
				sess.Factors = append(sess.Factors, of)
			}
		}
		sess.Expiry = max(sess.Expiry, old.Expiry)
		break
	}
	sess.Factors = append(sess.Factors, f)
	plain, err := json.Marshal(&sess)
	if err != nil {
		return time.Time{}, err
	}
	c := &http.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCookie, plain, []byte(name))),
		Path:     "/",
		Domain:   j.domain,
		HttpOnly: true,
		Secure:   j.secure,
		SameSite: http.SameSiteLaxMode,
	}
	if persistent {
		c.MaxAge = int(sess.Expiry - now.Unix())
	}
	http.SetCookie(w, c)
	return time.Unix(sess.Expiry, 0), nil
}

// Clear removes both MFA cookies (sign-out).
func (j *Jar) Clear(w http.ResponseWriter) {
	for _, name := range []string{CookieName, RememberCookieName} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Domain: j.domain, MaxAge: -1,
			HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode})
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
