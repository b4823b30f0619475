//go:build e2e

package e2e

import (
	"context"
	"net/url"
	"testing"
	"time"

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

	browser := harness.NewBrowser(t)
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	run := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	screenshot := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		t.Logf("screenshot %s", harness.SaveArtifact(t, name, png))
	}
	phone := chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateScale(2), chromedp.EmulateMobile)
	desktop := chromedp.EmulateViewport(desktopWidth, desktopHeight)

	if err := harness.BasicLogin(browser, env.User, env.Password); err != nil {
		t.Fatal(err)
	}
	do("open the app", phone, chromedp.Navigate(env.URL+"/reports"), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	loc, err := url.Parse(run("location", chromedp.Location()))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Path).To(Equal("/challenge/apps/admin"))
	g.Expect(loc.Query().Get("rd")).To(Equal(env.URL + "/reports"))
	// The page opens at its heading (nothing takes the focus and scrolls
	// it away on load); the viewport as the user first sees it is kept.
	opensAtTop := func(name string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		y, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.scrollY`))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(y).To(BeZero(), "%s: the enrolment page opens scrolled to its top", name)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("screenshot %s", harness.SaveArtifact(t, name, png))
	}
	opensAtTop("enroll-top-375.png")
	screenshot("enroll-375.png")
	do("desktop width", desktop, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("img.qr")))
	opensAtTop("enroll-top-1280.png")
	screenshot("enroll-1280.png")
	do("phone width", phone)

	// The QR code as the page shows it, read like a phone camera would.
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	qr, err := chromedp.Run(ctx, chromedp.ScreenshotScale(chromedp.CSS("img.qr"), 2))
	cancel()
	g.Expect(err).NotTo(HaveOccurred())
	harness.SaveArtifact(t, "enroll-qr.png", qr)
	otp := harness.ParseOTPAuth(t, harness.DecodeQR(t, qr))
	g.Expect(otp.Account).To(Equal(env.User))
	g.Expect(otp.Issuer).To(Equal("Example Corp"))

	code, _ := otp.NextCode(t)
	do("enter the first code",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`form button[type="submit"], form button`)),
		chromedp.WaitVisible(chromedp.CSS("ol.codes")))
	screenshot("recovery-codes-375.png")
	ctx, cancel = context.WithTimeout(browser, 30*time.Second)
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("ol.codes li")].map(li => li.textContent.trim())`))
	cancel()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(codes)).To(BeNumerically(">=", 5))

	do("continue to the app",
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(run("app location", chromedp.Location())).To(Equal(env.URL + "/reports"))
	g.Expect(run("user", chromedp.Text(chromedp.CSS("#user")))).To(Equal(env.User))
	g.Expect(run("multifactor", chromedp.Text(chromedp.CSS("#multifactor")))).To(Equal("google-authenticator"))
	screenshot("app-375.png")

	// A new browser session of an enrolled user: the code form.
	if err := harness.ClearCookies(browser); err != nil {
		t.Fatal(err)
	}
	do("open the app again", chromedp.Navigate(env.URL+"/reports"), chromedp.WaitVisible(chromedp.CSS("#code")))
	ctx, cancel = context.WithTimeout(browser, 30*time.Second)
	hasQR, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("img.qr") !== null`))
	cancel()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hasQR).To(BeFalse(), "an enrolled user is asked for a code, not enrolled again")
	screenshot("verify-375.png")

	do("enter a wrong code",
		chromedp.SendKeys(chromedp.CSS("#code"), wrongCode(otp.CodeAt(t, otp.Last))),
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS(".alert")))
	screenshot("verify-error-375.png")

	code, _ = otp.NextCode(t)
	do("enter the next code",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.Click(chromedp.CSS(`form button`)),
		chromedp.WaitVisible(chromedp.CSS("#user")))
	g.Expect(run("user", chromedp.Text(chromedp.CSS("#user")))).To(Equal(env.User))
	g.Expect(run("multifactor", chromedp.Text(chromedp.CSS("#multifactor")))).To(Equal("google-authenticator"))
}

// wrongCode is a six-digit code that differs from code in every digit.
func wrongCode(code string) string {
	b := []byte(code)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+5)%10
	}
	return string(b)
}
