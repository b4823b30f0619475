package webhook

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
)

func testKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	d, err := keyring.Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(*d)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestCSRFTokenIsBoundToBrowserUserKeyringAndTime(t *testing.T) {
	kr := testKeyring(t)
	other := testKeyring(t)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	browser := []byte(strings.Repeat("b", csrfBrowserIDLen))
	token := newCSRFToken(kr, browser, "alice@example.com", now)

	cases := []struct {
		name    string
		kr      *keyring.Keyring
		token   string
		browser []byte
		user    string
		at      time.Time
		want    error
	}{
		{"same browser and user", kr, token, browser, "alice@example.com", now, nil},
		{"just before expiry", kr, token, browser, "alice@example.com", now.Add(csrfTokenTTL), nil},
		{"after expiry", kr, token, browser, "alice@example.com", now.Add(csrfTokenTTL + time.Second), errCSRFExpired},
		{"another browser", kr, token, []byte(strings.Repeat("c", csrfBrowserIDLen)), "alice@example.com", now, errCSRFInvalid},
		{"another user", kr, token, browser, "bob@example.com", now, errCSRFInvalid},
		{"another keyring", other, token, browser, "alice@example.com", now, errCSRFInvalid},
		{"no token", kr, "", browser, "alice@example.com", now, errCSRFMissing},
		{"no cookie", kr, token, nil, "alice@example.com", now, errCSRFMissing},
		{"not base64", kr, "!!!", browser, "alice@example.com", now, errCSRFInvalid},
		{"tampered", kr, flipLastChar(token), browser, "alice@example.com", now, errCSRFInvalid},
		{"oversized", kr, strings.Repeat("A", 1000), browser, "alice@example.com", now, errCSRFInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := checkCSRFToken(tc.kr, tc.token, tc.browser, tc.user, tc.at)
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(tc.want))
			}
		})
	}
}

func TestCSRFTokenSurvivesKeyRotation(t *testing.T) {
	g := NewWithT(t)
	d, err := keyring.Generate(time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	before, err := keyring.New(*d)
	g.Expect(err).NotTo(HaveOccurred())
	browser := []byte(strings.Repeat("b", csrfBrowserIDLen))
	now := time.Now()
	token := newCSRFToken(before, browser, "alice", now)

	g.Expect(d.AddSymmetricKey(now)).To(Succeed())
	after, err := keyring.New(*d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(checkCSRFToken(after, token, browser, "alice", now)).To(Succeed())
}

func flipLastChar(s string) string {
	last := s[len(s)-1]
	if last == 'A' {
		last = 'B'
	} else {
		last = 'A'
	}
	return s[:len(s)-1] + string(last)
}

func TestCheckOrigin(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		ok      bool
	}{
		{"no headers: left to the token", nil, true},
		{"same origin", map[string]string{"Origin": "https://auth.example.com", "Sec-Fetch-Site": "same-origin"}, true},
		{"origin is the public URL behind a proxy", map[string]string{"Origin": "https://mfa.example.com"}, true},
		{"origin host differs in case", map[string]string{"Origin": "https://AUTH.example.com"}, true},
		{"referer on the same host", map[string]string{"Referer": "https://auth.example.com/challenge/apps/admin?rd=x"}, true},
		{"typed by the user", map[string]string{"Sec-Fetch-Site": "none"}, true},
		{"cross-site fetch metadata", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"same-site sibling", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://app.example.com"}, false},
		{"other origin", map[string]string{"Origin": "https://evil.com"}, false},
		{"null origin", map[string]string{"Origin": "null"}, false},
		{"other referer", map[string]string{"Referer": "https://evil.com/auth.example.com"}, false},
		{"origin wins over a good referer", map[string]string{"Origin": "https://evil.com", "Referer": "https://auth.example.com/"}, false},
		{"origin with userinfo trick", map[string]string{"Origin": "https://auth.example.com@evil.com"}, false},
		{"not http", map[string]string{"Origin": "chrome-extension://abc"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := httptest.NewRequest("POST", "https://auth.example.com/challenge/apps/admin/verify", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			err := checkOrigin(r, "mfa.example.com")
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(errCSRFOrigin))
			}
		})
	}
}
