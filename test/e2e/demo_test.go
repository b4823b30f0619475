//go:build e2e

package e2e

import (
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// TestDemoRunsTheSamplesAndStopsOnCtrlC runs hack/demo.sh up as `make demo`
// does: in the foreground, with config/samples applied and nginx
// configured from the sample Ingress; it says how to stop it and leaves a
// demo.env a shell can source; a component restarted meanwhile is not
// taken for a crash; then a Ctrl-C stops everything.
func TestDemoRunsTheSamplesAndStopsOnCtrlC(t *testing.T) {
	g := NewWithT(t)
	demo := harness.RunDemo(t, harness.Options{Policy: "default/admin"})

	out := demo.Output()
	g.Expect(out).To(ContainSubstring("Open            " + demo.URL + "/"))
	g.Expect(out).To(ContainSubstring("user " + demo.User + "  password " + demo.Password))
	g.Expect(out).To(ContainSubstring("nginx follows the Ingress annotations"))
	// How to stop it, as the README shows it.
	g.Expect(out).To(ContainSubstring("Stop            Ctrl-C here, or "))
	g.Expect(out).To(ContainSubstring("down (make demo-down) from another terminal"))

	// demo.env is for a shell: `. demo.env` runs cleanly and gives back
	// the values, the list of components (spaces) among them.
	sourced, err := exec.Command("bash", "-c", `set -eu; . "$1"; printf '%s\n' "$DEMO_COMPONENTS" "$DEMO_PASSWORD" "$KUBECONFIG"`,
		"bash", filepath.Join(demo.State, "demo.env")).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", sourced)
	g.Expect(strings.Split(strings.TrimSuffix(string(sourced), "\n"), "\n")).To(Equal([]string{
		"controller webhook sampleapp nginx", demo.Password, demo.Kubeconfig,
	}))
	g.Expect(demo.Setting("DEMO_COMPONENTS")).To(Equal("controller webhook sampleapp nginx"))

	ready := demo.MustKubectl(t, "", "-n", "default", "get", "mfapolicy", "admin", "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	g.Expect(ready).To(Equal("True"))

	// The challenge server's metrics are on a listener of their own.
	status := func(url string) int {
		resp, err := http.Get(url)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		return resp.StatusCode
	}
	g.Expect(demo.WebhookMetricsURL).NotTo(BeEmpty())
	g.Expect(status(demo.WebhookMetricsURL + "/metrics")).To(Equal(http.StatusOK))
	g.Expect(status(demo.WebhookURL + "/metrics")).To(Equal(http.StatusNotFound))

	c := demo.NewClient(demo.User, demo.Password)
	p := c.GetNoRedirect(t, "/")
	g.Expect(p.Status).To(Equal(http.StatusFound))
	loc, err := url.Parse(p.Location())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(demo.URL + "/challenge/default/admin"))
	g.Expect(loc.Query().Get("rd")).To(Equal(demo.URL + "/"))
	p = c.Get(t, "/")
	g.Expect(p.Status).To(Equal(http.StatusOK))
	g.Expect(p.Has("img", "qr")).To(BeTrue(), "the sample policy asks a new user to enrol")

	// A restart from another terminal is not mistaken for a crash.
	demo.Restart(harness.Webhook)
	g.Expect(demo.Wait(3*time.Second)).To(MatchError(ContainSubstring("still running")), demo.Output())
	g.Expect(c.Get(t, "/").Status).To(Equal(http.StatusOK))

	running := demo.Processes()
	g.Expect(running).To(HaveKey("nginx"))
	g.Expect(running).To(HaveLen(6))
	g.Expect(demo.Interrupt()).To(Succeed())
	g.Expect(demo.Wait(time.Minute)).To(Succeed(), demo.Output())
	g.Expect(demo.Output()).To(ContainSubstring("stopped etcd"))
	g.Expect(demo.Processes()).To(BeEmpty(), "no pid file is left")
}

// TestDemoWithTraefikInFront runs the demo as `make demo FRONT_DOOR=traefik`
// does: Traefik, with basicAuth and a forwardAuth middleware, serves the
// sample app where nginx would, with the same URLs and instructions.
func TestDemoWithTraefikInFront(t *testing.T) {
	g := NewWithT(t)
	demo := harness.RunDemo(t, harness.Options{
		Policy:     "default/admin",
		Components: []string{harness.Controller, harness.Webhook, harness.SampleApp, harness.Traefik},
		Env:        map[string]string{"FRONT_DOOR": "traefik"},
	})

	out := demo.Output()
	g.Expect(out).To(ContainSubstring("Open            " + demo.URL + "/"))
	g.Expect(out).To(ContainSubstring("user " + demo.User + "  password " + demo.Password))
	g.Expect(out).To(ContainSubstring("Traefik's basic login stands"))
	g.Expect(out).NotTo(ContainSubstring("nginx follows the Ingress annotations"))
	g.Expect(demo.Setting("FRONT_DOOR")).To(Equal("traefik"))
	g.Expect(demo.Setting("DEMO_FORWARD_AUTH_URL")).To(Equal(demo.WebhookURL + "/forward-auth/default/admin"))

	c := demo.NewClient(demo.User, demo.Password)
	p := c.GetNoRedirect(t, "/")
	g.Expect(p.Status).To(Equal(http.StatusFound), p.Body)
	loc, err := url.Parse(p.Location())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(demo.URL + "/challenge/default/admin"))
	g.Expect(loc.Query().Get("rd")).To(Equal(demo.URL + "/"))
	p = c.Get(t, "/")
	g.Expect(p.Status).To(Equal(http.StatusOK))
	g.Expect(p.Has("img", "qr")).To(BeTrue(), "the sample policy asks a new user to enrol")
	g.Expect(demo.NewClient("", "").GetNoRedirect(t, "/").Status).To(Equal(http.StatusUnauthorized), "the first factor comes first")

	running := demo.Processes()
	g.Expect(running).To(HaveKey("traefik"))
	g.Expect(running).NotTo(HaveKey("nginx"))
	g.Expect(running).To(HaveLen(6))
	g.Expect(demo.Interrupt()).To(Succeed())
	g.Expect(demo.Wait(time.Minute)).To(Succeed(), demo.Output())
	g.Expect(demo.Processes()).To(BeEmpty(), "no pid file is left")
}
