package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/mfa-operator/mfa-operator/test/challengepage"
)

// Client goes through nginx as a browser would: a cookie jar, the
// first-factor (basic) login on every request to the demo host, and
// *.localhost resolved to 127.0.0.1 as browsers and curl do.
type Client struct {
	env            *Env
	User, Password string
	Jar            *Jar
	follow         *http.Client
	noFollow       *http.Client
}

// NewClient returns a client logged in upstream as user; an empty user
// sends no first-factor login.
func (e *Env) NewClient(user, password string) *Client {
	c := &Client{env: e, User: user, Password: password, Jar: NewJar()}
	tr := &http.Transport{
		DialContext:       dialLocalhost,
		DisableKeepAlives: false,
		MaxIdleConns:      8,
		IdleConnTimeout:   30 * time.Second,
	}
	rt := &basicAuthTransport{c: c, next: tr}
	c.follow = &http.Client{Transport: rt, Jar: c.Jar, Timeout: 30 * time.Second}
	c.noFollow = &http.Client{Transport: rt, Jar: c.Jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

// dialLocalhost resolves localhost and *.localhost to 127.0.0.1 (RFC 6761),
// which Go's resolver does not do by itself.
func dialLocalhost(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

type basicAuthTransport struct {
	c    *Client
	next http.RoundTripper
}

func (b *basicAuthTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.c.User != "" && r.URL.Host == b.c.env.Host && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.SetBasicAuth(b.c.User, b.c.Password)
	}
	return b.next.RoundTrip(r)
}

// Page is an answer: its status, final URL, headers and body.
type Page struct {
	Status int
	URL    *url.URL
	Header http.Header
	Body   string
	// Via lists the URLs redirected through, in order.
	Via []string
}

// Get follows redirects, as a browser does.
func (c *Client) Get(t testing.TB, rawURL string) *Page {
	t.Helper()
	return c.Do(t, c.request(t, http.MethodGet, rawURL, nil, ""), true)
}

// GetNoRedirect returns the first answer, redirect or not.
func (c *Client) GetNoRedirect(t testing.TB, rawURL string) *Page {
	t.Helper()
	return c.Do(t, c.request(t, http.MethodGet, rawURL, nil, ""), false)
}

// GetJSON gets rawURL asking for JSON and decodes a 200 answer into v.
func (c *Client) GetJSON(t testing.TB, rawURL string, v any) *Page {
	t.Helper()
	req := c.request(t, http.MethodGet, rawURL, nil, "")
	req.Header.Set("Accept", "application/json")
	p := c.Do(t, req, false)
	if p.Status == http.StatusOK {
		if err := json.Unmarshal([]byte(p.Body), v); err != nil {
			t.Fatalf("GET %s: not JSON: %v\n%s", rawURL, err, p.Body)
		}
	}
	return p
}

// PostForm posts a form and follows redirects.
func (c *Client) PostForm(t testing.TB, rawURL string, values url.Values) *Page {
	t.Helper()
	req := c.request(t, http.MethodPost, rawURL, strings.NewReader(values.Encode()), "application/x-www-form-urlencoded")
	return c.Do(t, req, true)
}

func (c *Client) request(t testing.TB, method, rawURL string, body io.Reader, contentType string) *http.Request {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = c.env.URL + rawURL
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// Do sends req, following redirects when follow is true.
func (c *Client) Do(t testing.TB, req *http.Request, follow bool) *Page {
	t.Helper()
	hc := c.noFollow
	if follow {
		hc = c.follow
	}
	var via []string
	if follow {
		hc = &http.Client{Transport: c.follow.Transport, Jar: c.Jar, Timeout: c.follow.Timeout,
			CheckRedirect: func(r *http.Request, prev []*http.Request) error {
				if len(prev) >= 10 {
					return errors.New("stopped after 10 redirects")
				}
				via = append(via, r.URL.String())
				return nil
			}}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return &Page{Status: resp.StatusCode, URL: resp.Request.URL, Header: resp.Header, Body: string(b), Via: via}
}

// Location is the redirect target of the answer, resolved against its URL.
func (p *Page) Location() string {
	l := p.Header.Get("Location")
	if l == "" {
		return ""
	}
	u, err := p.URL.Parse(l)
	if err != nil {
		return l
	}
	return u.String()
}

// Form is an HTML form of a page.
type Form struct {
	Action string // absolute
	Method string
	Fields url.Values // hidden and pre-filled fields
}

// Values are the form's fields with values set over them, as a browser
// submits it.
func (f Form) Values(values map[string]string) url.Values {
	v := url.Values{}
	for k, vs := range f.Fields {
		v[k] = append([]string(nil), vs...)
	}
	for k, s := range values {
		v.Set(k, s)
	}
	return v
}

// Forms returns the forms of the page.
func (p *Page) Forms() []Form {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return nil
	}
	var forms []Form
	var cur *Form
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				action := challengepage.Attr(n, "action")
				u, err := p.URL.Parse(action)
				if err == nil {
					action = u.String()
				}
				method := strings.ToUpper(challengepage.Attr(n, "method"))
				if method == "" {
					method = http.MethodGet
				}
				forms = append(forms, Form{Action: action, Method: method, Fields: url.Values{}})
				cur = &forms[len(forms)-1]
				for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
					walk(ch)
				}
				cur = nil
				return
			case "input":
				if cur != nil && challengepage.Attr(n, "name") != "" {
					cur.Fields.Set(challengepage.Attr(n, "name"), challengepage.Attr(n, "value"))
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	return forms
}

// FormWith returns the first form with a field of that name.
func (p *Page) FormWith(t testing.TB, field string) Form {
	t.Helper()
	for _, f := range p.Forms() {
		if _, ok := f.Fields[field]; ok {
			return f
		}
	}
	t.Fatalf("no form with a %q field on %s (status %d):\n%s", field, p.URL, p.Status, p.Body)
	return Form{}
}

// Submit posts a form with its fields, overridden by values, and follows
// redirects.
func (c *Client) Submit(t testing.TB, f Form, values map[string]string) *Page {
	t.Helper()
	v := f.Values(values)
	if f.Method == http.MethodGet {
		u, err := url.Parse(f.Action)
		if err != nil {
			t.Fatal(err)
		}
		u.RawQuery = v.Encode()
		return c.Get(t, u.String())
	}
	return c.PostForm(t, f.Action, v)
}

// Find returns the attribute of the first element matching tag and class
// (class may be empty), or "" when there is none.
func (p *Page) Find(tag, class, attribute string) string {
	n := p.find(tag, class)
	if n == nil {
		return ""
	}
	return challengepage.Attr(n, attribute)
}

// Link returns the address (resolved against the page) of the first link
// whose text contains substr, or "" when there is none.
func (p *Page) Link(substr string) string {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return ""
	}
	a := challengepage.Find(doc, func(n *html.Node) bool {
		return n.Data == "a" && strings.Contains(challengepage.Text(n), substr)
	})
	if a == nil {
		return ""
	}
	href := challengepage.Attr(a, "href")
	if u, err := p.URL.Parse(href); err == nil {
		href = u.String()
	}
	return href
}

// Has is true when the page has an element tag with that class (any
// element tag when class is empty).
func (p *Page) Has(tag, class string) bool { return p.find(tag, class) != nil }

// Text returns the text of the first element tag with that class.
func (p *Page) Text(tag, class string) string {
	n := p.find(tag, class)
	if n == nil {
		return ""
	}
	return strings.TrimSpace(challengepage.Text(n))
}

// Texts returns the text of every element tag inside the first element
// matching parentTag/parentClass (e.g. the recovery codes: ol.codes > li).
func (p *Page) Texts(parentTag, parentClass, tag string) []string {
	parent := p.find(parentTag, parentClass)
	if parent == nil {
		return nil
	}
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, strings.TrimSpace(challengepage.Text(n)))
			return
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(parent)
	return out
}

func (p *Page) find(tag, class string) *html.Node {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return nil
	}
	return challengepage.Find(doc, func(n *html.Node) bool {
		return n.Data == tag && (class == "" || hasClass(n, class))
	})
}

// Image returns the bytes of an image the page shows: a data: URI, or a
// URL fetched with the client's cookies.
func (c *Client) Image(t testing.TB, p *Page, src string) []byte {
	t.Helper()
	if src == "" {
		t.Fatalf("no image source on %s:\n%s", p.URL, p.Body)
	}
	if strings.HasPrefix(src, "data:") {
		meta, data, ok := strings.Cut(strings.TrimPrefix(src, "data:"), ",")
		if !ok || !strings.HasSuffix(meta, ";base64") {
			t.Fatalf("unexpected data URI %.40q", src)
		}
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatalf("decoding the data URI: %v", err)
		}
		return b
	}
	u, err := p.URL.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	img := c.GetNoRedirect(t, u.String())
	if img.Status != http.StatusOK {
		t.Fatalf("GET %s: %d", u, img.Status)
	}
	return []byte(img.Body)
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(challengepage.Attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}
