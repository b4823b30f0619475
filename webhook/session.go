package webhook

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
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Cookie names. The MFA session cookie lives as long as the browser
// session; the remembered-browser cookie persists for the rule's
// rememberFor. Both are sealed with the keyring (AES-GCM, the cookie name
// as additional data, so one cannot be passed off as the other).
const (
	SessionCookieName  = "mfa_session"
	RememberCookieName = "mfa_remember"

	cookieCacheSize = 10000
	sessionVersion  = 1
	// maxCookiesPerName bounds the same-named cookies considered (a
	// sibling domain may set one of its own next to ours).
	maxCookiesPerName = 4
)

// session is the sealed content of both cookies.
type session struct {
	Version int    `json:"v"`
	User    string `json:"u"`
	// Factors are the providers answered, each with when.
	Factors  []sessionFactor `json:"f"`
	IssuedAt int64           `json:"iat"`
	ID       string          `json:"sid"`
	// AuthTime is the identity's login time (JWT auth_time or iat) when
	// the session was issued; 0 when unknown.
	AuthTime int64 `json:"auth_time,omitempty"`
	Expiry   int64 `json:"exp"`
}

type sessionFactor struct {
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
}

// openedSession is a decrypted cookie, as cached.
type openedSession struct {
	session
	kr      *keyring.Keyring
	expires time.Time
}

type cookieKey struct{ name, value string }

type cookieCache = lru[cookieKey, *openedSession]

func newCookieCache(size int) *cookieCache { return newLRU[cookieKey, *openedSession](size) }

// openSession decrypts a cookie value, answering from the cache when the
// same value was opened with the same keyring. Nil when the cookie is
// forged, made with a key no longer listed, or expired.
func (s *Server) openSession(kr *keyring.Keyring, name, value string, now time.Time) *openedSession {
	if kr == nil || value == "" {
		return nil
	}
	k := cookieKey{name, value}
	if o, ok := s.cookies.Get(k); ok && o.kr == kr {
		if now.Before(o.expires) {
			return o
		}
		return nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil
	}
	plain, err := kr.Open(keyring.PurposeCookie, sealed, []byte(name))
	if err != nil {
		return nil
	}
	o := &openedSession{kr: kr}
	if err := json.Unmarshal(plain, &o.session); err != nil || o.Version != sessionVersion || o.User == "" {
		return nil
	}
	o.expires = time.Unix(o.Expiry, 0)
	if !now.Before(o.expires) {
		return nil
	}
	s.cookies.Add(cookieKey{name, strings.Clone(value)}, o)
	return o
}

// sessionCheck is what a satisfied RequireMFA rule reports.
type sessionCheck struct {
	// multifactor: the names of the claimed factors that satisfied the
	// rule, comma-separated.
	multifactor string
}

// checkSession says whether the request carries an MFA session or a
// remembered-browser cookie of this user that satisfies the rule: one of
// the rule's providers, answered within its rememberFor. With ignoreCookie
// the remembered cookie does not count, and a session older than the
// identity's login (JWT auth_time) does not either.
func (s *Server) checkSession(r *http.Request, kr *keyring.Keyring, ri *ruleInfo, id *Identity, now time.Time) (sessionCheck, bool) {
	var values [2][maxCookiesPerName]string
	remember := RememberCookieName
	if ri.rule.IgnoreCookie {
		remember = ""
	}
	var n [2]int
	n[0], n[1] = cookieValuesOf(r, SessionCookieName, remember, values[0][:], values[1][:])
	for i, name := range [2]string{SessionCookieName, remember} {
		for _, v := range values[i][:n[i]] {
			o := s.openSession(kr, name, v, now)
			if o == nil || o.User != id.User.ID {
				continue
			}
			if ri.rule.IgnoreCookie && id.Source == SourceJWT && !id.AuthTime.IsZero() && id.AuthTime.Unix() > o.AuthTime {
				continue
			}
			if c, ok := o.satisfies(ri, now); ok {
				return c, true
			}
		}
	}
	return sessionCheck{}, false
}

// satisfies finds the session's factors that the rule accepts.
func (o *openedSession) satisfies(ri *ruleInfo, now time.Time) (sessionCheck, bool) {
	oldest := now.Add(-ri.rule.RememberFor).Unix()
	var c sessionCheck
	ok := false
	for i := range o.Factors {
		f := &o.Factors[i]
		if f.At < oldest || !slices.Contains(ri.providerKeys, f.Provider) {
			continue
		}
		ok = true
		if f.FailOpen || f.Multifactor == "" {
			continue
		}
		switch {
		case c.multifactor == "":
			c.multifactor = f.Multifactor
		case !containsName(c.multifactor, f.Multifactor):
			c.multifactor += "," + f.Multifactor
		}
	}
	return c, ok
}

func containsName(list, name string) bool {
	for n := range strings.SplitSeq(list, ",") {
		if n == name {
			return true
		}
	}
	return false
}

// cookieValues finds the values of the cookies called name without
// parsing (or allocating) the others; it returns how many it put in out.
func cookieValues(r *http.Request, name string, out []string) int {
	n, _ := cookieValuesOf(r, name, "", out, nil)
	return n
}

// cookieValuesOf is cookieValues for two names in one pass over the Cookie
// header: the values of a go to outA, those of b (unless b is "") to outB.
func cookieValuesOf(r *http.Request, a, b string, outA, outB []string) (na, nb int) {
	for _, line := range r.Header["Cookie"] {
		for line != "" && (na < len(outA) || nb < len(outB)) {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = strings.TrimSpace(part)
			if v, ok := cookiePart(part, a); ok {
				if na < len(outA) {
					outA[na] = v
					na++
				}
			} else if v, ok := cookiePart(part, b); ok && b != "" && nb < len(outB) {
				outB[nb] = v
				nb++
			}
		}
	}
	return na, nb
}

// cookiePart is the value of part, a "name=value" pair, when it is a
// non-empty value of the cookie called name (quotes removed).
func cookiePart(part, name string) (string, bool) {
	if len(part) <= len(name) || part[len(name)] != '=' || part[:len(name)] != name {
		return "", false
	}
	v := part[len(name)+1:]
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v, v != ""
}

// cookieValue is the first value of the cookie called name, "" if none.
func cookieValue(r *http.Request, name string) string {
	var v [1]string
	if cookieValues(r, name, v[:]) == 1 {
		return v[0]
	}
	return ""
}

// issueSession sets the MFA session cookie (and the remembered-browser
// cookie, unless the rule says ignoreCookie or the mode is
// SessionFailOpen) after a successful second factor with providerKey
// (namespace/name). Factors of other providers already in this user's
// cookies are kept.
func (s *Server) issueSession(w http.ResponseWriter, r *http.Request, id *Identity, p *policy.CompiledPolicy, rule *policy.CompiledRule, providerKey string, mode SessionMode) {
	snap := s.snapshot()
	kr := snap.Keyring
	prov := snap.Providers[providerKey]
	if kr == nil || id == nil || id.User.ID == "" || prov == nil {
		s.log.Error("cannot issue an MFA session", "provider", providerKey, "keyring", kr != nil, "identity", id != nil)
		return
	}
	now := s.now()
	rememberFor, ignoreCookie := time.Duration(0), false
	if rule != nil {
		rememberFor, ignoreCookie = rule.RememberFor, rule.IgnoreCookie
	}
	if rememberFor <= 0 {
		rememberFor = defaultRememberFor
	}
	// The cookies live as long as the longest rememberFor of the policy's
	// rules accepting this provider; each rule checks its own against the
	// time the factor was answered.
	lifetime := rememberFor
	if e := snap.entryOf(p); e != nil && e.maxRemember[providerKey] > lifetime {
		lifetime = e.maxRemember[providerKey]
	}
	f := sessionFactor{Provider: providerKey, Multifactor: prov.Spec.MultifactorName(), FailOpen: mode == SessionFailOpen, At: now.Unix()}

	s.setSessionCookie(w, r, kr, SessionCookieName, id, f, now, lifetime, false)
	if !ignoreCookie && mode == SessionVerified {
		s.setSessionCookie(w, r, kr, RememberCookieName, id, f, now, lifetime, true)
	}
	s.log.Info("MFA session issued", "user", id.User.ID, "policy", p.Namespace+"/"+p.Name, "provider", providerKey,
		"remembered", !ignoreCookie && mode == SessionVerified, "failOpen", mode == SessionFailOpen)
}

func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, kr *keyring.Keyring, name string, id *Identity, f sessionFactor, now time.Time, lifetime time.Duration, persistent bool) {
	sess := session{
		Version:  sessionVersion,
		User:     id.User.ID,
		IssuedAt: now.Unix(),
		ID:       newSessionID(),
		Expiry:   now.Add(lifetime).Unix(),
	}
	if !id.AuthTime.IsZero() {
		sess.AuthTime = id.AuthTime.Unix()
	}
	// Keep this user's other factors from the current cookie.
	var values [maxCookiesPerName]string
	for _, v := range values[:cookieValues(r, name, values[:])] {
		old := s.openSession(kr, name, v, now)
		if old == nil || old.User != id.User.ID {
			continue
		}
		for _, of := range old.Factors {
			if of.Provider != f.Provider && !slices.ContainsFunc(sess.Factors, func(x sessionFactor) bool { return x.Provider == of.Provider }) {
				sess.Factors = append(sess.Factors, of)
			}
		}
		sess.Expiry = max(sess.Expiry, old.Expiry)
		break
	}
	sess.Factors = append(sess.Factors, f)
	plain, err := json.Marshal(&sess)
	if err != nil {
		s.log.Error("encoding MFA session", "error", err)
		return
	}
	c := &http.Cookie{
		Name:     name,
		Value:    base64.RawURLEncoding.EncodeToString(kr.Seal(keyring.PurposeCookie, plain, []byte(name))),
		Path:     "/",
		Domain:   s.opts.CookieDomain,
		HttpOnly: true,
		Secure:   !s.opts.InsecureCookies,
		SameSite: http.SameSiteLaxMode,
	}
	if persistent {
		c.MaxAge = int(sess.Expiry - now.Unix())
	}
	http.SetCookie(w, c)
}

// clearSession removes both MFA cookies (sign-out).
func (s *Server) clearSession(w http.ResponseWriter) {
	for _, name := range []string{SessionCookieName, RememberCookieName} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Domain: s.opts.CookieDomain, MaxAge: -1,
			HttpOnly: true, Secure: !s.opts.InsecureCookies, SameSite: http.SameSiteLaxMode})
	}
}

func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
