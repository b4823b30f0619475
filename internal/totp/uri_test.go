package totp_test

import (
	"bytes"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/pquerna/otp"

	"github.com/mfa-operator/mfa-operator/internal/totp"
)

var googleDefaults = totp.Params{Issuer: "Example Corp", Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1", Skew: 1}

func TestURIFollowsKeyUriFormat(t *testing.T) {
	g := NewWithT(t)
	uri := totp.URI(googleDefaults, "ana@example.com", []byte("12345678901234567890"))
	g.Expect(uri).To(Equal("otpauth://totp/Example%20Corp:ana@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30"))
}

func TestURIEscapesLabelAndIssuer(t *testing.T) {
	for name, tc := range map[string]struct {
		issuer, account string
	}{
		"colon in the account":         {"Example Corp", "ana:admin@example.com"},
		"query characters":             {"A&B=C?", "x&secret=AAAA#frag"},
		"slash, plus, percent, spaces": {"R/D + Ops 100%", " ana / ops "},
		"non-ASCII":                    {"Société Générale", "zoë@exemple.fr"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			secret := []byte("12345678901234567890")
			p := googleDefaults
			p.Issuer = tc.issuer
			p.Algorithm = "SHA512"
			p.Digits = 8
			p.Period = 60 * time.Second
			uri := totp.URI(p, tc.account, secret)

			u, err := url.Parse(uri)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(u.Scheme).To(Equal("otpauth"))
			g.Expect(u.Host).To(Equal("totp"))
			g.Expect(u.Path).To(Equal("/" + tc.issuer + ":" + tc.account))
			g.Expect(u.Fragment).To(BeEmpty())
			q := u.Query()
			g.Expect(q).To(HaveLen(5), "no parameter smuggled in: %v", q)
			g.Expect(q.Get("secret")).To(Equal("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"))
			g.Expect(q.Get("issuer")).To(Equal(tc.issuer))
			g.Expect(q.Get("algorithm")).To(Equal("SHA512"))
			g.Expect(q.Get("digits")).To(Equal("8"))
			g.Expect(q.Get("period")).To(Equal("60"))
			g.Expect(strings.Count(u.EscapedPath(), ":")).To(Equal(1), "one literal colon separates issuer and account")
			g.Expect(uri).NotTo(ContainSubstring("+"), "spaces are %%20, which every app reads")

			// Another implementation's parser reads the same values.
			key, err := otp.NewKeyFromURL(uri)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key.Issuer()).To(Equal(tc.issuer))
			g.Expect(key.AccountName()).To(Equal(tc.account))
			g.Expect(key.Secret()).To(Equal("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"))
			g.Expect(key.Period()).To(BeEquivalentTo(60))
			g.Expect(key.Digits().Length()).To(Equal(8))
			g.Expect(key.Algorithm().String()).To(Equal("SHA512"))
		})
	}
}

// zbarimg requires zbar-tools (`make deps`).
func zbarimg(t *testing.T, pngData []byte) string {
	t.Helper()
	path, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatalf("zbarimg is not installed: run make deps")
	}
	file := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(file, pngData, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", file).Output()
	if err != nil {
		t.Fatalf("zbarimg found no QR code: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func TestQRCodePNGDecodesToTheURI(t *testing.T) {
	for name, tc := range map[string]struct {
		p       totp.Params
		account string
		secret  int
		size    int
	}{
		"google defaults, 256 px": {googleDefaults, "ana@example.com", 20, 256},
		"SHA512 secret, 320 px":   {totp.Params{Issuer: "Société Générale", Digits: 8, Period: time.Minute, Algorithm: "SHA512"}, "zoë:admin@exemple.fr", 64, 320},
		"smallest size accepted":  {googleDefaults, "ana@example.com", 20, 0},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			secret := bytes.Repeat([]byte{0xa5}, tc.secret)
			uri := totp.URI(tc.p, tc.account, secret)
			if tc.size == 0 {
				for tc.size = 1; ; tc.size++ {
					if _, err := totp.QRCodePNG(uri, tc.size); err == nil {
						break
					}
				}
			}
			data, err := totp.QRCodePNG(uri, tc.size)
			g.Expect(err).NotTo(HaveOccurred())
			img, err := png.Decode(bytes.NewReader(data))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(img.Bounds().Dx()).To(Equal(tc.size))
			g.Expect(img.Bounds().Dy()).To(Equal(tc.size))
			g.Expect(zbarimg(t, data)).To(Equal(uri))
		})
	}
}

func TestQRCodePNGRefusesATooSmallSize(t *testing.T) {
	g := NewWithT(t)
	_, err := totp.QRCodePNG(totp.URI(googleDefaults, "ana@example.com", make([]byte, 20)), 20)
	g.Expect(err).To(MatchError(ContainSubstring("needs at least")))
}
