package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stepTimeout bounds one step of a walk in the browser.
const stepTimeout = 30 * time.Second

// Tab is the tab of a headless Chromium (NewBrowser) that a test walks
// through pages: every step has a deadline, and a step that fails ends the
// test with where the browser was and the start of the page it showed.
type Tab struct {
	t   testing.TB
	ctx context.Context
}

// NewTab starts a headless Chromium with a fresh profile for the test.
func NewTab(t testing.TB) *Tab { return &Tab{t: t, ctx: NewBrowser(t)} }

// Context is the tab's chromedp context (no deadline).
func (b *Tab) Context() context.Context { return b.ctx }

// Do runs actions; a failure ends the test, showing the page.
func (b *Tab) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		dctx, dcancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer dcancel()
		loc, _ := chromedp.Run(dctx, chromedp.Location())
		page, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`document.documentElement.outerHTML.slice(0, 4000)`))
		b.t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, page)
	}
}

// Run runs one action that returns a value; a failure ends the test.
func Run[T any](b *Tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// Text is the text of the first element matching css, trimmed.
func (b *Tab) Text(css string) string {
	b.t.Helper()
	return strings.TrimSpace(Run(b, "read "+css, chromedp.Text(chromedp.CSS(css))))
}

// Location is the URL of the page.
func (b *Tab) Location() string {
	b.t.Helper()
	return Run(b, "location", chromedp.Location())
}

// Has is true when an element of the page matches css.
func (b *Tab) Has(css string) bool {
	b.t.Helper()
	return Run(b, "look for "+css, chromedp.Evaluate[bool](`document.querySelector(`+jsString(css)+`) !== null`))
}

// Screenshot keeps the whole page as artifacts/e2e/NAME.
func (b *Tab) Screenshot(name string) {
	b.t.Helper()
	png := Run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	b.t.Logf("screenshot %s", SaveArtifact(b.t, name, png))
}

// EnrolTOTP goes through the challenge server's TOTP enrolment on the page
// the tab shows: it reads the QR code as a phone camera would (zbarimg),
// types the first code (oathtool), and continues past the recovery codes
// to the page it was sent back to. It returns the enrolled authenticator.
func (b *Tab) EnrolTOTP() *OTP {
	b.t.Helper()
	b.Do("the enrolment page", chromedp.WaitVisible(chromedp.CSS("img.qr")))
	qr := Run(b, "the QR code", chromedp.ScreenshotScale(chromedp.CSS("img.qr"), 2))
	otp := ParseOTPAuth(b.t, DecodeQR(b.t, qr))
	code, _ := otp.NextCode(b.t)
	b.Do("enter the first code",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`form button[type="submit"], form button`)),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	b.Do("continue past the recovery codes", chromedp.Click(chromedp.CSS(`form button`)))
	return otp
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
