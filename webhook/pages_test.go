package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

var codeInputRE = regexp.MustCompile(`<input class="code"[^>]*id="code"[^>]*>`)

// The enrolment page opens at its heading: the QR code and the setup key
// come first, and focusing the code field (step 3) would scroll past them.
// After a refused code the field is what the user must fix, so it takes
// the focus.
func TestEnrolPageFocusesTheCodeOnlyAfterAnError(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser("bob@example.com")

	w := b.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).To(ContainSubstring(`<img class="qr"`))
	input := codeInputRE.FindString(w.Body.String())
	g.Expect(input).NotTo(BeEmpty(), "the enrolment page has a code field:\n%s", w.Body.String())
	g.Expect(input).NotTo(ContainSubstring("autofocus"))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("autofocus"))

	w = b.submit("/enroll", url.Values{"code": {"00000000"}})
	g.Expect(w.Code).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(w.Body.String()).To(ContainSubstring(`id="form-error"`))
	input = codeInputRE.FindString(w.Body.String())
	g.Expect(input).To(ContainSubstring(" autofocus "))
	g.Expect(input).To(ContainSubstring(`aria-invalid="true"`))
}

// The verify and recovery pages have their field right under the heading
// and a one-line lead: focusing it scrolls nothing away.
func TestShortCodePagesFocusTheirField(t *testing.T) {
	g := NewWithT(t)
	for _, name := range []string{pageVerify, pageRecovery} {
		var body strings.Builder
		p := &page{Title: "Title", AppHost: "admin.example.com", User: "alice@example.com", Digits: 6, PeriodSeconds: 30, Action: "/x"}
		g.Expect(challengeTemplates[name].ExecuteTemplate(&body, "layout", p)).To(Succeed())
		g.Expect(body.String()).To(MatchRegexp(`<input [^>]*id="code"[^>]*required autofocus`), name)
	}
}

// A fresh visit to the code page during a lockout says so at once, with
// the same notice as the attempt that locked: nobody types a code only to
// learn it could not have worked.
func TestChallengeCodePageShowsALockoutOnAFreshVisit(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	o, _ := f.browser(challengeUser).enrol()
	f.clock.Advance(2 * time.Minute) // 09:32

	b := f.browser(challengeUser)
	b.get(challengeURL(challengeRD))
	right := f.code(o, f.clock.Now())
	var w *httptest.ResponseRecorder
	for range 5 {
		w = b.submit("/verify", url.Values{"code": {wrong(right)}})
	}
	g.Expect(w.Code).To(Equal(http.StatusTooManyRequests))
	notice := "Too many attempts. For your security, verification is paused until 09:37 UTC (in 5 minutes). Try again then."
	g.Expect(w.Body.String()).To(ContainSubstring(notice))

	f.clock.Advance(3*time.Minute + 10*time.Second) // 09:35:10
	other := f.browser(challengeUser)
	for _, path := range []string{challengeURL(challengeRD), challengeURL(challengeRD, "method", "recovery")} {
		w = other.get(path)
		g.Expect(w.Code).To(Equal(http.StatusOK), path)
		body := w.Body.String()
		g.Expect(body).To(ContainSubstring(`<p class="alert" role="alert" id="form-error">`+
			"Too many attempts. For your security, verification is paused until 09:37 UTC (in 2 minutes). Try again then.</p>"), path)
		g.Expect(body).To(ContainSubstring(`aria-describedby="code-hint form-error"`), path)
	}

	f.clock.Advance(2 * time.Minute) // 09:37:10, the lockout is over
	w = other.get(challengeURL(challengeRD))
	g.Expect(w.Code).To(Equal(http.StatusOK))
	g.Expect(w.Body.String()).NotTo(ContainSubstring("Too many attempts"))
	g.Expect(w.Body.String()).NotTo(ContainSubstring(`role="alert"`))
}

func TestLockoutNotice(t *testing.T) {
	g := NewWithT(t)
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		until time.Time
		want  string
	}{
		{now.Add(12 * time.Minute), "until 09:42 UTC (in 12 minutes)."},
		{now.Add(11*time.Minute + time.Second), "until 09:41 UTC (in 12 minutes)."},
		{now.Add(20 * time.Second), "until 09:30 UTC (in 1 minute)."},
		{now.Add(time.Hour), "until 10:30 UTC (in 1 hour)."},
		{now.Add(4*time.Hour + 5*time.Minute), "until 13:35 UTC (in 4 hours 5 minutes)."},
		{now.Add(24 * time.Hour), "until 09:30 UTC on 28 November (in 24 hours)."},
		{now.Add(time.Hour).In(time.FixedZone("CET", 3600)), "until 10:30 UTC (in 1 hour)."},
	} {
		g.Expect(lockoutNotice(tc.until, now)).To(Equal(
			"Too many attempts. For your security, verification is paused " + tc.want + " Try again then."))
	}
}

var downloadNameRE = regexp.MustCompile(`<a class="download" href="data:text/plain[^"]*" download="([^"]*)">`)

// The recovery codes download has a name every file system accepts.
func TestRecoveryCodesDownloadNameIsPortable(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	b := f.browser(challengeUser)
	b.enrol()
	m := downloadNameRE.FindStringSubmatch(b.last)
	g.Expect(m).NotTo(BeNil(), "the recovery codes page has a download link:\n%s", b.last)
	g.Expect(m[1]).To(Equal("recovery-codes-admin.example.com-20261127-0930.txt"))

	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	for host, want := range map[string]string{
		"admin.example.com":      "recovery-codes-admin.example.com-20260102-0204.txt",
		"admin.example.com:8443": "recovery-codes-admin.example.com-20260102-0204.txt",
		"[2001:db8::1]:8443":     "recovery-codes-2001-db8--1-20260102-0204.txt",
		"bücher.example":         "recovery-codes-xn--bcher-kva.example-20260102-0204.txt",
		"a b\\c/d*e?f\"g<h>i|j":  "recovery-codes-a-b-c-d-e-f-g-h-i-j-20260102-0204.txt",
		"..hidden":               "recovery-codes-hidden-20260102-0204.txt",
		"":                       "recovery-codes-20260102-0204.txt",
	} {
		got := recoveryCodesFileName(host, at)
		g.Expect(got).To(Equal(want), host)
		g.Expect(got).To(MatchRegexp(`^[A-Za-z0-9._-]+$`), host)
	}
}
