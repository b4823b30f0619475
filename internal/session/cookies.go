package session

import (
	"net/http"
	"strings"
)

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

// CookieValues finds the values of the cookies called name without
// parsing (or allocating) the others; it returns how many it put in out.
func CookieValues(r *http.Request, name string, out []string) int {
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

// CookieValue is the first value of the cookie called name, "" if none.
func CookieValue(r *http.Request, name string) string {
	var v [1]string
	if CookieValues(r, name, v[:]) == 1 {
		return v[0]
	}
	return ""
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
