package webhook

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

const (
	uaFirefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
	uaChromeMac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
	uaChromeAndroid = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"
)

// browserIDOn is the id of the browser labelled label on the last
// Security page ("" when it has no sign-out form).
func (b *browser) browserIDOn(label string) string {
	re := regexp.MustCompile(`name="browser" value="([0-9a-f]+)"`)
	for _, item := range strings.Split(b.last, "</li>") {
		if !strings.Contains(item, "<strong>"+label+"</strong>") {
			continue
		}
		if m := re.FindStringSubmatch(item); m != nil {
			return m[1]
		}
	}
	return ""
}

// signOutBrowser posts the Security page's sign-out form for browser id.
func (b *browser) signOutBrowser(id string) *httptest.ResponseRecorder {
	b.f.t.Helper()
	form := b.form(securityPage + "/signout") // csrf, rd, provider
	form.Set(paramBrowser, id)
	return b.post(securityPage+"/signout-browser", form)
}

// verifyIn signs b in with a fresh code of o, some time later.
func (b *browser) verifyIn(o otpauth) {
	b.f.t.Helper()
	b.f.clock.Advance(2 * time.Minute) // a time step not used yet
	b.get(challengeURL(challengeRD))
	NewWithT(b.f.t).Expect(b.submit("/verify", url.Values{"code": {b.f.code(o, b.f.clock.Now())}}).Code).To(Equal(http.StatusSeeOther), b.last)
}

func TestSecurityPageListsRememberedBrowsersAndSignsOutOne(t *testing.T) {
	g := NewWithT(t)
	f, reload := newSecurityFixture(t)
	buf := withJSONAudit(f)
	desk := f.browser(challengeUser)
	desk.userAgent = uaFirefoxLinux
	o, _ := desk.enrol()
	laptop := f.browser(challengeUser)
	laptop.userAgent = uaChromeMac
	laptop.verifyIn(o)
	phone := f.browser(challengeUser)
	phone.userAgent = uaChromeAndroid
	phone.verifyIn(o)
	bob := f.browser("bob@example.com")
	bob.enrol()

	e, err := f.st.Get(context.Background(), store.Key{Provider: "apps/google-authenticator", User: challengeUser})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.Browsers).To(HaveLen(3), "one record per remembered browser, written when remembered")
	g.Expect(e.Browsers[0].ClientIP).To(Equal(f.clientIP))

	desk.verifyIn(o) // the step-up; the same browser keeps its id
	e, _ = f.st.Get(context.Background(), store.Key{Provider: "apps/google-authenticator", User: challengeUser})
	g.Expect(e.Browsers).To(HaveLen(3))

	w := desk.get(securityPage)
	g.Expect(w.Code).To(Equal(http.StatusOK), desk.last)
	page := html.UnescapeString(desk.last)
	g.Expect(page).To(ContainSubstring("<strong>Firefox on Linux</strong> — this browser"))
	g.Expect(page).To(ContainSubstring("<strong>Chrome on macOS</strong>"))
	g.Expect(page).To(ContainSubstring("<strong>Chrome on Android</strong>"))
	g.Expect(page).To(ContainSubstring("from " + f.clientIP))
	g.Expect(desk.browserIDOn("Firefox on Linux")).To(BeEmpty(), "no sign-out form for this browser")
	laptopID := desk.browserIDOn("Chrome on macOS")
	g.Expect(laptopID).To(MatchRegexp(`^[0-9a-f]{32}$`))
	g.Expect(w.Header().Get("Content-Security-Policy")).To(MatchRegexp(`style-src 'nonce-[A-Za-z0-9_-]+'`))

	// Without the form token, nothing happens.
	bad := url.Values{"rd": {"https://auth.example.com" + securityPage}, paramBrowser: {laptopID}}
	g.Expect(desk.post(securityPage+"/signout-browser", bad).Code).To(Equal(http.StatusForbidden))
	desk.get(securityPage)

	w = desk.signOutBrowser(laptopID)
	g.Expect(w.Code).To(Equal(http.StatusOK), desk.last)
	g.Expect(desk.last).To(ContainSubstring("Chrome on macOS is signed out"))
	g.Expect(desk.last).NotTo(ContainSubstring("<strong>Chrome on macOS</strong>"), "no longer listed")
	reload()
	g.Expect(authStatus(laptop)).To(Equal(http.StatusUnauthorized), "the browser signed out")
	g.Expect(authStatus(phone)).To(Equal(http.StatusOK), "the user's other browsers stay signed in")
	g.Expect(authStatus(desk)).To(Equal(http.StatusOK), "this browser too")
	g.Expect(authStatus(bob)).To(Equal(http.StatusOK), "and other users")

	lines := auditLines(t, buf.String())
	last := lines[len(lines)-1]
	g.Expect(last).To(HaveKeyWithValue("event", audit.EventBrowserRevocation))
	g.Expect(last).To(HaveKeyWithValue("user", challengeUser))
	g.Expect(last).To(HaveKeyWithValue("outcome", audit.OutcomeSuccess))
	g.Expect(last).To(HaveKeyWithValue("client_ip", f.clientIP))
	g.Expect(last["reason"]).To(ContainSubstring("Chrome on macOS"))

	// The same browser again, this browser, or an id of no browser of the
	// user: refused, nothing revoked.
	g.Expect(desk.signOutBrowser(laptopID).Code).To(Equal(http.StatusNotFound))
	deskID := f.s.pages.sessions.BrowserID(requestWithCookiesOf(desk), f.s.config.snapshot().Keyring, challengeUser, f.clock.Now())
	g.Expect(deskID).NotTo(BeEmpty())
	g.Expect(desk.signOutBrowser(deskID).Code).To(Equal(http.StatusBadRequest))
	g.Expect(desk.signOutBrowser("0123456789abcdef0123456789abcdef").Code).To(Equal(http.StatusNotFound))
	reload()
	g.Expect(authStatus(desk)).To(Equal(http.StatusOK))

	// The signed-out browser answers again: a new id, listed again.
	laptop.verifyIn(o)
	g.Expect(authStatus(laptop)).To(Equal(http.StatusOK))
	desk.get(securityPage)
	g.Expect(desk.browserIDOn("Chrome on macOS")).To(SatisfyAll(Not(BeEmpty()), Not(Equal(laptopID))))
}

func TestSecurityPageSignOutOfAllOthersEmptiesTheList(t *testing.T) {
	g := NewWithT(t)
	f, reload := newSecurityFixture(t)
	desk := f.browser(challengeUser)
	desk.userAgent = uaFirefoxLinux
	o, _ := desk.enrol()
	laptop := f.browser(challengeUser)
	laptop.userAgent = uaChromeMac
	laptop.verifyIn(o)
	desk.verifyIn(o)
	desk.get(securityPage)
	g.Expect(desk.last).To(ContainSubstring("<strong>Chrome on macOS</strong>"))

	g.Expect(desk.postSecurity("/signout").Code).To(Equal(http.StatusOK), desk.last)
	g.Expect(desk.last).NotTo(ContainSubstring("<strong>Chrome on macOS</strong>"))
	reload()
	g.Expect(authStatus(laptop)).To(Equal(http.StatusUnauthorized))
	desk.get(securityPage)
	g.Expect(html.UnescapeString(desk.last)).To(ContainSubstring("<strong>Firefox on Linux</strong> — this browser"), "this browser stays, with its id")
	g.Expect(desk.last).NotTo(ContainSubstring("<strong>Chrome on macOS</strong>"))
}

func TestBrowserLabel(t *testing.T) {
	g := NewWithT(t)
	g.Expect(browserLabel(uaFirefoxLinux)).To(Equal("Firefox on Linux"))
	g.Expect(browserLabel(uaChromeMac)).To(Equal("Chrome on macOS"))
	g.Expect(browserLabel(uaChromeAndroid)).To(Equal("Chrome on Android"))
	g.Expect(browserLabel("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36 Edg/156.0")).To(Equal("Edge on Windows"))
	g.Expect(browserLabel("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Mobile/15E148 Safari/604.1")).To(Equal("Safari on iOS"))
	g.Expect(browserLabel("curl/8.0")).To(Equal("Unknown browser"))
}

// requestWithCookiesOf is a request to the challenge server carrying b's
// cookies.
func requestWithCookiesOf(b *browser) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://auth.example.com"+securityPage, nil)
	for _, c := range b.jar.Cookies(authServerURL) {
		r.AddCookie(c)
	}
	return r
}
