//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// TestMetricsHaveAListenerOfTheirOwn runs `mfa-operator webhook` with
// --metrics-addr: the decisions are counted there, the page listener (the
// front door's address) answers 404 for /metrics, and both listeners stop
// with the process.
func TestMetricsHaveAListenerOfTheirOwn(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	configDir := filepath.Join(dir, "config")
	g.Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(configDir, "apps.yaml"), []byte(providerYAML+"---\n"+policyYAML(publicRule)), 0o644)).To(Succeed())
	webhook := harness.StartWebhook(t, harness.WebhookOptions{Name: "webhook-metrics", ConfigDir: configDir, DataDir: filepath.Join(dir, "data")})

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string, header map[string]string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		g.Expect(err).NotTo(HaveOccurred())
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		return resp.StatusCode, string(body)
	}

	code, _ := get(webhook.URL+"/auth/apps/admin", map[string]string{
		"X-Original-URL": "http://app.localhost/public/x", "X-Original-Method": "GET", "X-Auth-Request-Email": "ana@example.com"})
	g.Expect(code).To(Equal(http.StatusOK))

	code, body := get(webhook.MetricsURL+"/metrics", nil)
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring(`mfa_decisions_total{namespace="apps",policy="admin",result="allow"} 1`))

	code, body = get(webhook.URL+"/metrics", nil)
	g.Expect(code).To(Equal(http.StatusNotFound))
	g.Expect(body).NotTo(ContainSubstring("mfa_decisions_total"))

	webhook.Stop(t)
	for _, url := range []string{webhook.URL + "/healthz", webhook.MetricsURL + "/metrics"} {
		_, err := client.Get(url)
		g.Expect(err).To(HaveOccurred(), "%s answers after the process stopped", url)
	}
}
