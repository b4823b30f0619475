//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// publicRule lets /public through without a second factor; placed before
// the rules of policyYAML, it makes the standalone configuration behind
// Caddy (with providerYAML: the config directory skips the Namespace).
const publicRule = `  - name: public
    when: request.path.startsWith("/public")
    action: Allow
`

// caddyfile puts Caddy in front of the app the way the README shows:
// basic auth as the first factor, its user passed as the identity header
// (replacing any the client sent), the challenge pages proxied on the
// app's own host, and forward_auth to /forward-auth for everything else.
const caddyfile = `{
	admin off
	auto_https off
}

http://app.localhost:%[1]d {
	route {
		basicauth {
			%[2]s %[3]s
		}
		request_header X-Auth-Request-Email {http.auth.user.id}
		handle /challenge/* {
			reverse_proxy %[4]s
		}
		handle {
			forward_auth %[4]s {
				uri /forward-auth/apps/admin
				copy_headers X-Mfa-User X-Mfa-Multifactor X-Mfa-Assertion
			}
			reverse_proxy %[5]s
		}
	}
}
`

// caddyApp is what the protected app saw of a request.
type caddyApp struct {
	Path         string `json:"path"`
	User         string `json:"user"`
	Multifactor  string `json:"multifactor"`
	HasAssertion bool   `json:"hasAssertion"`
	Identity     string `json:"identity"`
}

// TestCaddyForwardAuth runs Debian's Caddy with forward_auth in front of an
// app, and the challenge server standalone: the 302 to the challenge comes
// through Caddy, the user enrols (QR code read by zbarimg, code from
// oathtool) on pages Caddy proxies, and the app then receives the user and
// the factor that Caddy copied from the answer.
func TestCaddyForwardAuth(t *testing.T) {
	caddy := harness.RequireBinary(t, "caddy")
	harness.RequireBinary(t, "oathtool")
	harness.RequireBinary(t, "zbarimg")
	g := NewWithT(t)
	dir := t.TempDir()
	const user, password = "ana@example.com", "ana-password"

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(caddyApp{
			Path:         r.URL.RequestURI(),
			User:         r.Header.Get("X-Mfa-User"),
			Multifactor:  r.Header.Get("X-Mfa-Multifactor"),
			HasAssertion: r.Header.Get("X-Mfa-Assertion") != "",
			Identity:     r.Header.Get("X-Auth-Request-Email"),
		})
	}))
	t.Cleanup(app.Close)

	port := harness.FreePort(t)
	site := "http://app.localhost:" + strconv.Itoa(port)
	configDir := filepath.Join(dir, "config")
	g.Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(configDir, "apps.yaml"), []byte(providerYAML+"---\n"+policyYAML(publicRule)), 0o644)).To(Succeed())
	webhook := harness.StartWebhook(t, harness.WebhookOptions{
		Name:      "webhook-caddy",
		ConfigDir: configDir,
		DataDir:   filepath.Join(dir, "data"),
		PublicURL: site,
	})

	out, err := exec.Command(caddy, "hash-password", "--plaintext", password).Output()
	g.Expect(err).NotTo(HaveOccurred())
	hash := strings.TrimSpace(string(out))
	conf := filepath.Join(dir, "Caddyfile")
	upstream := strings.TrimPrefix(webhook.URL, "http://")
	g.Expect(os.WriteFile(conf, []byte(fmt.Sprintf(caddyfile, port, user, hash, upstream, strings.TrimPrefix(app.URL, "http://"))), 0o644)).To(Succeed())
	startCaddy(t, caddy, conf, dir, port)

	env := &harness.Env{URL: site, Host: "app.localhost:" + strconv.Itoa(port), User: user, Password: password}
	ana := env.NewClient(user, password)

	t.Run("without a second factor, forward_auth's answer is a 302 to the challenge", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.GetNoRedirect(t, "/reports?q=1")
		g.Expect(p.Status).To(Equal(http.StatusFound), p.Body)
		loc, err := url.Parse(p.Location())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(site + "/challenge/apps/admin"))
		g.Expect(loc.Query().Get("rd")).To(Equal(site + "/reports?q=1"))
	})

	t.Run("enrolment through Caddy, then the app sees the user and the factor", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.Get(t, "/reports?q=1")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		otp := harness.ParseOTPAuth(t, harness.DecodeQR(t, ana.Image(t, p, p.Find("img", "qr", "src"))))
		g.Expect(otp.Account).To(Equal(user))

		code, _ := otp.NextCode(t)
		p = ana.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.Texts("ol", "codes", "li")).NotTo(BeEmpty(), "recovery codes are shown")
		p = ana.Submit(t, p.FormWith(t, "csrf"), nil)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(Equal(site + "/reports?q=1"))

		var seen caddyApp
		g.Expect(json.Unmarshal([]byte(p.Body), &seen)).To(Succeed(), p.Body)
		g.Expect(seen).To(Equal(caddyApp{Path: "/reports?q=1", User: user, Multifactor: "google-authenticator", HasAssertion: true, Identity: user}))
	})

	t.Run("an identity header sent by the client is replaced by Caddy's", func(t *testing.T) {
		g := NewWithT(t)
		req, err := http.NewRequest(http.MethodGet, site+"/reports", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("X-Auth-Request-Email", "mallory@example.com")
		p := ana.Do(t, req, false)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		var seen caddyApp
		g.Expect(json.Unmarshal([]byte(p.Body), &seen)).To(Succeed(), p.Body)
		g.Expect(seen.User).To(Equal(user))
		g.Expect(seen.Identity).To(Equal(user))
	})

	t.Run("a rule's Allow needs no second factor; another browser is challenged", func(t *testing.T) {
		g := NewWithT(t)
		other := env.NewClient(user, password)
		g.Expect(other.GetNoRedirect(t, "/public/logo.png").Status).To(Equal(http.StatusOK))
		g.Expect(other.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound))
		anonymous := env.NewClient("", "")
		g.Expect(anonymous.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusUnauthorized), "Caddy's basic auth comes first")
	})
}

// startCaddy runs `caddy run` on conf until the test ends and waits until
// it answers on port.
func startCaddy(t *testing.T, caddy, conf, dir string, port int) {
	t.Helper()
	cmd := exec.Command(caddy, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	// Any answer means it listens (the site is only served for
	// app.localhost; another host gets an empty 200).
	harness.RunUntilReady(t, "caddy", cmd, filepath.Join(dir, "caddy.log"), syscall.SIGTERM, 10*time.Second, 30*time.Second,
		answers("http://127.0.0.1:"+strconv.Itoa(port)+"/"))
}

// answers is a readiness check: any HTTP answer from u.
func answers(u string) func() bool {
	c := &http.Client{Timeout: 2 * time.Second}
	return func() bool {
		resp, err := c.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
}
