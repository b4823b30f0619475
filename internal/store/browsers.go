package store

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Remembered browsers: the browsers a user chose to remember, recorded
// when the remembered-browser cookie is issued (never when it is checked),
// so that the user can see them on the Security page and sign one out.
// The cookie itself stays the proof; this record only lists it.

// MaxRememberedBrowsers bounds the browsers kept per enrolment: past it,
// the least recently issued are dropped.
const MaxRememberedBrowsers = 20

// maxUserAgent is the longest user agent kept, in characters.
const maxUserAgent = 120

// RememberedBrowser is one browser issued a remembered-browser cookie.
type RememberedBrowser struct {
	// ID is the browser id carried by its cookies.
	ID string `json:"id"`
	// Created is when the browser was first remembered; Issued when its
	// cookie was last issued (another factor answered there).
	Created time.Time `json:"created"`
	Issued  time.Time `json:"issued"`
	// Expires is when its remembered-browser cookie expires.
	Expires time.Time `json:"expires"`
	// UserAgent is the browser's User-Agent, shortened (ShortUserAgent).
	UserAgent string `json:"userAgent,omitempty"`
	// ClientIP is the client address the cookie was issued to.
	ClientIP string `json:"clientIP,omitempty"`
}

// RememberBrowser records b (by its ID: a browser already listed keeps its
// Created), drops the browsers whose cookies expired before now, and keeps
// the MaxRememberedBrowsers most recently issued.
func (e *Enrollment) RememberBrowser(b RememberedBrowser, now time.Time) {
	b.UserAgent = ShortUserAgent(b.UserAgent)
	if i := slices.IndexFunc(e.Browsers, func(x RememberedBrowser) bool { return x.ID == b.ID }); i >= 0 {
		b.Created = e.Browsers[i].Created
		e.Browsers = slices.Delete(e.Browsers, i, i+1)
	}
	e.Browsers = append(e.Browsers, b)
	e.PruneBrowsers(now)
	slices.SortStableFunc(e.Browsers, func(x, y RememberedBrowser) int { return y.Issued.Compare(x.Issued) })
	if len(e.Browsers) > MaxRememberedBrowsers {
		e.Browsers = e.Browsers[:MaxRememberedBrowsers]
	}
}

// PruneBrowsers drops the browsers whose cookies expired before now.
func (e *Enrollment) PruneBrowsers(now time.Time) {
	e.Browsers = slices.DeleteFunc(e.Browsers, func(x RememberedBrowser) bool { return !x.Expires.After(now) })
	if len(e.Browsers) == 0 {
		e.Browsers = nil
	}
}

// ForgetBrowsers drops the browsers for which drop is true.
func (e *Enrollment) ForgetBrowsers(drop func(b RememberedBrowser) bool) {
	e.Browsers = slices.DeleteFunc(e.Browsers, drop)
	if len(e.Browsers) == 0 {
		e.Browsers = nil
	}
}

// LiveBrowsers are the browsers whose cookies have not expired at now.
func (e *Enrollment) LiveBrowsers(now time.Time) []RememberedBrowser {
	var out []RememberedBrowser
	for _, b := range e.Browsers {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// ShortUserAgent is ua as kept: printable characters only, spaces
// collapsed, at most maxUserAgent characters.
func ShortUserAgent(ua string) string {
	if !utf8.ValidString(ua) {
		ua = strings.ToValidUTF8(ua, "")
	}
	ua = strings.Join(strings.FieldsFunc(ua, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if utf8.RuneCountInString(ua) > maxUserAgent {
		ua = string([]rune(ua)[:maxUserAgent-1]) + "…"
	}
	return ua
}
