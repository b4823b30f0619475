// Package challengepage reads the challenge server's HTML pages for the
// benchmark clients and the end-to-end harness: the first POST form (its
// action, hidden fields and code field), the TOTP key an enrolment page
// shows, the choices of a page that lists providers, and the element
// helpers they are built on.
package challengepage

import (
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Form is the first POST form of a page.
type Form struct {
	Action string
	// Fields are its named inputs but the code, with their values
	// (the CSRF token, rd, provider).
	Fields url.Values
	// HasCode: the form asks for a code, of Digits digits.
	HasCode bool
	Digits  int
}

// FindForm returns the first POST form of page.
func FindForm(page *html.Node) (Form, bool) {
	form := Find(page, func(n *html.Node) bool {
		return n.DataAtom == atom.Form && strings.EqualFold(Attr(n, "method"), "post")
	})
	if form == nil {
		return Form{}, false
	}
	f := Form{Action: Attr(form, "action"), Fields: url.Values{}, Digits: 6}
	Walk(form, func(n *html.Node) {
		if n.DataAtom != atom.Input || Attr(n, "name") == "" {
			return
		}
		name := Attr(n, "name")
		if name == "code" {
			f.HasCode = true
			if d, err := strconv.Atoi(Attr(n, "maxlength")); err == nil && d > 0 {
				f.Digits = d
			}
			return
		}
		f.Fields.Set(name, Attr(n, "value"))
	})
	return f, true
}

// ShownKey is the TOTP key an enrolment page shows for manual entry
// (base32, upper case, no spaces); "" on other pages.
func ShownKey(page *html.Node) string {
	n := Find(page, func(n *html.Node) bool { return n.DataAtom == atom.Code && Attr(n, "id") == "secret-key" })
	if n == nil {
		return ""
	}
	return strings.ToUpper(strings.Join(strings.Fields(Text(n)), ""))
}

// FirstChoice is the first link of a page that lists choices; "" if none.
func FirstChoice(page *html.Node) string {
	list := Find(page, func(n *html.Node) bool { return n.DataAtom == atom.Ul && strings.Contains(Attr(n, "class"), "choices") })
	if list == nil {
		return ""
	}
	a := Find(list, func(n *html.Node) bool { return n.DataAtom == atom.A })
	if a == nil {
		return ""
	}
	return Attr(a, "href")
}

// Find returns the first element under n (n included) that matches.
func Find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := Find(c, match); f != nil {
			return f
		}
	}
	return nil
}

// Walk visits every element under n (n included).
func Walk(n *html.Node, visit func(*html.Node)) {
	if n.Type == html.ElementNode {
		visit(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		Walk(c, visit)
	}
}

// Attr is n's attribute key, "" when absent.
func Attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// Text is the text under n.
func Text(n *html.Node) string {
	var sb strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return sb.String()
}

// Snippet is body on one line, cut at 300 characters, for error messages.
func Snippet(body []byte) string {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
