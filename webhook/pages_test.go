package webhook

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

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
