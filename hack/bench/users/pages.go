package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/html"

	"github.com/mfa-operator/mfa-operator/internal/totp"
	"github.com/mfa-operator/mfa-operator/test/challengepage"
)

type pagesOptions struct {
	server               *url.URL
	policy, rd           string
	userHeader           string
	mode, prefix, seed   string
	from, count, workers int
	attempts             int
	webauthnEvery        int
	client               *http.Client
}

func pagesMain(args []string) error {
	fs := flag.NewFlagSet("pages", flag.ExitOnError)
	server := fs.String("server", "http://127.0.0.1:8080", "challenge server base URL")
	o := pagesOptions{}
	fs.StringVar(&o.policy, "policy", "apps/bench", "namespace/name of the MFAPolicy")
	fs.StringVar(&o.rd, "rd", "http://app.example.com/", "URL to be sent back to after the challenge")
	fs.StringVar(&o.userHeader, "user-header", "X-Auth-Request-Email", "identity header of the policy")
	fs.StringVar(&o.mode, "mode", "verify", "verify (enrolled users answer a valid code), enrol (new users enrol) or lockout (enrolled users send wrong codes)")
	fs.StringVar(&o.prefix, "prefix", "user-", "user id prefix (enrol: use one that populate did not)")
	fs.StringVar(&o.seed, "seed", defaultSeed, "seed of the users' TOTP secrets (as given to populate)")
	fs.IntVar(&o.from, "from", 0, "first user index")
	fs.IntVar(&o.count, "count", 1000, "users to drive (TOTP users only: WebAuthn ones are skipped)")
	fs.IntVar(&o.workers, "workers", 8, "concurrent browsers")
	fs.IntVar(&o.attempts, "attempts", 5, "lockout: wrong codes per user")
	fs.IntVar(&o.webauthnEvery, "webauthn-every", 10, "as given to populate: which users hold WebAuthn keys")
	_ = fs.Parse(args)

	u, err := url.Parse(*server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-server %q is not an absolute URL", *server)
	}
	o.server = u
	o.client = &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{MaxIdleConnsPerHost: o.workers, MaxIdleConns: o.workers},
	}
	var users []int
	for i := o.from; len(users) < o.count; i++ {
		if o.mode == "enrol" || !isWebAuthn(i, o.webauthnEvery) {
			users = append(users, i)
		}
	}
	var run func(context.Context, *browser, *stats) error
	switch o.mode {
	case "verify":
		run = verifyOnce
	case "enrol":
		run = enrolOnce
	case "lockout":
		run = lockoutOnce
	default:
		return fmt.Errorf("-mode %q: want verify, enrol or lockout", o.mode)
	}
	return drive(o, users, run)
}

// stats gathers the timings of one kind of request across browsers.
type stats struct {
	mu      sync.Mutex
	byKind  map[string]latencies
	status  map[string]map[int]int
	errs    atomic.Int64
	firstMu sync.Mutex
	first   error
}

func (s *stats) add(kind string, d time.Duration, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKind[kind] = append(s.byKind[kind], d)
	if s.status[kind] == nil {
		s.status[kind] = map[int]int{}
	}
	s.status[kind][status]++
}

func (s *stats) fail(err error) {
	s.errs.Add(1)
	s.firstMu.Lock()
	defer s.firstMu.Unlock()
	if s.first == nil {
		s.first = err
	}
}

func drive(o pagesOptions, users []int, run func(context.Context, *browser, *stats) error) error {
	st := &stats{byKind: map[string]latencies{}, status: map[string]map[int]int{}}
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for {
				j := int(next.Add(1) - 1)
				if j >= len(users) {
					return
				}
				b := newBrowser(&o, users[j])
				if err := run(context.Background(), b, st); err != nil {
					st.fail(fmt.Errorf("user %s: %w", b.user, err))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for kind, l := range st.byKind {
		result(o.mode+"-"+kind, "n", len(l), "p50_ms", ms(l.percentile(50)), "p99_ms", ms(l.percentile(99)),
			"max_ms", ms(l.percentile(100)), "status", statusList(st.status[kind]),
			"seconds", fmt.Sprintf("%.2f", elapsed.Seconds()), "per_s", fmt.Sprintf("%.1f", float64(len(l))/elapsed.Seconds()))
	}
	result(o.mode, "users", len(users), "workers", o.workers, "errors", st.errs.Load(), "seconds", fmt.Sprintf("%.2f", elapsed.Seconds()))
	if st.first != nil {
		return fmt.Errorf("%d users failed, the first: %w", st.errs.Load(), st.first)
	}
	return nil
}

func statusList(m map[int]int) string {
	var parts []string
	for _, code := range []int{200, 303, 422, 429, 500, 503} {
		if m[code] > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d", code, m[code]))
			delete(m, code)
		}
	}
	for code, n := range m {
		parts = append(parts, fmt.Sprintf("%d:%d", code, n))
	}
	return strings.Join(parts, ",")
}

// browser is one user's browser behind the front door: its cookies, and
// the headers the proxy adds (identity, client address).
type browser struct {
	o       *pagesOptions
	user    string
	ip      string
	cookies map[string]string
}

func newBrowser(o *pagesOptions, i int) *browser {
	// One address per user in 198.18.0.0/15, so the per-address form
	// limit does not mix users.
	ip := fmt.Sprintf("198.%d.%d.%d", 18+(i>>16)&1, (i>>8)&255, i&255)
	return &browser{o: o, user: userName(o.prefix, i), ip: ip, cookies: map[string]string{}}
}

func (b *browser) do(ctx context.Context, method string, u *url.URL, form url.Values) (*http.Response, []byte, time.Duration, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, nil, 0, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", b.o.server.Scheme+"://"+b.o.server.Host)
	}
	req.Header.Set(b.o.userHeader, b.user)
	req.Header.Set("X-Forwarded-For", b.ip)
	for name, value := range b.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	start := time.Now()
	resp, err := b.o.client.Do(req)
	if err != nil {
		return nil, nil, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	d := time.Since(start)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return resp, data, d, nil
}

// openForm opens the challenge and follows redirects and choice pages to
// the first page with a form; the last GET is timed as kind.
func (b *browser) openForm(ctx context.Context, st *stats, kind string) (*url.URL, *html.Node, challengepage.Form, error) {
	next := b.o.server.JoinPath("challenge", b.o.policy)
	next.RawQuery = url.Values{"rd": {b.o.rd}}.Encode()
	for range 4 {
		resp, body, d, err := b.do(ctx, http.MethodGet, next, nil)
		if err != nil {
			return nil, nil, challengepage.Form{}, err
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			if next, err = next.Parse(loc); err != nil {
				return nil, nil, challengepage.Form{}, err
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, nil, challengepage.Form{}, fmt.Errorf("GET %s answered %d: %s", next.Path, resp.StatusCode, challengepage.Snippet(body))
		}
		page, err := html.Parse(bytes.NewReader(body))
		if err != nil {
			return nil, nil, challengepage.Form{}, err
		}
		if f, ok := challengepage.FindForm(page); ok {
			st.add(kind, d, resp.StatusCode)
			return next, page, f, nil
		}
		href := challengepage.FirstChoice(page)
		if href == "" {
			return nil, nil, challengepage.Form{}, fmt.Errorf("page %s has neither a form nor a choice", next.Path)
		}
		if next, err = next.Parse(href); err != nil {
			return nil, nil, challengepage.Form{}, err
		}
	}
	return nil, nil, challengepage.Form{}, errors.New("no form after 4 pages")
}

// submit posts f with code and times it as kind.
func (b *browser) submit(ctx context.Context, st *stats, kind string, page *url.URL, f challengepage.Form, code string) (*http.Response, []byte, error) {
	target, err := page.Parse(f.Action)
	if err != nil {
		return nil, nil, err
	}
	fields := url.Values{}
	for k, v := range f.Fields {
		fields[k] = v
	}
	fields.Set("code", code)
	resp, body, d, err := b.do(ctx, http.MethodPost, target, fields)
	if err != nil {
		return nil, nil, err
	}
	st.add(kind, d, resp.StatusCode)
	return resp, body, nil
}

var benchParams = totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1}

// verifyOnce: an enrolled user opens the challenge and answers a valid
// code; the answer must send the browser back to rd.
func verifyOnce(ctx context.Context, b *browser, st *stats) error {
	page, doc, f, err := b.openForm(ctx, st, "page")
	if err != nil {
		return err
	}
	if challengepage.ShownKey(doc) != "" || !f.HasCode {
		return errors.New("the user is not enrolled: the challenge shows an enrolment page (run populate first)")
	}
	code, err := totp.Code(benchParams, secretOf(b.o.seed, b.user), time.Now())
	if err != nil {
		return err
	}
	resp, body, err := b.submit(ctx, st, "code", page, f, code)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != b.o.rd {
		return fmt.Errorf("a valid code answered %d (Location %q): %s", resp.StatusCode, resp.Header.Get("Location"), challengepage.Snippet(body))
	}
	return nil
}

// enrolOnce: a new user opens the enrolment page and confirms the key it
// shows with a first code; the answer is the recovery codes page.
func enrolOnce(ctx context.Context, b *browser, st *stats) error {
	page, doc, f, err := b.openForm(ctx, st, "page")
	if err != nil {
		return err
	}
	shown := challengepage.ShownKey(doc)
	if shown == "" || !f.HasCode {
		return errors.New("no enrolment page: is the user already enrolled?")
	}
	secret, err := totp.DecodeSecret(shown)
	if err != nil {
		return err
	}
	code, err := totp.Code(benchParams, secret, time.Now())
	if err != nil {
		return err
	}
	resp, body, err := b.submit(ctx, st, "confirm", page, f, code)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("recovery")) {
		return fmt.Errorf("confirming answered %d: %s", resp.StatusCode, challengepage.Snippet(body))
	}
	return nil
}

// lockoutOnce: an enrolled user sends -attempts wrong codes; each is
// refused (422, then 429 once locked out) and each counted failure is a
// write of the user's Secret.
func lockoutOnce(ctx context.Context, b *browser, st *stats) error {
	page, doc, f, err := b.openForm(ctx, st, "page")
	if err != nil {
		return err
	}
	if challengepage.ShownKey(doc) != "" || !f.HasCode {
		return errors.New("the user is not enrolled (run populate first)")
	}
	wrong, err := wrongCode(secretOf(b.o.seed, b.user), time.Now())
	if err != nil {
		return err
	}
	for range b.o.attempts {
		resp, body, err := b.submit(ctx, st, "wrong-code", page, f, wrong)
		if err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusUnprocessableEntity, http.StatusTooManyRequests:
		default:
			return fmt.Errorf("a wrong code answered %d: %s", resp.StatusCode, challengepage.Snippet(body))
		}
		// The refusal renders the form again, with a fresh token.
		if doc, err := html.Parse(bytes.NewReader(body)); err == nil {
			if nf, ok := challengepage.FindForm(doc); ok {
				f = nf
			}
		}
	}
	return nil
}

// wrongCode is a code no step within the skew (nor the next minute)
// accepts.
func wrongCode(secret []byte, now time.Time) (string, error) {
	valid := map[string]bool{}
	for s := -2; s <= 3; s++ {
		c, err := totp.Code(benchParams, secret, now.Add(time.Duration(s)*benchParams.Period))
		if err != nil {
			return "", err
		}
		valid[c] = true
	}
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", (n*7919+123456)%1000000)
		if !valid[c] {
			return c, nil
		}
	}
}
