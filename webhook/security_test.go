package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/revocation"
)

const securityPage = "/security/apps/admin"

// newSecurityFixture is the challenge fixture with revocations kept in
// its data directory, loaded (as a running server's poller would) by
// reloadRevocations.
func newSecurityFixture(t *testing.T) (*challengeFixture, func()) {
	return newSecurityFixtureWith(t, challengeConfigYAML)
}

// newSecurityFixtureWith is newSecurityFixture serving objectsYAML.
func newSecurityFixtureWith(t *testing.T, objectsYAML string) (*challengeFixture, func()) {
	var rs *revocation.FileStore
	f := newChallengeFixtureWith(t, objectsYAML, func(o *Options, dataDir string) {
		rs = revocation.NewFileStore(dataDir, discardLogger())
		o.Revocations = rs
	})
	reload := func() { NewWithT(t).Expect(rs.Load(f.s.revoked)).To(Succeed()) }
	reload()
	return f, reload
}

// authStatus is what /auth answers for b's cookies on the app.
func authStatus(b *browser) int {
	r := httptest.NewRequest(http.MethodGet, "http://mfa-challenge/auth/apps/admin", nil)
	r.RemoteAddr = challengeProxyAddr
	r.Header.Set("X-Original-URL", challengeRD)
	r.Header.Set("X-Original-Method", http.MethodGet)
	r.Header.Set("X-Auth-Request-Email", b.user)
	for _, c := range b.jar.Cookies(&url.URL{Scheme: "https", Host: "admin.example.com", Path: "/"}) {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	b.f.s.handler.ServeHTTP(w, r)
	return w.Code
}

// postSecurity submits the Security page's form posting to …suffix.
func (b *browser) postSecurity(suffix string) *httptest.ResponseRecorder {
	b.f.t.Helper()
	return b.post(securityPage+suffix, b.form(securityPage+suffix))
}

func TestSecurityPageNeedsARecentSecondFactor(t *testing.T) {
	g := NewWithT(t)
	f, _ := newSecurityFixture(t)
	b := f.browser(challengeUser)
	o, _ := b.enrol()

	w := b.get(securityPage)
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Your verification methods"))
	g.Expect(w.Body.String()).To(ContainSubstring("10 recovery codes left"))
	g.Expect(w.Body.String()).To(ContainSubstring("This browser is remembered until"))
	g.Expect(w.Header().Get("Content-Security-Policy")).To(MatchRegexp(`style-src 'nonce-[A-Za-z0-9_-]+'`))
	g.Expect(w.Header().Get("Cache-Control")).To(Equal("no-store"))

	// Six minutes later, a remembered browser is not enough: step up.
	f.clock.Advance(6 * time.Minute)
	w = b.get(securityPage)
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	loc, err := url.Parse(w.Header().Get("Location"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Path).To(Equal(challengePath))
	g.Expect(loc.Query().Get("rd")).To(Equal("https://auth.example.com" + securityPage))
	// The forms refuse too, and change nothing.
	b.get(loc.RequestURI())
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal("https://auth.example.com" + securityPage))
	g.Expect(b.get(securityPage).Code).To(Equal(http.StatusOK))

	// A browser of the same user without a recent answer cannot post.
	f.clock.Advance(6 * time.Minute)
	w = b.postSecurity("/signout")
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), "no step-up, no change")
}

func TestSecurityPageNewRecoveryCodesKillTheOldOnes(t *testing.T) {
	g := NewWithT(t)
	f, _ := newSecurityFixture(t)
	buf := withJSONAudit(f)
	b := f.browser(challengeUser)
	_, old := b.enrol()
	b.get(securityPage)
	w := b.postSecurity("/codes")
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	var fresh []string
	for _, m := range codesRE.FindAllStringSubmatch(w.Body.String(), -1) {
		fresh = append(fresh, m[1])
	}
	g.Expect(fresh).To(HaveLen(10))

	other := f.browser(challengeUser)
	other.get(challengeURL(challengeRD, "method", "recovery"))
	w = other.submit("/recovery", url.Values{"code": {old[0]}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), "an old code is dead")
	w = other.submit("/recovery", url.Values{"code": {fresh[0]}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), "a new one works")

	var events []string
	for _, l := range auditLines(t, buf.String()) {
		events = append(events, l["event"].(string))
	}
	g.Expect(events).To(ContainElement(audit.EventRecoveryCodesRegenerated))
	g.Expect(buf.String()).NotTo(ContainSubstring(fresh[1]))
}

func TestSecurityPageKeepsTheLastMethod(t *testing.T) {
	g := NewWithT(t)
	f, _ := newSecurityFixture(t)
	b := f.browser(challengeUser)
	b.enrol()
	w := b.get(securityPage)
	g.Expect(w.Body.String()).NotTo(ContainSubstring("Remove Authenticator app"), "no remove button for the only method")
	form := b.form(securityPage + "/codes") // the same hidden fields
	w = b.post(securityPage+"/remove", form)
	g.Expect(w.Code).To(Equal(http.StatusConflict))
	g.Expect(w.Body.String()).To(ContainSubstring("This is your only verification method"))
	g.Expect(authStatus(b)).To(Equal(http.StatusOK))
}

func TestSecurityPageSignsOutEveryOtherBrowser(t *testing.T) {
	g := NewWithT(t)
	f, reload := newSecurityFixture(t)
	buf := withJSONAudit(f)
	b := f.browser(challengeUser)
	o, _ := b.enrol()
	f.clock.Advance(2 * time.Minute)
	laptop := f.browser(challengeUser)
	laptop.get(challengeURL(challengeRD))
	g.Expect(laptop.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}}).Code).To(Equal(http.StatusSeeOther))
	bob := f.browser("bob@example.com")
	bob.enrol()
	g.Expect(authStatus(laptop)).To(Equal(http.StatusOK))

	b.get(challengeURL(challengeRD))
	f.clock.Advance(time.Minute)
	b.get(securityPage)
	g.Expect(b.last).To(ContainSubstring("Your verification methods"))
	w := b.postSecurity("/signout")
	g.Expect(w.Code).To(Equal(http.StatusOK), w.Body.String())
	g.Expect(w.Body.String()).To(ContainSubstring("Every other browser is signed out"))
	reload()
	g.Expect(authStatus(laptop)).To(Equal(http.StatusUnauthorized), "the other browser is signed out")
	g.Expect(authStatus(b)).To(Equal(http.StatusOK), "this browser stays signed in")
	g.Expect(authStatus(bob)).To(Equal(http.StatusOK), "other users stay remembered")
	lines := auditLines(t, buf.String())
	g.Expect(lines).NotTo(BeEmpty())
	last := lines[len(lines)-1]
	g.Expect(last).To(HaveKeyWithValue("event", audit.EventRevocation))
	g.Expect(last).To(HaveKeyWithValue("user", challengeUser))
	g.Expect(last).To(HaveKeyWithValue("client_ip", f.clientIP))
	g.Expect(strings.Contains(last["reason"].(string), "self-service")).To(BeTrue())
}
