package keyring

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestSealOpenAcrossRotation(t *testing.T) {
	g := NewWithT(t)
	now := time.Unix(1_800_000_000, 0)
	d, err := Generate(now)
	g.Expect(err).NotTo(HaveOccurred())
	old, err := New(*d)
	g.Expect(err).NotTo(HaveOccurred())
	sealed := old.Seal(PurposeCookie, []byte("hello"), []byte("ana"))

	g.Expect(d.AddSymmetricKey(now)).To(Succeed())
	rotated, err := New(*d)
	g.Expect(err).NotTo(HaveOccurred())
	pt, err := rotated.Open(PurposeCookie, sealed, []byte("ana"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(pt)).To(Equal("hello"))

	_, err = rotated.Open(PurposeCookie, sealed, []byte("bob"))
	g.Expect(err).To(MatchError(ErrNoKey), "another user's context must not open it")
	_, err = rotated.Open(PurposeStore, sealed, []byte("ana"))
	g.Expect(err).To(MatchError(ErrNoKey), "keys are separated by purpose")

	d.SymmetricKeys = d.SymmetricKeys[:1]
	dropped, err := New(*d)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = dropped.Open(PurposeCookie, sealed, []byte("ana"))
	g.Expect(err).To(MatchError(ErrNoKey), "a removed key no longer opens")
}

func TestParseRefusesBrokenKeyrings(t *testing.T) {
	for name, raw := range map[string]string{
		"not json":     "{",
		"no keys":      `{}`,
		"short secret": `{"symmetricKeys":[{"id":"a","secret":"AAAA"}],"signingKeys":[{"id":"b","privateKeyPEM":"x"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(raw))
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}
