package geoip_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/geoip/geoiptest"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

func TestLookupMergesCountryAndASNDatabases(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	country, asn := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	geoiptest.Write(t, country, geoiptest.Network{CIDR: "192.0.2.0/24", Country: "fr"}, geoiptest.Network{CIDR: "2001:db8::/32", Country: "DE"})
	geoiptest.Write(t, asn, geoiptest.Network{CIDR: "192.0.2.0/25", ASN: 3215})
	db, err := geoip.Open([]string{country, asn}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(db.Lookup("192.0.2.10")).To(Equal(policy.Geo{Country: "FR", ASN: 3215}))
	g.Expect(db.Lookup("192.0.2.200")).To(Equal(policy.Geo{Country: "FR"}))
	g.Expect(db.Lookup("::ffff:192.0.2.10")).To(Equal(policy.Geo{Country: "FR", ASN: 3215}))
	g.Expect(db.Lookup("2001:db8::1")).To(Equal(policy.Geo{Country: "DE"}))
	g.Expect(db.Lookup("198.51.100.1")).To(Equal(policy.Geo{}))
	g.Expect(db.Lookup("not-an-ip")).To(Equal(policy.Geo{}))
	g.Expect(db.Lookup("")).To(Equal(policy.Geo{}))
}

func TestOpenRefusesAMissingOrBrokenDatabase(t *testing.T) {
	g := NewWithT(t)
	_, err := geoip.Open([]string{filepath.Join(t.TempDir(), "absent.mmdb")}, nil)
	g.Expect(err).To(MatchError(ContainSubstring("absent.mmdb")))
	_, err = geoip.Open(nil, nil)
	g.Expect(err).To(HaveOccurred())
}

func TestReloadTakesAChangedFileAndKeepsTheOldOneWhenTheNewIsBroken(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geoiptest.Write(t, path, geoiptest.Network{CIDR: "192.0.2.0/24", Country: "FR"})
	db, err := geoip.Open([]string{path}, nil)
	g.Expect(err).NotTo(HaveOccurred())

	reloaded, err := db.Reload()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reloaded).To(BeFalse(), "nothing changed")

	geoiptest.Write(t, path, geoiptest.Network{CIDR: "192.0.2.0/24", Country: "IT"})
	reloaded, err = db.Reload()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reloaded).To(BeTrue())
	g.Expect(db.Lookup("192.0.2.1").Country).To(Equal("IT"))

	g.Expect(writeFile(path, "not a database")).To(Succeed())
	_, err = db.Reload()
	g.Expect(err).To(MatchError(ContainSubstring("stays in force")))
	g.Expect(db.Lookup("192.0.2.1").Country).To(Equal("IT"))
}

func TestWatchReloadsWhenTheFileChanges(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "country.mmdb")
	geoiptest.Write(t, path, geoiptest.Network{CIDR: "192.0.2.0/24", Country: "FR"})
	db, err := geoip.Open([]string{path}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Watch(ctx, 5*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	geoiptest.Write(t, path, geoiptest.Network{CIDR: "192.0.2.0/24", Country: "ES"})
	g.Eventually(func() string { return db.Lookup("192.0.2.1").Country }, 10*time.Second, 5*time.Millisecond).Should(Equal("ES"))
}

func writeFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// BenchmarkLookup is one request.geo lookup in a database of the country
// and the ASN.
func BenchmarkLookup(b *testing.B) {
	path := filepath.Join(b.TempDir(), "geo.mmdb")
	geoiptest.Write(b, path, geoiptest.Network{CIDR: "192.0.2.0/24", Country: "FR", ASN: 3215})
	db, err := geoip.Open([]string{path}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if db.Lookup("192.0.2.10").Country != "FR" {
			b.Fatal("not found")
		}
	}
}
