package version

import (
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stamp sets Version and Revision as -ldflags -X would, for one test.
func stamp(t *testing.T, v, rev string) {
	oldV, oldRev := Version, Revision
	Version, Revision = v, rev
	t.Cleanup(func() { Version, Revision = oldV, oldRev })
}

func TestStringNamesVersionShortRevisionAndPlatform(t *testing.T) {
	g := NewWithT(t)
	stamp(t, "v1.2.3", "0123456789abcdef0123456789abcdef01234567")
	g.Expect(String()).To(Equal("v1.2.3 0123456789ab (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"))
}

func TestProductIsAnHTTPToken(t *testing.T) {
	g := NewWithT(t)
	stamp(t, "v1.2.3-4-gabc (local)", "")
	g.Expect(Product("mfa-operator")).To(Equal("mfa-operator/v1.2.3-4-gabc--local-"))
	g.Expect(UserAgent("controller")).To(Equal("mfa-operator/v1.2.3-4-gabc--local- (" + runtime.GOOS + "/" + runtime.GOARCH + ") controller"))
}

func TestCollectorIsOneGaugeWithTheBuildsLabels(t *testing.T) {
	g := NewWithT(t)
	stamp(t, "v1.2.3", "abc123")
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	want := `# HELP mfa_operator_build_info The build of mfa-operator that serves these metrics: version, source revision and Go version; always 1.
# TYPE mfa_operator_build_info gauge
mfa_operator_build_info{goversion="` + runtime.Version() + `",revision="abc123",version="v1.2.3"} 1
`
	g.Expect(testutil.GatherAndCompare(reg, strings.NewReader(want))).To(Succeed())
}
