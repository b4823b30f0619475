//go:build e2e

package e2e

import (
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// Viewports of the screenshots: a phone and a desktop.
const (
	phoneWidth, phoneHeight     = 375, 812
	desktopWidth, desktopHeight = 1280, 900
)

// TestBrowserEnrolsAndVerifies goes through nginx to the challenge pages in
// a real Chromium: the QR code is read from the page's image with zbarimg,
// codes come from oathtool and are typed into the form, and screenshots of
// each page are kept under artifacts/e2e/.
func TestBrowserEnrolsAndVerifies(t *testing.T) {
	g := NewWithT(t)
	env := harness.Start(t, harness.Options{Policy: "apps/admin"})
	env.Apply(t, providerYAML)
	env.Apply(t, policyYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")

	tab := harness.NewTab(t)
	phone := chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(2), chromedp.EmulateMobile)
	desktop := chromedp.EmulateViewport(desktopWidth, desktopHeight)

	if err := harness.BasicLogin(tab.Context(), env.User, env.Password); err != nil {
		t.Fatal(err)
	}
	tab.Do("open the app", phone, chromedp.Navigate(env.URL+"/reports"), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	loc, err := url.Parse(tab.Location())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Path).To(Equal("/challenge/apps/admin"))
	g.Expect(loc.Query().Get("rd")).To(Equal(env.URL + "/reports"))
	// The page opens at its heading (nothing takes the focus and scrolls
	// it away on load); the viewport as the user first sees it is kept.
	opensAtTop := func(name string) {
		t.Helper()
		y := harness.Run(tab, "scroll position", chromedp.Evaluate[float64](`window.scrollY`))
		g.Expect(y).To(BeZero(), "%s: the enrolment page opens scrolled to its top", name)
		png := harness.Run(tab, "screenshot "+name, chromedp.CaptureScreenshot())
		t.Logf("screenshot %s", harness.SaveArtifact(t, name, png))
	}
	opensAtTop("enroll-top-375.png")
	tab.Screenshot("enroll-375.png")
	tab.Do("desktop width", desktop, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	opensAtTop("enroll-top-1280.png")
	tab.Screenshot("enroll-1280.png")
	tab.Do("phone width", phone)

	// The QR code as the page shows it, read like a phone camera would.
	qr := harness.Run(tab, "the QR code", chromedp.ScreenshotScale(chromedp.CSS("img.qr"), 2))
	harness.SaveArtifact(t, "enroll-qr.png", qr)
	otp := harness.ParseOTPAuth(t, harness.DecodeQR(t, qr))
	g.Expect(otp.Account).To(Equal(env.User))
	g.Expect(otp.Issuer).To(Equal("Example Corp"))

	code, _ := otp.NextCode(t)
	tab.Do("enter the first code",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`form button[type="submit"], form button`)),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	tab.Screenshot("recovery-codes-375.png")
	codes := harness.Run(tab, "the recovery codes", chromedp.Evaluate[[]string](`[...document.querySelectorAll("ol.codes li")].map(li => li.textContent.trim())`))
	g.Expect(len(codes)).To(BeNumerically(">=", 5))

	tab.Do("continue to the app",
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(tab.Location()).To(Equal(env.URL + "/reports"))
	g.Expect(tab.Text("#user")).To(Equal(env.User))
	g.Expect(tab.Text("#multifactor")).To(Equal("google-authenticator"))
	tab.Screenshot("app-375.png")

	// A new browser session of an enrolled user: the code form.
	if err := harness.ClearCookies(tab.Context()); err != nil {
		t.Fatal(err)
	}
	tab.Do("open the app again", chromedp.Navigate(env.URL+"/reports"), chromedp.WaitVisible(chromedp.CSS("#code")))
	g.Expect(tab.Has("img.qr")).To(BeFalse(), "an enrolled user is asked for a code, not enrolled again")
	tab.Screenshot("verify-375.png")

	tab.Do("enter a wrong code",
		chromedp.SendKeys(chromedp.CSS("#code"), wrongCode(otp.CodeAt(t, otp.Last))),
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS(".alert")))
	tab.Screenshot("verify-error-375.png")

	code, _ = otp.NextCode(t)
	tab.Do("enter the next code",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(tab.Text("#user")).To(Equal(env.User))
	g.Expect(tab.Text("#multifactor")).To(Equal("google-authenticator"))
}

// wrongCode is a six-digit code that differs from code in every digit.
func wrongCode(code string) string {
	b := []byte(code)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+5)%10
	}
	return string(b)
}
