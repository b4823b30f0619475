package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/audit"
)

// auditLines returns the audit lines of a JSON log, parsed.
func auditLines(t testing.TB, log string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["audit"] == true {
			out = append(out, rec)
		}
	}
	return out
}

// withJSONAudit sends f's audit lines, as JSON, to the returned buffer.
func withJSONAudit(f *challengeFixture) *syncWriter {
	buf := &syncWriter{w: &bytes.Buffer{}}
	f.s.pages.audit = audit.New(slog.New(slog.NewJSONHandler(buf, nil)), nil)
	return buf
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestAuditTrailOfTheChallengePages(t *testing.T) {
	g := NewWithT(t)
	f := newChallengeFixture(t)
	buf := withJSONAudit(f)
	const ua = "Mozilla/5.0 (X11; Linux x86_64) Test/1"

	b := f.browser(challengeUser)
	b.userAgent = ua
	o, codes := b.enrol()

	f.clock.Advance(2 * time.Minute)
	other := f.browser(challengeUser)
	other.userAgent = ua
	other.get(challengeURL(challengeRD))
	bad := wrong(f.code(o, f.clock.Now()))
	for range 5 {
		other.submit("/verify", url.Values{"code": {bad}})
	}
	f.clock.Advance(time.Hour)
	third := f.browser(challengeUser)
	third.userAgent = ua
	third.get(challengeURL(challengeRD, "method", "recovery"))
	w := third.submit("/recovery", url.Values{"code": {codes[0]}})
	g.Expect(w.Code).To(Equal(http.StatusSeeOther), w.Body.String())

	lines := auditLines(t, buf.String())
	var events []string
	for _, l := range lines {
		events = append(events, l["event"].(string))
		g.Expect(l).To(HaveKeyWithValue("user", challengeUser))
		g.Expect(l).To(HaveKeyWithValue("policy", "apps/admin"))
		g.Expect(l).To(HaveKeyWithValue("provider", "apps/google-authenticator"))
		g.Expect(l).To(HaveKeyWithValue("client_ip", f.clientIP))
		g.Expect(l).To(HaveKeyWithValue("user_agent", ua))
	}
	g.Expect(events).To(Equal([]string{
		audit.EventEnrollment,
		audit.EventVerificationFailure, audit.EventVerificationFailure, audit.EventVerificationFailure,
		audit.EventVerificationFailure, audit.EventLockout, audit.EventVerificationFailure,
		audit.EventRecoveryCodeUse,
	}), buf.String())
	g.Expect(lines[0]).To(HaveKeyWithValue("outcome", audit.OutcomeSuccess))
	g.Expect(lines[1]).To(HaveKeyWithValue("outcome", audit.OutcomeFailure))
	g.Expect(lines[5]).To(HaveKeyWithValue("outcome", audit.OutcomeDenied))
	g.Expect(lines[7]).To(HaveKeyWithValue("outcome", audit.OutcomeSuccess))
	// Never a code or a secret.
	g.Expect(buf.String()).NotTo(ContainSubstring(bad))
	g.Expect(buf.String()).NotTo(ContainSubstring(codes[0]))
	g.Expect(buf.String()).NotTo(ContainSubstring(o.secret))
}
