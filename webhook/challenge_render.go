package webhook

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html templates/style.css templates/webauthn.js
var templateFS embed.FS

// Templates of the challenge pages, one set per page: the shared layout
// plus the page's "content".
const (
	pageEnroll        = "enroll.html"
	pageVerify        = "verify.html"
	pageRecovery      = "recovery.html"
	pageRecoveryCodes = "recovery_codes.html"
	pageChoose        = "choose.html"
	pageMessage       = "message.html"
	pageWebAuthn      = "webauthn.html"
)

var challengeTemplates = mustParseTemplates()

func mustParseTemplates() map[string]*template.Template {
	css, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		panic(err)
	}
	base := template.Must(template.New("base").ParseFS(templateFS, "templates/layout.html", "templates/choices_link.html"))
	// The style sheet is template text, not data: it is trusted as written.
	template.Must(base.New("css").Parse(string(css)))
	js, err := templateFS.ReadFile("templates/webauthn.js")
	if err != nil {
		panic(err)
	}
	// The WebAuthn script is template text too: trusted as written, and
	// only ever run with the page's nonce.
	template.Must(base.New("webauthn-js").Parse(string(js)))
	pages := map[string]*template.Template{}
	for _, name := range append([]string{pageEnroll, pageVerify, pageRecovery, pageRecoveryCodes, pageChoose, pageMessage, pageSecurity, pageWebAuthn}, duoTemplateNames...) {
		t := template.Must(base.Clone())
		pages[name] = template.Must(t.ParseFS(templateFS, "templates/"+name))
	}
	return pages
}

// page is what a template sees. One type for every page keeps the shared
// layout simple; each page uses its own fields.
type page struct {
	Title   string
	AppHost string
	User    string
	Nonce   string

	// Forms.
	Action   string
	CSRF     string
	RD       string
	Provider string
	Error    string

	// TOTP pages.
	Issuer          string
	AccountName     string
	Digits          int
	PeriodSeconds   int
	Algorithm       string
	QR              template.URL
	OTPAuthURL      template.URL
	KeyGroups       string
	RecoveryURL     string
	CodeURL         string
	ChooseURL       string
	RecoveryExample string

	// Recovery codes, shown once.
	Codes         []string
	CodesFile     template.URL
	CodesFileName string

	// Provider choice.
	Choices []choice

	// Duo pages (challenge_duo.go).
	Duo *duoView

	// The Security page (security.go).
	Security *securityView
	// WebAuthn page (challenge_webauthn.go); Script allows its script.
	WebAuthn *webAuthnView
	Script   bool
	// Notice is the recovery codes page's first line.
	Notice string

	// Message page.
	Alert       bool
	Message     string
	Details     []string
	ActionURL   string
	ActionLabel string
	BackURL     string
	BackLabel   string
}

// choice is one provider the user may pick.
type choice struct {
	URL    string
	Label  string
	Detail string
}

// render writes a page with the headers every challenge page carries: no
// caching (they hold secrets and one-time codes), no framing, a content
// security policy that allows the inline style sheet (by nonce), data:
// images (the QR code) and forms posting to this server, and nothing else.
// formTarget, when set, is the origin a form's redirect may lead to.
func (k *pageKit) render(w http.ResponseWriter, status int, name string, p *page, formTarget string) {
	p.Nonce = newNonce()
	var buf bytes.Buffer
	if err := challengeTemplates[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		// Only a programming error gets here; the page is not half-written.
		k.log.Error("rendering a challenge page", "page", name, "error", err)
		http.Error(w, "The page could not be shown. Try again.", http.StatusServiceUnavailable)
		return
	}
	formAction := "'self'"
	if formTarget != "" {
		formAction += " " + formTarget
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	script := ""
	if p.Script {
		script = "script-src 'nonce-" + p.Nonce + "'; "
	}
	h.Set("Content-Security-Policy", "default-src 'none'; "+script+"style-src 'nonce-"+p.Nonce+"'; img-src data:; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// message is a page that explains something and offers a way on.
type message struct {
	status  int
	title   string
	text    string
	alert   bool
	details []string
	// action is the main link (e.g. back to the app); back a secondary one.
	actionURL, actionLabel string
	backURL, backLabel     string
	retryAfter             time.Duration
}

func (k *pageKit) renderMessage(w http.ResponseWriter, cr *challengeRequest, m message) {
	p := &page{
		Title:       m.title,
		Alert:       m.alert,
		Message:     m.text,
		Details:     m.details,
		ActionURL:   m.actionURL,
		ActionLabel: m.actionLabel,
		BackURL:     m.backURL,
		BackLabel:   m.backLabel,
	}
	if cr != nil {
		p.AppHost, p.User = cr.appHost, cr.userLabel()
	}
	if m.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((m.retryAfter+time.Second-1)/time.Second)))
	}
	k.render(w, m.status, pageMessage, p, "")
}

// groupKey writes a base32 key in groups of four for reading aloud or
// typing.
func groupKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(key[i:min(i+4, len(key))])
	}
	return b.String()
}

// pngDataURI is a PNG as a data: URI for an <img>.
func pngDataURI(png []byte) template.URL {
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
}

// textDataURI is a text file as a data: URI for a download link.
func textDataURI(text string) template.URL {
	return template.URL("data:text/plain;charset=utf-8," + url.PathEscape(text))
}

// originOf returns scheme://host of an absolute URL, "" otherwise.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
