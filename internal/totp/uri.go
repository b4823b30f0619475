package totp

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
)

// b32 is the secret encoding of the Key Uri Format: base32 without padding.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// EncodeSecret returns the secret as an authenticator app's manual entry
// expects it: base32, upper case, no padding.
func EncodeSecret(secret []byte) string { return b32.EncodeToString(secret) }

// DecodeSecret reverses EncodeSecret, forgiving what people type: lower
// case, spaces, padding.
func DecodeSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	return b32.DecodeString(strings.TrimRight(s, "="))
}

// URI returns the otpauth:// URI of Google's Key Uri Format that an
// authenticator app scans: otpauth://totp/Issuer:account?secret=...&
// issuer=...&algorithm=...&digits=...&period=... . The issuer and account
// are percent-encoded (a space is %20, a colon %3A), so neither can break
// the label apart.
func URI(p Params, account string, secret []byte) string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if p.Issuer != "" {
		b.WriteString(escape(p.Issuer))
		b.WriteString(":")
	}
	b.WriteString(escape(account))
	b.WriteString("?secret=")
	b.WriteString(EncodeSecret(secret))
	if p.Issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(escape(p.Issuer))
	}
	b.WriteString("&algorithm=")
	b.WriteString(escape(string(p.Algorithm)))
	b.WriteString("&digits=")
	b.WriteString(strconv.Itoa(p.Digits))
	b.WriteString("&period=")
	b.WriteString(strconv.FormatInt(int64(p.Period/time.Second), 10))
	return b.String()
}

// escape percent-encodes every byte but RFC 3986's unreserved characters
// and '@' (allowed in both path and query, and common in account names).
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '@':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
		}
	}
	return b.String()
}

// quietZone is the white border a QR code needs around it, in modules.
const quietZone = 4

// minModulePixels: with one pixel per module, decoders already miss codes.
const minModulePixels = 2

// QRCodePNG returns a size×size PNG of a QR code of uri (error correction
// level M), with its quiet zone, modules scaled to whole pixels (at least
// two per module).
func QRCodePNG(uri string, size int) ([]byte, error) {
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encoding the QR code: %w", err)
	}
	modules := code.Bounds().Dx()
	total := modules + 2*quietZone
	if size < minModulePixels*total {
		return nil, fmt.Errorf("a QR code of %d modules (with its border) needs at least %d pixels, got %d", total, minModulePixels*total, size)
	}
	scale := size / total
	offset := (size-total*scale)/2 + quietZone*scale
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	for y := 0; y < modules; y++ {
		for x := 0; x < modules; x++ {
			if r, _, _, _ := code.At(x, y).RGBA(); r >= 0x8000 {
				continue
			}
			for dy := 0; dy < scale; dy++ {
				row := img.Pix[(offset+y*scale+dy)*img.Stride:]
				for dx := 0; dx < scale; dx++ {
					row[offset+x*scale+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
