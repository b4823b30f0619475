package totp_test

import (
	"crypto/rand"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/totp"
)

// RFC 6238 Appendix B: the reference keys are the ASCII digits repeated to
// the hash size; codes have 8 digits and a 30 s step.
var rfcKeys = map[v1alpha1.TOTPAlgorithm][]byte{
	v1alpha1.TOTPAlgorithmSHA1:   []byte("12345678901234567890"),
	v1alpha1.TOTPAlgorithmSHA256: []byte("12345678901234567890123456789012"),
	v1alpha1.TOTPAlgorithmSHA512: []byte("1234567890123456789012345678901234567890123456789012345678901234"),
}

var rfcVectors = []struct {
	unix int64
	alg  v1alpha1.TOTPAlgorithm
	code string
}{
	{59, v1alpha1.TOTPAlgorithmSHA1, "94287082"},
	{59, v1alpha1.TOTPAlgorithmSHA256, "46119246"},
	{59, v1alpha1.TOTPAlgorithmSHA512, "90693936"},
	{1111111109, v1alpha1.TOTPAlgorithmSHA1, "07081804"},
	{1111111109, v1alpha1.TOTPAlgorithmSHA256, "68084774"},
	{1111111109, v1alpha1.TOTPAlgorithmSHA512, "25091201"},
	{1111111111, v1alpha1.TOTPAlgorithmSHA1, "14050471"},
	{1111111111, v1alpha1.TOTPAlgorithmSHA256, "67062674"},
	{1111111111, v1alpha1.TOTPAlgorithmSHA512, "99943326"},
	{1234567890, v1alpha1.TOTPAlgorithmSHA1, "89005924"},
	{1234567890, v1alpha1.TOTPAlgorithmSHA256, "91819424"},
	{1234567890, v1alpha1.TOTPAlgorithmSHA512, "93441116"},
	{2000000000, v1alpha1.TOTPAlgorithmSHA1, "69279037"},
	{2000000000, v1alpha1.TOTPAlgorithmSHA256, "90698825"},
	{2000000000, v1alpha1.TOTPAlgorithmSHA512, "38618901"},
	{20000000000, v1alpha1.TOTPAlgorithmSHA1, "65353130"},
	{20000000000, v1alpha1.TOTPAlgorithmSHA256, "77737706"},
	{20000000000, v1alpha1.TOTPAlgorithmSHA512, "47863826"},
}

func rfcParams(alg v1alpha1.TOTPAlgorithm) totp.Params {
	return totp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: alg}
}

func TestCodeMatchesRFC6238Vectors(t *testing.T) {
	for _, v := range rfcVectors {
		t.Run(fmt.Sprintf("%s at %d", v.alg, v.unix), func(t *testing.T) {
			g := NewWithT(t)
			code, err := totp.Code(rfcParams(v.alg), rfcKeys[v.alg], time.Unix(v.unix, 0))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(v.code))
		})
	}
}

func TestVerifyAcceptsRFC6238Vectors(t *testing.T) {
	for _, v := range rfcVectors {
		t.Run(fmt.Sprintf("%s at %d", v.alg, v.unix), func(t *testing.T) {
			g := NewWithT(t)
			step, ok := totp.Verify(rfcParams(v.alg), rfcKeys[v.alg], v.code, time.Unix(v.unix, 0), 0)
			g.Expect(ok).To(BeTrue())
			g.Expect(step).To(Equal(v.unix / 30))
		})
	}
}

func TestVerifySkewEdges(t *testing.T) {
	secret := []byte("12345678901234567890")
	now := time.Unix(1_800_000_015, 0) // the middle of step 60_000_000
	const current = 60_000_000
	codeAt := func(step int64) string {
		c, err := totp.Code(totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1"}, secret, time.Unix(step*30, 0))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		skew   int
		offset int64
		ok     bool
	}{
		{skew: 0, offset: 0, ok: true},
		{skew: 0, offset: -1, ok: false},
		{skew: 0, offset: 1, ok: false},
		{skew: 1, offset: -1, ok: true},
		{skew: 1, offset: 1, ok: true},
		{skew: 1, offset: -2, ok: false},
		{skew: 1, offset: 2, ok: false},
		{skew: 2, offset: -2, ok: true},
		{skew: 2, offset: 2, ok: true},
		{skew: 2, offset: 3, ok: false},
	} {
		t.Run(fmt.Sprintf("skew %d offset %+d", tc.skew, tc.offset), func(t *testing.T) {
			g := NewWithT(t)
			p := totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: tc.skew}
			step, ok := totp.Verify(p, secret, codeAt(current+tc.offset), now, 0)
			g.Expect(ok).To(Equal(tc.ok))
			if tc.ok {
				g.Expect(step).To(BeEquivalentTo(current + tc.offset))
			}
		})
	}
}

func TestVerifyStepBoundaries(t *testing.T) {
	g := NewWithT(t)
	secret := []byte("12345678901234567890")
	p := totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1"}
	code, err := totp.Code(p, secret, time.Unix(1_800_000_000, 0)) // first second of step 60_000_000
	g.Expect(err).NotTo(HaveOccurred())
	_, ok := totp.Verify(p, secret, code, time.Unix(1_800_000_029, 999_999_999), 0)
	g.Expect(ok).To(BeTrue(), "last instant of the same step")
	_, ok = totp.Verify(p, secret, code, time.Unix(1_800_000_030, 0), 0)
	g.Expect(ok).To(BeFalse(), "first instant of the next step, without skew")
}

func TestVerifyRefusesStepsAtOrBeforeLastStep(t *testing.T) {
	g := NewWithT(t)
	secret := []byte("12345678901234567890")
	p := totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1}
	now := time.Unix(1_800_000_015, 0)
	code, err := totp.Code(p, secret, now)
	g.Expect(err).NotTo(HaveOccurred())

	step, ok := totp.Verify(p, secret, code, now, 0)
	g.Expect(ok).To(BeTrue())
	_, ok = totp.Verify(p, secret, code, now, step)
	g.Expect(ok).To(BeFalse(), "the accepted step again")
	_, ok = totp.Verify(p, secret, code, now, step+1)
	g.Expect(ok).To(BeFalse(), "a step before the last accepted one")
	_, ok = totp.Verify(p, secret, code, now, step-1)
	g.Expect(ok).To(BeTrue(), "a step after the last accepted one")
}

func TestVerifyRefusesMalformedCodes(t *testing.T) {
	secret := []byte("12345678901234567890")
	p := totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1}
	now := time.Unix(1_800_000_015, 0)
	good, err := totp.Code(p, secret, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, code := range map[string]string{
		"empty":               "",
		"too short":           good[:5],
		"too long":            good + "0",
		"letter":              good[:5] + "a",
		"sign":                "+" + good[1:],
		"space":               " " + good[1:],
		"arabic-indic digits": "١٢٣٤٥٦",
		"8 digits for 6":      "00" + good,
	} {
		t.Run(name, func(t *testing.T) {
			_, ok := totp.Verify(p, secret, code, now, 0)
			NewWithT(t).Expect(ok).To(BeFalse())
		})
	}
}

func TestParamsValidate(t *testing.T) {
	ok := totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1}
	for name, tc := range map[string]struct {
		mutate func(*totp.Params)
		valid  bool
	}{
		"defaults":           {func(*totp.Params) {}, true},
		"8 digits":           {func(p *totp.Params) { p.Digits = 8 }, true},
		"5 digits":           {func(p *totp.Params) { p.Digits = 5 }, false},
		"9 digits":           {func(p *totp.Params) { p.Digits = 9 }, false},
		"sub-second period":  {func(p *totp.Params) { p.Period = 1500 * time.Millisecond }, false},
		"zero period":        {func(p *totp.Params) { p.Period = 0 }, false},
		"unknown algorithm":  {func(p *totp.Params) { p.Algorithm = "MD5" }, false},
		"negative skew":      {func(p *totp.Params) { p.Skew = -1 }, false},
		"skew above maximum": {func(p *totp.Params) { p.Skew = totp.MaxSkew + 1 }, false},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := ok
			tc.mutate(&p)
			if tc.valid {
				g.Expect(p.Validate()).To(Succeed())
			} else {
				g.Expect(p.Validate()).NotTo(Succeed())
				_, err := totp.Code(p, []byte("12345678901234567890"), time.Unix(59, 0))
				g.Expect(err).To(HaveOccurred(), "Code refuses invalid parameters")
			}
		})
	}
}

func TestParamsFromAppliesDefaults(t *testing.T) {
	g := NewWithT(t)
	g.Expect(totp.ParamsFrom(nil)).To(Equal(totp.Params{
		Issuer: "mfa-operator", Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1,
	}))
	digits, skew := int32(8), int32(0)
	g.Expect(totp.ParamsFrom(&v1alpha1.TOTPSpec{Issuer: "Example Corp", Digits: &digits, Algorithm: "SHA512", Skew: &skew})).To(Equal(totp.Params{
		Issuer: "Example Corp", Digits: 8, Period: 30 * time.Second, Algorithm: "SHA512", Skew: 0,
	}))
}

func TestGenerateSecretSizes(t *testing.T) {
	g := NewWithT(t)
	s, err := totp.GenerateSecret()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s).To(HaveLen(20))
	for alg, size := range map[v1alpha1.TOTPAlgorithm]int{"SHA1": 20, "SHA256": 32, "SHA512": 64} {
		s, err := totp.GenerateSecretFor(alg)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s).To(HaveLen(size), string(alg))
	}
	other, _ := totp.GenerateSecret()
	g.Expect(other).NotTo(Equal(s))
}

// oathtool requires the OATH Toolkit (`make deps`).
func oathtool(t *testing.T, p totp.Params, secret []byte, at time.Time) string {
	t.Helper()
	path, err := exec.LookPath("oathtool")
	if err != nil {
		t.Fatalf("oathtool is not installed: run make deps")
	}
	out, err := exec.Command(path,
		"--totp="+string(p.Algorithm), "--base32",
		fmt.Sprintf("--digits=%d", p.Digits),
		fmt.Sprintf("--time-step-size=%ds", int(p.Period/time.Second)),
		fmt.Sprintf("--now=@%d", at.Unix()),
		totp.EncodeSecret(secret),
	).CombinedOutput()
	if err != nil {
		t.Fatalf("oathtool: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCodeMatchesOathtool(t *testing.T) {
	times := []time.Time{time.Unix(59, 0), time.Unix(1_111_111_109, 0), time.Unix(1_800_000_015, 0), time.Unix(4_102_444_799, 0)}
	for _, alg := range []v1alpha1.TOTPAlgorithm{"SHA1", "SHA256", "SHA512"} {
		for _, digits := range []int{6, 8} {
			for _, period := range []time.Duration{30 * time.Second, 60 * time.Second} {
				t.Run(fmt.Sprintf("%s %d digits %s", alg, digits, period), func(t *testing.T) {
					g := NewWithT(t)
					p := totp.Params{Digits: digits, Period: period, Algorithm: alg}
					secret, err := totp.GenerateSecretFor(alg)
					g.Expect(err).NotTo(HaveOccurred())
					for _, at := range times {
						code, err := totp.Code(p, secret, at)
						g.Expect(err).NotTo(HaveOccurred())
						g.Expect(code).To(Equal(oathtool(t, p, secret, at)), "at %d", at.Unix())
					}
				})
			}
		}
	}
	t.Run("secret of odd length", func(t *testing.T) {
		g := NewWithT(t)
		secret := make([]byte, 13)
		_, _ = rand.Read(secret)
		p := totp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1"}
		code, err := totp.Code(p, secret, time.Unix(1_800_000_015, 0))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(oathtool(t, p, secret, time.Unix(1_800_000_015, 0))))
	})
}
