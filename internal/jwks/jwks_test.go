package jwks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseP256(t *testing.T) {
	g := NewWithT(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	b64 := base64.RawURLEncoding.EncodeToString
	ec := func(kid, x, y string) string {
		return fmt.Sprintf(`{"kty":"EC","crv":"P-256","kid":%q,"x":%q,"y":%q}`, kid, x, y)
	}
	good := ec("k1", b64(priv.X.Bytes()), b64(priv.Y.Bytes()))

	keys, err := ParseP256([]byte(`{"keys":[` + good + `,{"kty":"RSA","kid":"r1","n":"AQAB","e":"AQAB"}]}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys).To(HaveLen(1), "the RSA key is skipped")
	g.Expect(keys["k1"].Equal(&priv.PublicKey)).To(BeTrue())

	for name, set := range map[string]string{
		"not JSON":          `{"keys":`,
		"no P-256 key":      `{"keys":[]}`,
		"bad coordinates":   `{"keys":[` + ec("k2", "!!", b64(priv.Y.Bytes())) + `]}`,
		"not on the curve":  `{"keys":[` + ec("k3", b64(priv.X.Bytes()), b64([]byte{1, 2, 3})) + `]}`,
		"one good, one bad": `{"keys":[` + good + `,` + ec("k4", "!!", "!!") + `]}`,
	} {
		_, err := ParseP256([]byte(set))
		g.Expect(err).To(HaveOccurred(), name)
	}
}
