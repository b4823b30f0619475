package webhook

import (
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/ratelimit"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// What the challenge pages do besides checking codes: CSRF tokens,
// redirects, rate limits, the provider choice, the other outcomes, an
// unavailable store and accessibility.

func TestChallengeFormsNeedTheirCSRFToken(t *testing.T) {
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute)

	cases := []struct {
		name   string
		tamper func(b *browser, form url.Values, r *http.Request)
	}{
		{"no token", func(_ *browser, form url.Values, _ *http.Request) { form.Del("csrf") }},
		{"a token of another user", func(_ *browser, form url.Values, _ *http.Request) {
			other := f.browser("mallory@example.com")
			other.get(challengeURL(challengeRD))
			form.Set("csrf", other.form("/enroll").Get("csrf"))
		}},
		{"no CSRF cookie", func(b *browser, _ url.Values, _ *http.Request) {
			jar, _ := cookiejar.New(nil)
			b.jar = jar
		}},
		{"posted from another site", func(_ *browser, _ url.Values, r *http.Request) {
			r.Header.Set("Origin", "https://evil.example.net")
			r.Header.Set("Sec-Fetch-Site", "cross-site")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			b := f.browser(challengeUser)
			b.get(challengeURL(challengeRD))
			form := b.form("/verify")
			form.Set("code", f.code(o, f.clock.Now()))
			r := httptest.NewRequest(http.MethodPost, "https://auth.example.com"+challengePath+"/verify", nil)
			r.Header.Set("Origin", "https://auth.example.com")
			tc.tamper(b, form, r)
			body := strings.NewReader(form.Encode())
			r.Body = httpNopCloser{body}
			r.ContentLength = int64(body.Len())
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := b.do(r)
			g.Expect(w.Code).To(Equal(http.StatusForbidden))
			g.Expect(w.Body.String()).To(ContainSubstring("Form expired or invalid"))
			g.Expect(w.Header().Values("Set-Cookie")).NotTo(ContainElement(HavePrefix(session.CookieName + "=")))
		})
	}
}

type httpNopCloser struct{ *strings.Reader }

func (httpNopCloser) Close() error { return nil }

func TestChallengeBadRedirectFallsBackToThePolicyHost(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute)

	b := f.browser(challengeUser)
	w := b.get(challengeURL("https://evil.example.net/steal"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("evil.example.net"))
	g.Expect(b.form("/verify").Get("rd")).To(Equal("https://admin.example.com/"))

	// Even a form edited to carry a bad rd is sent to the default.
	w = b.submit("/verify", url.Values{"code": {f.code(o, f.clock.Now())}, "rd": {"//evil.example.net"}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther))
	g.Expect(w.Header().Get("Location")).To(Equal("https://admin.example.com/"))
}

func TestChallengeRateLimitsFormsPerAddress(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	form := b.form("/enroll")
	form.Set("code", "x")
	for i := range ratelimit.Default.Burst {
		w := b.post(challengePath+"/enroll", form)
		g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity), "submission %d", i+1)
	}
	w := b.post(challengePath+"/enroll", form)
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	g.Expect(w.Body.String()).To(ContainSubstring("Too many attempts came from your network."))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("6"))

	// Another address is not affected.
	f.clientIP = "198.51.100.99"
	w = b.post(challengePath+"/enroll", form)
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
}

func TestChallengeProviderChoice(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	rd := "https://admin.example.com/choose/this"

	w := b.get(challengeURL(rd))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	body := w.Body.String()
	g.Expect(body).To(ContainSubstring("Choose how to verify"))
	g.Expect(body).To(ContainSubstring("Authenticator app"))
	g.Expect(body).To(ContainSubstring("Duo"))
	g.Expect(body).To(ContainSubstring(html.EscapeString(challengeURL(rd, "provider", "duo"))))

	w = b.get(challengeURL(rd, "provider", "google-authenticator"))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring("Set up your authenticator app"))
	g.Expect(w.Body.String()).To(ContainSubstring("Choose another way to verify"))

	// The Duo page asks Duo (preauth): challenge_duo_test.go tests it
	// against a Duo test server.

	w = b.get(challengeURL(rd, "provider", "nope"))
	g.Expect(w.Code).To(Equal(http.StatusBadRequest))
	g.Expect(w.Body.String()).To(ContainSubstring("Unknown verification method"))
}

func TestChallengeOutcomesOtherThanAChallenge(t *testing.T) {
	f := newChallengeFixture(t)
	cases := []struct {
		name   string
		path   string
		status int
		check  func(g Gomega, w *httptest.ResponseRecorder)
	}{
		{"unknown policy", "/challenge/apps/nope?rd=" + url.QueryEscape(challengeRD), http.StatusNotFound, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Body.String()).To(ContainSubstring("No MFAPolicy apps/nope is in force"))
		}},
		{"rd needs no second factor", challengeURL("https://admin.example.com/public/x"), http.StatusOK, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Body.String()).To(ContainSubstring("No second step needed"))
			g.Expect(w.Body.String()).To(ContainSubstring(`<a class="button" href="https://admin.example.com/public/x">Continue to admin.example.com</a>`))
		}},
		{"rd is denied", challengeURL("https://admin.example.com/blocked"), http.StatusForbidden, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Body.String()).To(ContainSubstring("Access denied"))
		}},
		{"unknown form address", challengePath + "/other", http.StatusNotFound, func(Gomega, *httptest.ResponseRecorder) {}},
		{"form address opened with GET", challengePath + "/verify?rd=x", http.StatusSeeOther, func(g Gomega, w *httptest.ResponseRecorder) {
			g.Expect(w.Header().Get("Location")).To(Equal(challengePath + "?rd=x"))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			w := f.browser(challengeUser).get(tc.path)
			g.Expect(w.Code).To(Equal(tc.status), w.Body.String())
			tc.check(g, w)
		})
	}
}

func TestChallengeStoreUnavailableAsksToTryAgain(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	form := b.form("/enroll")
	g.Expect(f.st.Close()).To(Succeed())

	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Body.String()).To(ContainSubstring("Please try again"))
	g.Expect(w.Header().Get("Retry-After")).To(Equal("5"))

	form.Set("code", "12345678")
	w = b.post(challengePath+"/enroll", form)
	g.Expect(w.Code).To(Equal(http.StatusServiceUnavailable))
	g.Expect(w.Body.String()).To(ContainSubstring("Nothing was changed."))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("bolt"))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("12345678"))
}

func TestChallengePagesAreAccessibleAndSelfContained(t *testing.T) {
	f := newChallengeFixture(t)
	f.browser(challengeUser).enrol()
	b := f.browser(challengeUser)

	pages := map[string]string{
		"verify":   challengeURL(challengeRD),
		"recovery": challengeURL(challengeRD, "method", "recovery"),
		"choice":   challengeURL("https://admin.example.com/choose"),
	}
	enrolling := f.browser("bob@example.com")
	pages["enroll"] = challengeURL(challengeRD)
	for name, path := range pages {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			br := b
			if name == "enroll" {
				br = enrolling
			}
			w := br.get(path)
			g.Expect(w.Code).To(Equal(http.StatusOK))
			body := w.Body.String()
			g.Expect(body).To(HavePrefix("<!doctype html>\n<html lang=\"en\">"))
			g.Expect(body).To(ContainSubstring(`<meta name="viewport" content="width=device-width, initial-scale=1">`))
			g.Expect(body).To(ContainSubstring(`<h1 id="title">`))
			g.Expect(body).To(ContainSubstring("admin.example.com"))
			g.Expect(body).NotTo(ContainSubstring("<script"))
			g.Expect(body).NotTo(MatchRegexp(`(src|href)="(https?:)?//`), "no external assets")
			g.Expect(w.Header().Get("Cache-Control")).To(Equal("no-store"))
			g.Expect(w.Header().Get("X-Frame-Options")).To(Equal("DENY"))
			csp := w.Header().Get("Content-Security-Policy")
			g.Expect(csp).To(ContainSubstring("default-src 'none'"))
			g.Expect(csp).To(ContainSubstring("frame-ancestors 'none'"))
			nonce := regexp.MustCompile(`<style nonce="([^"]+)">`).FindStringSubmatch(body)
			g.Expect(nonce).NotTo(BeNil())
			g.Expect(csp).To(ContainSubstring("style-src 'nonce-" + nonce[1] + "'"))
			if name == "choice" {
				return
			}
			g.Expect(body).To(ContainSubstring(`<label for="code">`))
			if name == "enroll" {
				// The code field is step 3, below the QR code: the page
				// opens at its heading, not scrolled to the field.
				g.Expect(body).NotTo(ContainSubstring("autofocus"))
			} else {
				g.Expect(body).To(MatchRegexp(`<input [^>]*id="code"[^>]*required autofocus`))
			}
			if name != "recovery" {
				input := regexp.MustCompile(`<input class="code"[^>]*>`).FindString(body)
				g.Expect(input).To(ContainSubstring(`autocomplete="one-time-code"`))
				g.Expect(input).To(ContainSubstring(`inputmode="numeric"`))
				g.Expect(input).To(ContainSubstring(`pattern="[0-9]{8}"`))
				g.Expect(input).To(ContainSubstring(`aria-describedby="code-hint"`))
			}
		})
	}
}

func TestGroupKey(t *testing.T) {
	g := NewWithT(t)
	g.Expect(groupKey("ABCDEFGHIJ")).To(Equal("ABCD EFGH IJ"))
	g.Expect(groupKey("ABCDEFGH")).To(Equal("ABCD EFGH"))
	g.Expect(groupKey("")).To(Equal(""))
}
