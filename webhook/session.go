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
	"github.com/mfa-operator/mfa-operator/internal/lru"
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
)

// A request may carry several cookies of one name: a sibling domain's app
// may set its own next to ours, and a hostile client may send hundreds.
// The values of a name are looked at up to maxCookiesPerName times (a
// cache lookup and a look at the key id, no decryption); values sealed
// with a key of our keyring and not yet cached are decrypted at most
// maxCookieOpens times. Other apps' and installations' cookies therefore
// never push ours out, and no request costs more than 2*maxCookieOpens
// decryptions.
const (
	maxCookiesPerName = 16
	maxCookieOpens    = 4
	// maxCookieValueLen is what browsers keep of a cookie (name included).
	maxCookieValueLen = 4096
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

type cookieCache = lru.Cache[cookieKey, *openedSession]

func newCookieCache(size int) *cookieCache { return lru.New[cookieKey, *openedSession](size) }

// cookieBudget counts what one request's cookies of one name cost (see
// maxCookiesPerName).
type cookieBudget struct{ looked, opened int }

func (b *cookieBudget) spent() bool { return b.looked >= maxCookiesPerName }

// openWithin opens one value of a cookie called name, paying from b, the
// budget of the request's cookies of that name. It answers from the cache
// when the same value was opened with the same keyring (a lookup); a value
// that does not name a key of kr costs nothing more; only the others are
// decrypted, while b lasts. Nil when the cookie is forged, made with a key
// no longer listed, expired, or past the budget.
func (s *Server) openWithin(kr *keyring.Keyring, name, value string, now time.Time, b *cookieBudget) *openedSession {
	if kr == nil || value == "" || len(value) > maxCookieValueLen || b.spent() {
		return nil
	}
	b.looked++
	k := cookieKey{name, value}
	if o, ok := s.cookies.Get(k); ok && o.kr == kr {
		if now.Before(o.expires) {
			return o
		}
		return nil
	}
	if b.opened >= maxCookieOpens || !sealedByKeyOf(kr, value) {
		return nil
	}
	b.opened++
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

// sealedByKeyOf says, decoding only the start of value (the key id's
// length byte and the id) and allocating nothing, whether value names a
// key of kr (see keyring.KnowsKeyOf).
func sealedByKeyOf(kr *keyring.Keyring, value string) bool {
	// Ids are 8 bytes: with their length byte, 12 characters. (head is
	// longer than the 9 bytes they decode to: Decode then takes its fast
	// path.)
	var src [12]byte
	var head [12]byte
	n, err := base64.RawURLEncoding.Decode(head[:], src[:copy(src[:], value)])
	if err != nil || n == 0 {
		return false
	}
	if idLen := int(head[0]); 1+idLen > 9 {
		return sealedByLongKeyOf(kr, value, idLen)
	}
	return kr.KnowsKeyOf(keyring.PurposeCookie, head[:n])
}

// sealedByLongKeyOf is sealedByKeyOf for an id of idLen bytes, up to 255.
func sealedByLongKeyOf(kr *keyring.Keyring, value string, idLen int) bool {
	var src [344]byte
	var head [256]byte
	m := base64.RawURLEncoding.EncodedLen(1 + idLen)
	if len(value) < m {
		return false
	}
	n, err := base64.RawURLEncoding.Decode(head[:], src[:copy(src[:m], value)])
	if err != nil {
		return false
	}
	return kr.KnowsKeyOf(keyring.PurposeCookie, head[:n])
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
// identity's login (JWT auth_time) does not either. A session cookie that
// satisfies the rule wins over a remembered one (their factors may
// differ); both are found in one pass over the Cookie header.
func (s *Server) checkSession(r *http.Request, kr *keyring.Keyring, ri *ruleInfo, id *Identity, now time.Time) (sessionCheck, bool) {
	remember := RememberCookieName
	if ri.rule.IgnoreCookie {
		remember = ""
	}
	var sessions, remembered cookieBudget
	var fallback sessionCheck
	found := false
	c := cookieCursor{lines: r.Header["Cookie"]}
	for !sessions.spent() || (remember != "" && !found && !remembered.spent()) {
		part, ok := c.next()
		if !ok {
			break
		}
		if v, ok := cookiePart(part, SessionCookieName); ok {
			if sc, ok := s.sessionSatisfies(kr, SessionCookieName, v, ri, id, now, &sessions); ok {
				return sc, true
			}
		} else if remember != "" && !found {
			if v, ok := cookiePart(part, remember); ok {
				fallback, found = s.sessionSatisfies(kr, remember, v, ri, id, now, &remembered)
			}
		}
	}
	return fallback, found
}

// sessionSatisfies opens one cookie value and says whether it is this
// user's and satisfies the rule.
func (s *Server) sessionSatisfies(kr *keyring.Keyring, name, value string, ri *ruleInfo, id *Identity, now time.Time, b *cookieBudget) (sessionCheck, bool) {
	o := s.openWithin(kr, name, value, now, b)
	if o == nil || o.User != id.User.ID {
		return sessionCheck{}, false
	}
	if ri.rule.IgnoreCookie && id.Source == SourceJWT && !id.AuthTime.IsZero() && id.AuthTime.Unix() > o.AuthTime {
		return sessionCheck{}, false
	}
	return o.satisfies(ri, now)
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

// cookieCursor walks the "name=value" pairs of a request's Cookie header
// lines without parsing (or allocating) them.
type cookieCursor struct {
	lines []string
	line  string
}

// next is the next non-empty pair, spaces trimmed; false at the end.
func (c *cookieCursor) next() (string, bool) {
	for {
		if c.line == "" {
			if len(c.lines) == 0 {
				return "", false
			}
			c.line, c.lines = c.lines[0], c.lines[1:]
			continue
		}
		var part string
		if i := strings.IndexByte(c.line, ';'); i >= 0 {
			part, c.line = c.line[:i], c.line[i+1:]
		} else {
			part, c.line = c.line, ""
		}
		if part = strings.TrimSpace(part); part != "" {
			return part, true
		}
	}
}

// cookieValues finds the values of the cookies called name without
// parsing (or allocating) the others; it returns how many it put in out.
func cookieValues(r *http.Request, name string, out []string) int {
	n := 0
	c := cookieCursor{lines: r.Header["Cookie"]}
	for n < len(out) {
		part, ok := c.next()
		if !ok {
			break
		}
		if v, ok := cookiePart(part, name); ok {
			out[n] = v
			n++
		}
	}
	return n
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
	var b cookieBudget
	cur := cookieCursor{lines: r.Header["Cookie"]}
	for !b.spent() {
		part, ok := cur.next()
		if !ok {
			break
		}
		v, ok := cookiePart(part, name)
		if !ok {
			continue
		}
		old := s.openWithin(kr, name, v, now, &b)
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
