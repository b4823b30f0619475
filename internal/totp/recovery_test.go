package totp_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/totp"
)

func TestNewRecoveryCodesAreReadableUniqueAndStoredAsHashes(t *testing.T) {
	g := NewWithT(t)
	codes, hashes, err := totp.NewRecoveryCodes(10)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(codes).To(HaveLen(10))
	g.Expect(hashes).To(HaveLen(10))
	seen := map[string]bool{}
	for i, c := range codes {
		g.Expect(c).To(MatchRegexp(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{2}$`))
		g.Expect(seen[c]).To(BeFalse(), "codes are unique")
		seen[c] = true
		plain := strings.ReplaceAll(c, "-", "")
		g.Expect(hashes[i]).NotTo(ContainSubstring(plain), "the code is not in its hash")
		g.Expect(hashes[i]).NotTo(ContainSubstring(c))
	}
	_, again, err := totp.NewRecoveryCodes(1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again[0]).To(HavePrefix("sha256$"))
}

func TestMatchRecoveryCodeNormalizesInput(t *testing.T) {
	// A batch where code 3 has a 0 or a 1, to type as O or l.
	var codes, hashes []string
	for len(codes) == 0 || !strings.ContainsAny(codes[3], "01") {
		var err error
		if codes, hashes, err = totp.NewRecoveryCodes(10); err != nil {
			t.Fatal(err)
		}
	}
	code := codes[3]
	plain := strings.ReplaceAll(code, "-", "")
	confusable := strings.NewReplacer("0", "O", "1", "l").Replace(code)
	for name, tc := range map[string]struct {
		input string
		ok    bool
	}{
		"as shown":                  {code, true},
		"upper case":                {strings.ToUpper(code), true},
		"without dashes":            {plain, true},
		"with spaces":               {plain[:4] + " " + plain[4:8] + " " + plain[8:], true},
		"surrounding spaces":        {"  " + code + "\t", true},
		"o for 0, l for 1":          {confusable, true},
		"one character off":         {code[:len(code)-1] + otherChar(code[len(code)-1]), false},
		"one character short":       {code[:len(code)-1], false},
		"one character more":        {code + "2", false},
		"character not in alphabet": {code[:len(code)-1] + "u", false},
		"non-ASCII":                 {code[:len(code)-1] + "é", false},
		"empty":                     {"", false},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			i, ok := totp.MatchRecoveryCode(hashes, tc.input)
			g.Expect(ok).To(Equal(tc.ok))
			if tc.ok {
				g.Expect(i).To(Equal(3))
			}
		})
	}
}

func TestMatchRecoveryCodeSkipsMalformedHashes(t *testing.T) {
	g := NewWithT(t)
	codes, hashes, err := totp.NewRecoveryCodes(1)
	g.Expect(err).NotTo(HaveOccurred())
	stored := []string{"", "sha256$", "md5$AAAA$AAAA", "sha256$!!$!!", hashes[0]}
	i, ok := totp.MatchRecoveryCode(stored, codes[0])
	g.Expect(ok).To(BeTrue())
	g.Expect(i).To(Equal(4))
}

func otherChar(c byte) string {
	if c == '2' {
		return "3"
	}
	return "2"
}
