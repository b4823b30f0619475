// Command enroll obtains a real remembered-browser cookie for the /auth
// benchmark: it goes through the challenge pages of a running challenge
// server the way a browser behind the front door would (identity header
// set by the proxy, cookies kept), enrols a TOTP authenticator with the key
// the page shows (cross-checked against the QR code with zbarimg when it is
// installed), answers with a code from oathtool, and prints the cookie the
// server set, as NAME=VALUE.
//
//	enroll -server http://127.0.0.1:8080 -policy apps/bench -user ana@example.com -rd http://app.example.com/
package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/mfa-operator/mfa-operator/test/challengepage"
)

type options struct {
	server     *url.URL
	policy     string
	user       string
	userHeader string
	clientIP   string
	rd         string
	cookie     string
	verbose    bool
}

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "challenge server base URL")
	pol := flag.String("policy", "apps/bench", "namespace/name of the MFAPolicy")
	user := flag.String("user", "bench@example.com", "user the first-factor proxy vouches for")
	userHeader := flag.String("user-header", "X-Auth-Request-Email", "identity header of the policy")
	rd := flag.String("rd", "http://app.example.com/", "URL to be sent back to after the challenge")
	cookie := flag.String("cookie", "mfa_remember", "cookie to print")
	clientIP := flag.String("client-ip", "192.0.2.10", "browser address the proxy forwards (X-Forwarded-For)")
	verbose := flag.Bool("v", false, "log every step on stderr")
	flag.Parse()

	u, err := url.Parse(*server)
	if err != nil || u.Host == "" {
		fail(fmt.Errorf("-server %q is not an absolute URL", *server))
	}
	if u.Path == "" {
		u.Path = "/"
	}
	o := &options{server: u, policy: *pol, user: *user, userHeader: *userHeader, clientIP: *clientIP, rd: *rd, cookie: *cookie, verbose: *verbose}
	value, err := run(o)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%s=%s\n", o.cookie, value)
}

// browser keeps the cookies the challenge server sets, by name.
type browser struct {
	o       *options
	client  *http.Client
	cookies map[string]string
	// secret is the TOTP key read from the enrolment page.
	secret    []byte
	algorithm string
	period    int
}

func run(o *options) (string, error) {
	b := &browser{
		o: o,
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cookies:   map[string]string{},
		algorithm: "SHA1",
		period:    30,
	}
	next := o.server.JoinPath("challenge", o.policy)
	next.RawQuery = url.Values{"rd": {o.rd}}.Encode()
	method, form := http.MethodGet, url.Values(nil)

	for step := 1; step <= 12; step++ {
		resp, body, err := b.do(method, next, form)
		if err != nil {
			return "", err
		}
		b.logf("step %d: %s %s -> %d", step, method, next.Path, resp.StatusCode)
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			target, err := next.Parse(loc)
			if err != nil {
				return "", fmt.Errorf("step %d: bad Location %q: %w", step, loc, err)
			}
			if target.Host != o.server.Host {
				// Sent back to the app: the challenge is over.
				v, ok := b.cookies[o.cookie]
				if !ok {
					return "", fmt.Errorf("sent back to %s but no %s cookie was set (cookies: %s)", target, o.cookie, b.cookieNames())
				}
				return v, nil
			}
			next, method, form = target, http.MethodGet, nil
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("step %d: %s %s answered %d: %s", step, method, next, resp.StatusCode, challengepage.Snippet(body))
		}
		page, err := html.Parse(bytes.NewReader(body))
		if err != nil {
			return "", fmt.Errorf("step %d: parsing the page: %w", step, err)
		}
		if err := b.readEnrolment(page); err != nil {
			return "", fmt.Errorf("step %d: %w", step, err)
		}
		f, ok := challengepage.FindForm(page)
		action, fields, hasCode, digits := f.Action, f.Fields, f.HasCode, f.Digits
		if !ok {
			// A page that only offers choices: take the first.
			href := challengepage.FirstChoice(page)
			if href == "" {
				return "", fmt.Errorf("step %d: page %s has neither a form nor a choice: %s", step, next.Path, challengepage.Snippet(body))
			}
			target, err := next.Parse(href)
			if err != nil {
				return "", err
			}
			next, method, form = target, http.MethodGet, nil
			continue
		}
		if hasCode {
			if b.secret == nil {
				return "", fmt.Errorf("step %d: the page asks for a code but no key was shown (already enrolled? start with an empty data dir)", step)
			}
			code, err := b.code(digits)
			if err != nil {
				return "", err
			}
			fields.Set("code", code)
		}
		target, err := next.Parse(action)
		if err != nil {
			return "", err
		}
		next, method, form = target, http.MethodPost, fields
	}
	return "", errors.New("no redirect back to the app after 12 steps")
}

func (b *browser) do(method string, u *url.URL, form url.Values) (*http.Response, []byte, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		return nil, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.o.server.Scheme+"://"+b.o.server.Host)
	}
	// What the front door adds to every request it passes on.
	req.Header.Set(b.o.userHeader, b.o.user)
	if b.o.clientIP != "" {
		req.Header.Set("X-Forwarded-For", b.o.clientIP)
	}
	for name, value := range b.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return resp, data, nil
}

// readEnrolment takes the TOTP key from an enrolment page: the key shown
// for manual entry and, when zbarimg is installed, the QR code, which must
// agree with it and gives the algorithm and period.
func (b *browser) readEnrolment(page *html.Node) error {
	shown := challengepage.ShownKey(page)
	if shown == "" {
		if challengepage.Find(page, func(n *html.Node) bool { return n.DataAtom == atom.Code && challengepage.Attr(n, "id") == "secret-key" }) != nil {
			return errors.New("the enrolment page shows an empty key")
		}
		return nil
	}
	b.secret = []byte(shown)
	qr := challengepage.Find(page, func(n *html.Node) bool {
		return n.DataAtom == atom.Img && strings.Contains(challengepage.Attr(n, "class"), "qr")
	})
	if qr == nil {
		return nil
	}
	if _, err := exec.LookPath("zbarimg"); err != nil {
		b.logf("zbarimg not installed: using the key shown on the page")
		return nil
	}
	otpauth, err := decodeQR(challengepage.Attr(qr, "src"))
	if err != nil {
		return err
	}
	u, err := url.Parse(otpauth)
	if err != nil || u.Scheme != "otpauth" {
		return fmt.Errorf("the QR code holds %q, not an otpauth:// URI", otpauth)
	}
	q := u.Query()
	if !strings.EqualFold(strings.TrimRight(q.Get("secret"), "="), strings.TrimRight(shown, "=")) {
		return errors.New("the QR code and the key shown on the page differ")
	}
	if a := q.Get("algorithm"); a != "" {
		b.algorithm = strings.ToUpper(a)
	}
	if p, err := strconv.Atoi(q.Get("period")); err == nil && p > 0 {
		b.period = p
	}
	b.logf("QR code matches the key shown (%s, %ds)", b.algorithm, b.period)
	return nil
}

// decodeQR reads a data: URI image with zbarimg.
func decodeQR(src string) (string, error) {
	comma := strings.IndexByte(src, ',')
	if !strings.HasPrefix(src, "data:image/") || !strings.Contains(src[:max(comma, 0)], ";base64") {
		return "", fmt.Errorf("the QR code is not a base64 data: image (%.40s...)", src)
	}
	img, err := base64.StdEncoding.DecodeString(src[comma+1:])
	if err != nil {
		return "", fmt.Errorf("decoding the QR image: %w", err)
	}
	f, err := os.CreateTemp("", "enroll-qr-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(img); err != nil {
		f.Close()
		return "", err
	}
	f.Close()
	out, err := exec.Command("zbarimg", "--quiet", "--raw", f.Name()).Output()
	if err != nil {
		return "", fmt.Errorf("zbarimg could not read the QR code: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// code asks oathtool for the current code.
func (b *browser) code(digits int) (string, error) {
	out, err := exec.Command("oathtool", "--totp="+b.algorithm, "--base32",
		"--digits="+strconv.Itoa(digits), "--time-step-size="+strconv.Itoa(b.period)+"s",
		string(b.secret)).Output()
	if err != nil {
		return "", fmt.Errorf("oathtool: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (b *browser) cookieNames() string {
	names := make([]string, 0, len(b.cookies))
	for n := range b.cookies {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (b *browser) logf(format string, args ...any) {
	if b.o.verbose {
		fmt.Fprintf(os.Stderr, "enroll: "+format+"\n", args...)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "enroll: %v\n", err)
	os.Exit(1)
}
