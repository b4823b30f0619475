package harness

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Jar is a cookie jar that, unlike net/http/cookiejar, knows which cookies
// are session cookies, so a test can close the browser (DropSession) and
// read or forge cookies.
type Jar struct {
	mu      sync.Mutex
	cookies []*JarCookie
	now     func() time.Time
}

// JarCookie is a stored cookie.
type JarCookie struct {
	Name, Value string
	Domain      string // host, or the Domain attribute without a leading dot
	HostOnly    bool
	Path        string
	Secure      bool
	HttpOnly    bool
	SameSite    http.SameSite
	// Expires is zero for a session cookie.
	Expires time.Time
}

// Persistent is true when the cookie outlives the browser session.
func (c *JarCookie) Persistent() bool { return !c.Expires.IsZero() }

// NewJar returns an empty jar.
func NewJar() *Jar { return &Jar{now: time.Now} }

// SetCookies implements http.CookieJar.
func (j *Jar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	host := u.Hostname()
	for _, c := range cookies {
		jc := &JarCookie{Name: c.Name, Value: c.Value, Path: c.Path, Secure: c.Secure, HttpOnly: c.HttpOnly, SameSite: c.SameSite}
		if c.Domain != "" {
			d := strings.ToLower(strings.TrimPrefix(c.Domain, "."))
			if host != d && !strings.HasSuffix(host, "."+d) {
				continue // a browser refuses a cookie for another domain
			}
			jc.Domain = d
		} else {
			jc.Domain, jc.HostOnly = host, true
		}
		if jc.Path == "" || !strings.HasPrefix(jc.Path, "/") {
			jc.Path = defaultPath(u.Path)
		}
		switch {
		case c.MaxAge < 0:
			jc.Expires = time.Unix(1, 0)
		case c.MaxAge > 0:
			jc.Expires = j.now().Add(time.Duration(c.MaxAge) * time.Second)
		case !c.Expires.IsZero():
			jc.Expires = c.Expires
		}
		j.remove(jc.Name, jc.Domain, jc.Path)
		if jc.Persistent() && !jc.Expires.After(j.now()) {
			continue // deleted
		}
		j.cookies = append(j.cookies, jc)
	}
}

// Cookies implements http.CookieJar.
func (j *Jar) Cookies(u *url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	host := u.Hostname()
	var out []*http.Cookie
	for _, c := range j.cookies {
		if c.Persistent() && !c.Expires.After(j.now()) {
			continue
		}
		if c.HostOnly && host != c.Domain || !c.HostOnly && host != c.Domain && !strings.HasSuffix(host, "."+c.Domain) {
			continue
		}
		if !pathMatch(u.Path, c.Path) || c.Secure && u.Scheme != "https" {
			continue
		}
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

// All returns copies of the stored cookies.
func (j *Jar) All() []JarCookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]JarCookie, 0, len(j.cookies))
	for _, c := range j.cookies {
		out = append(out, *c)
	}
	return out
}

// Get returns the stored cookie with that name, if any.
func (j *Jar) Get(name string) (JarCookie, bool) {
	for _, c := range j.All() {
		if c.Name == name {
			return c, true
		}
	}
	return JarCookie{}, false
}

// Put stores a cookie as if the server had set it (forged cookies, cookies
// copied from another browser).
func (j *Jar) Put(c JarCookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.remove(c.Name, c.Domain, c.Path)
	cc := c
	j.cookies = append(j.cookies, &cc)
}

// Delete removes every cookie with that name.
func (j *Jar) Delete(name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	kept := j.cookies[:0]
	for _, c := range j.cookies {
		if c.Name != name {
			kept = append(kept, c)
		}
	}
	j.cookies = kept
}

// DropSession forgets the session cookies, as closing a browser does.
func (j *Jar) DropSession() {
	j.mu.Lock()
	defer j.mu.Unlock()
	kept := j.cookies[:0]
	for _, c := range j.cookies {
		if c.Persistent() {
			kept = append(kept, c)
		}
	}
	j.cookies = kept
}

func (j *Jar) remove(name, domain, path string) {
	kept := j.cookies[:0]
	for _, c := range j.cookies {
		if !(c.Name == name && c.Domain == domain && c.Path == path) {
			kept = append(kept, c)
		}
	}
	j.cookies = kept
}

func defaultPath(p string) string {
	if p == "" || p[0] != '/' {
		return "/"
	}
	i := strings.LastIndex(p, "/")
	if i == 0 {
		return "/"
	}
	return p[:i]
}

func pathMatch(reqPath, cookiePath string) bool {
	if reqPath == "" {
		reqPath = "/"
	}
	if reqPath == cookiePath {
		return true
	}
	if strings.HasPrefix(reqPath, cookiePath) {
		return strings.HasSuffix(cookiePath, "/") || reqPath[len(cookiePath)] == '/'
	}
	return false
}
