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

func TestKnowsKeyOfLooksOnlyAtTheKeyID(t *testing.T) {
	g := NewWithT(t)
	now := time.Unix(1_800_000_000, 0)
	d, err := Generate(now)
	g.Expect(err).NotTo(HaveOccurred())
	kr, err := New(*d)
	g.Expect(err).NotTo(HaveOccurred())
	other, err := Generate(now)
	g.Expect(err).NotTo(HaveOccurred())
	otherKr, err := New(*other)
	g.Expect(err).NotTo(HaveOccurred())
	sealed := kr.Seal(PurposeCookie, []byte("hello"), nil)

	g.Expect(kr.KnowsKeyOf(PurposeCookie, sealed)).To(BeTrue())
	g.Expect(kr.KnowsKeyOf(PurposeCookie, sealed[:9])).To(BeTrue(), "the id alone is enough")
	g.Expect(kr.KnowsKeyOf(PurposeCookie, sealed[:8])).To(BeFalse(), "an id cut short is not")
	g.Expect(kr.KnowsKeyOf(PurposeStore, sealed)).To(BeTrue(), "one id serves every purpose")
	g.Expect(otherKr.KnowsKeyOf(PurposeCookie, sealed)).To(BeFalse(), "another keyring's key")
	g.Expect(kr.KnowsKeyOf(PurposeCookie, nil)).To(BeFalse())
	g.Expect(kr.KnowsKeyOf(PurposeCookie, []byte{0})).To(BeFalse(), "an empty id names no key")

	// Seal writes the id as hex-decoded bytes: an id that is not
	// lower-case hex never matches what it sealed.
	upper := *d
	upper.SymmetricKeys = []SymmetricKey{d.SymmetricKeys[0]}
	upper.SymmetricKeys[0].ID = "ABCDEF0123456789"
	upperKr, err := New(upper)
	g.Expect(err).NotTo(HaveOccurred())
	byUpper := upperKr.Seal(PurposeCookie, []byte("hello"), nil)
	g.Expect(upperKr.KnowsKeyOf(PurposeCookie, byUpper)).To(BeFalse())
	_, err = upperKr.Open(PurposeCookie, byUpper, nil)
	g.Expect(err).To(MatchError(ErrNoKey))

	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	g.Expect(kr.KnowsKeyOf(PurposeCookie, tampered)).To(BeTrue(), "it does not authenticate; Open does")
	_, err = kr.Open(PurposeCookie, tampered, nil)
	g.Expect(err).To(MatchError(ErrNoKey))
}
