package main

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/mfa-operator/mfa-operator/internal/version"
)

// TestAPIServerRequestsNameTheBuildAndMode: what an API server sees in
// the User-Agent of each mode's requests.
func TestAPIServerRequestsNameTheBuildAndMode(t *testing.T) {
	g := NewWithT(t)
	defer func(v string) { version.Version = v }(version.Version)
	version.Version = "v1.2.3"
	agents := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agents <- r.UserAgent()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"major":"1","minor":"37","gitVersion":"v1.37.2"}`))
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: `+srv.URL+`}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)).To(Succeed())
	g.Expect(flag.CommandLine.Set(config.KubeconfigFlagName, kubeconfig)).To(Succeed())
	defer flag.CommandLine.Set(config.KubeconfigFlagName, "")

	for _, mode := range []string{"controller", "webhook"} {
		cfg, err := clusterConfig(mode)
		g.Expect(err).NotTo(HaveOccurred())
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = dc.ServerVersion()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(<-agents).To(MatchRegexp(`^mfa-operator/v1\.2\.3 \([a-z0-9]+/[a-z0-9]+\) ` + mode + `$`))
	}
}
