package webhook

import (
	"net/http"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/geoip/geoiptest"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
)

// geoPolicyYAML denies requests from outside France and from one network.
const geoPolicyYAML = coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: geo, namespace: apps }
spec:
  hosts: [geo.example.com]
  identity:
    header: { user: X-Auth-Request-Email }
  rules:
  - name: bad-network
    when: 'request.geo.asn == 64496'
    action: Deny
  - name: france
    when: 'request.geo.country == "FR"'
    action: Allow
  - name: elsewhere
    when: 'true'
    action: Deny
`

// testGeoDB writes and opens a database: 192.0.2.0/24 is in France,
// 192.0.2.128/25 in AS64496, 198.51.100.0/24 in Germany.
func testGeoDB(t testing.TB) *geoip.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	geoiptest.Write(t, path,
		geoiptest.Network{CIDR: "192.0.2.0/24", Country: "FR"},
		geoiptest.Network{CIDR: "192.0.2.128/25", Country: "FR", ASN: 64496},
		geoiptest.Network{CIDR: "198.51.100.0/24", Country: "DE", ASN: 3320})
	db, err := geoip.Open([]string{path}, nil)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return db
}

// loadWithGeo puts objects in force as a controller with --geoip-db builds
// them.
func (f *coreFixture) loadWithGeo(yamlDocs string) {
	f.t.Helper()
	g := NewWithT(f.t)
	objs := source.NewObjects()
	g.Expect(objs.AddFile("test.yaml", []byte(yamlDocs))).To(Succeed())
	b, verdicts := objs.BuildWith(nil, policy.BuildOptions{GeoIP: true})
	for k, err := range verdicts.Policies {
		g.Expect(err).NotTo(HaveOccurred(), "MFAPolicy %s", k)
	}
	_, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.s.config.ApplyBundle(b, hash, "test")).To(Succeed())
}

func geoRequest(client string) *http.Request {
	r := authRequest("/auth/apps/geo", "https://geo.example.com/", map[string]string{"X-Auth-Request-Email": ana})
	r.Header.Set("X-Forwarded-For", client)
	return r
}

func TestRulesReadTheCountryAndASNOfTheClient(t *testing.T) {
	db := testGeoDB(t)
	f := newCoreServer(t, "", func(o *Options) { o.GeoIP = db })
	f.loadWithGeo(geoPolicyYAML)
	for client, want := range map[string]int{
		"192.0.2.10":    http.StatusOK,        // France
		"192.0.2.200":   http.StatusForbidden, // France, but AS64496
		"198.51.100.20": http.StatusForbidden, // Germany
		"203.0.113.9":   http.StatusForbidden, // unknown
	} {
		g := NewWithT(t)
		w := f.serve(geoRequest(client))
		g.Expect(w.Code).To(Equal(want), "client %s", client)
	}
}

// A policy reading request.geo on a server without a database fails
// closed (a bundle built when the operator had one, or kept from then).
func TestAGeoPolicyWithoutADatabaseFailsClosed(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, "")
	f.loadWithGeo(geoPolicyYAML)
	w := f.serve(geoRequest("192.0.2.10"))
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(f.logs.String()).To(ContainSubstring("no GeoIP database"))
}

// Only policies that read request.geo are looked up.
func TestOnlyGeoPoliciesAreLookedUp(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, "", func(o *Options) { o.GeoIP = testGeoDB(t) })
	f.loadWithGeo(coreAdminPolicyYAML + geoPolicyYAML[len(coreProvidersYAML):])
	sn := f.s.config.snapshot()
	g.Expect(sn.entry("apps", "admin").needsGeo).To(BeFalse())
	g.Expect(sn.entry("apps", "geo").needsGeo).To(BeTrue())
}

// geoBenchPolicy allows what when holds and denies the rest.
func geoBenchPolicy(when string) string {
	return coreProvidersYAML + `
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: geo, namespace: apps }
spec:
  hosts: [geo.example.com]
  identity:
    header: { user: X-Auth-Request-Email }
  default: Deny
  rules:
  - name: one
    when: '` + when + `'
    action: Allow
`
}

// BenchmarkAuthGeo is /auth with one Allow rule on the client's country (a
// database lookup per request), next to the same rule on the method: the
// difference is the cost of the lookup.
func BenchmarkAuthGeo(b *testing.B) {
	for name, when := range map[string]string{
		"country": `request.geo.country == "FR"`,
		"method":  `request.method == "GET"`,
	} {
		b.Run(name, func(b *testing.B) {
			f := newCoreServer(b, "", func(o *Options) { o.Logger = discardLogger(); o.GeoIP = testGeoDB(b) })
			f.loadWithGeo(geoBenchPolicy(when))
			benchServe(b, f, geoRequest("192.0.2.10"), http.StatusOK)
		})
	}
}
