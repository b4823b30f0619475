//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// officeNetworkRule lets a client of 10.0.0.0/8 through without a second
// factor: a rule a forged X-Forwarded-For would dodge if Traefik passed it on.
const officeNetworkRule = `  - name: office-network
    when: 'cidr("10.0.0.0/8").containsIP(ip(request.ip))'
    action: Allow
`

// traefikMiddleware is the forwardAuth middleware the controller writes
// into a Traefik Middleware for apps/admin (controllers.TraefikForwardAuth),
// addressed to the challenge server on loopback instead of its Service.
func traefikMiddleware(challenge string) harness.TraefikForwardAuth {
	spec := controllers.TraefikForwardAuth(controllers.Options{Namespace: "mfa-system"}, "apps", "admin")
	u, err := url.Parse(spec["address"].(string))
	if err != nil {
		panic(err)
	}
	var headers []string
	for _, h := range spec["authResponseHeaders"].([]any) {
		headers = append(headers, h.(string))
	}
	return harness.TraefikForwardAuth{
		Address:             challenge + u.Path,
		AuthResponseHeaders: headers,
		TrustForwardHeader:  spec["trustForwardHeader"].(bool),
	}
}

// seenByApp is what the protected app saw of a request.
type seenByApp struct {
	Path          string `json:"path"`
	User          string `json:"user"`
	Multifactor   string `json:"multifactor"`
	Assertion     string `json:"assertion"`
	Identity      string `json:"identity"`
	RealIP        string `json:"realIP"`
	Authorization bool   `json:"authorization"`
}

// TestTraefikForwardAuth runs a real Traefik (built from its Go module by
// hack/build-traefik.sh) with its file provider in front of an app and the
// challenge server standalone: basic authentication as the first factor,
// its user passed as the identity header, the challenge pages on the app's
// host, and the forwardAuth middleware asking /forward-auth/apps/admin about
// everything else. Browsers come from 127.0.0.2 and 127.0.0.3; Traefik
// reaches the challenge server from 127.0.0.1, the one address in its
// --trusted-proxies.
func TestTraefikForwardAuth(t *testing.T) {
	harness.RequireBinary(t, "oathtool")
	harness.RequireBinary(t, "zbarimg")
	openssl := harness.RequireBinary(t, "openssl")
	g := NewWithT(t)
	dir := t.TempDir()
	const user, password = "ana@example.com", "ana-password"
	const user2, password2 = "bob@example.com", "bob-password"

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seenByApp{
			Path:          r.URL.RequestURI(),
			User:          r.Header.Get("X-Mfa-User"),
			Multifactor:   r.Header.Get("X-Mfa-Multifactor"),
			Assertion:     r.Header.Get("X-Mfa-Assertion"),
			Identity:      r.Header.Get("X-Auth-Request-Email"),
			RealIP:        r.Header.Get("X-Real-Ip"),
			Authorization: r.Header.Get("Authorization") != "",
		})
	}))
	t.Cleanup(app.Close)

	port := harness.FreePort(t)
	site := "http://app.localhost:" + strconv.Itoa(port)
	configDir := filepath.Join(dir, "config")
	g.Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(configDir, "apps.yaml"),
		[]byte(providerYAML+"---\n"+policyYAML(publicRule+officeNetworkRule+denyReportsRule)), 0o644)).To(Succeed())
	webhook := harness.StartWebhook(t, harness.WebhookOptions{
		Name:      "webhook-traefik",
		ConfigDir: configDir,
		DataDir:   filepath.Join(dir, "data"),
		PublicURL: site,
		// Traefik's address, and nothing else: only Traefik's word on the
		// original request (X-Forwarded-*, the identity header) is believed.
		Flags: []string{"--trusted-proxies=127.0.0.1/32"},
	})

	users := filepath.Join(dir, "htpasswd")
	var htpasswd strings.Builder
	for _, u := range [][2]string{{user, password}, {user2, password2}} {
		hash, err := exec.Command(openssl, "passwd", "-apr1", u[1]).Output()
		g.Expect(err).NotTo(HaveOccurred())
		fmt.Fprintf(&htpasswd, "%s:%s\n", u[0], strings.TrimSpace(string(hash)))
	}
	g.Expect(os.WriteFile(users, []byte(htpasswd.String()), 0o600)).To(Succeed())
	dynamic, err := harness.TraefikDynamicConfig(harness.TraefikSite{
		Host: "app.localhost", AppURL: app.URL, ChallengeURL: webhook.URL,
		UsersFile: users, IdentityHeader: "X-Auth-Request-Email",
	}, traefikMiddleware(webhook.URL))
	g.Expect(err).NotTo(HaveOccurred())
	harness.StartTraefik(t, dir, port, dynamic, site+"/.well-known/jwks.json")

	env := &harness.Env{URL: site, Host: "app.localhost:" + strconv.Itoa(port)}
	browserA, browserB := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	ana := env.NewSiteClient(browserA, user, password)
	signin := site + "/challenge/apps/admin"
	var otp *harness.OTP

	appSaw := func(t *testing.T, p *harness.Page) seenByApp {
		t.Helper()
		var seen seenByApp
		if err := json.Unmarshal([]byte(p.Body), &seen); err != nil {
			t.Fatalf("not the app's answer (%d %s): %v\n%s", p.Status, p.URL, err, p.Body)
		}
		return seen
	}

	t.Run("the first visit is a 302 to the challenge with rd the page asked for", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.GetNoRedirect(t, "/docs?q=1")
		g.Expect(p.Status).To(Equal(http.StatusFound), p.Body)
		loc, err := url.Parse(p.Location())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(signin))
		g.Expect(loc.Query().Get("rd")).To(Equal(site + "/docs?q=1"))
	})

	t.Run("enrolment and verification through Traefik lead back to rd, and the app sees the user and the factor", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.Get(t, "/docs?q=1")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		otp = harness.ParseOTPAuth(t, harness.DecodeQR(t, ana.Image(t, p, p.Find("img", "qr", "src"))))
		g.Expect(otp.Account).To(Equal(user))

		code, _ := otp.NextCode(t)
		p = ana.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.Texts("ol", "codes", "li")).NotTo(BeEmpty(), "recovery codes are shown")
		p = ana.Submit(t, p.FormWith(t, "csrf"), nil)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(Equal(site + "/docs?q=1"))

		seen := appSaw(t, p)
		g.Expect(seen.Assertion).NotTo(BeEmpty())
		claims := harness.VerifyAssertionAt(t, webhook.URL+"/.well-known/jwks.json", seen.Assertion)
		g.Expect(claims["sub"]).To(Equal(user))
		g.Expect(claims["multifactor"]).To(ContainElement("google-authenticator"))
		seen.Assertion = ""
		g.Expect(seen).To(Equal(seenByApp{Path: "/docs?q=1", User: user, Multifactor: "google-authenticator", Identity: user, RealIP: browserA.String()}))
	})

	t.Run("the second visit goes straight to the app, also once the browser session ended", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.GetNoRedirect(t, "/other")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(appSaw(t, p).User).To(Equal(user))

		_, remembered := ana.Jar.Get("mfa_remember")
		g.Expect(remembered).To(BeTrue(), "cookies: %+v", ana.Jar.All())
		ana.Jar.DropSession()
		g.Expect(ana.GetNoRedirect(t, "/other").Status).To(Equal(http.StatusOK))
		p = ana.GetNoRedirect(t, "/admin")
		g.Expect(p.Status).To(Equal(http.StatusFound), "/admin ignores the remembered browser")
		g.Expect(p.Location()).To(HavePrefix(signin + "?"))
	})

	t.Run("a path a rule denies is a 403", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.GetNoRedirect(t, "/reports")
		g.Expect(p.Status).To(Equal(http.StatusForbidden), p.Body)
	})

	t.Run("identity, X-MFA-* and X-Real-IP headers a client sends are replaced before the app", func(t *testing.T) {
		g := NewWithT(t)
		req, err := http.NewRequest(http.MethodGet, site+"/other", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("X-Auth-Request-Email", "mallory@example.com")
		req.Header.Set("X-MFA-User", "mallory@example.com")
		req.Header.Set("X-MFA-Multifactor", "forged")
		req.Header.Set("X-Real-IP", "10.1.2.3")
		p := ana.Do(t, req, false)
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		seen := appSaw(t, p)
		g.Expect(seen.Identity).To(Equal(user))
		g.Expect(seen.User).To(Equal(user))
		g.Expect(seen.Multifactor).To(Equal("google-authenticator"))
		g.Expect(seen.RealIP).To(Equal(browserA.String()), "the entry point sets X-Real-Ip to the peer")
		g.Expect(seen.Authorization).To(BeFalse(), "basicAuth's removeHeader keeps the password from the app")
	})

	// With trustForwardHeader false the middleware writes the
	// X-Forwarded-* headers from the connection Traefik received, so a
	// client's own never reach the challenge server.
	t.Run("forwarded headers a client forges do not dodge a rule", func(t *testing.T) {
		g := NewWithT(t)
		bob := env.NewSiteClient(browserB, user2, password2)
		g.Expect(bob.GetNoRedirect(t, "/public/logo.png").Status).To(Equal(http.StatusOK), "the public rule lets anyone through")
		forge := func(path string, headers map[string]string) *harness.Page {
			req, err := http.NewRequest(http.MethodGet, site+path, nil)
			g.Expect(err).NotTo(HaveOccurred())
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			return bob.Do(t, req, false)
		}
		for name, headers := range map[string]map[string]string{
			"X-Forwarded-For in the office network": {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"},
			"X-Forwarded-Uri of a public path":      {"X-Forwarded-Uri": "/public/logo.png", "X-Forwarded-Method": "GET"},
			"X-Forwarded-Host of another site":      {"X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "https"},
		} {
			p := forge("/docs", headers)
			g.Expect(p.Status).To(Equal(http.StatusFound), name)
			loc, err := url.Parse(p.Location())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(loc.Scheme+"://"+loc.Host+loc.Path).To(Equal(signin), name)
			g.Expect(loc.Query().Get("rd")).To(Equal(site+"/docs"), name)
		}
		p := forge("/reports", map[string]string{"X-Forwarded-Uri": "/public/logo.png", "X-Forwarded-For": "10.1.2.3"})
		g.Expect(p.Status).To(Equal(http.StatusForbidden), "a denied path stays denied")

		// The same headers from Traefik's address are believed: the office
		// rule is live, so the refusals above are Traefik's doing.
		req, err := http.NewRequest(http.MethodGet, webhook.URL+"/forward-auth/apps/admin", nil)
		g.Expect(err).NotTo(HaveOccurred())
		for k, v := range map[string]string{
			"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http", "X-Forwarded-Host": env.Host,
			"X-Forwarded-Uri": "/docs", "X-Forwarded-For": "10.1.2.3", "X-Auth-Request-Email": user2,
		} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))

		// Sent to the challenge server by a browser's address, they are not.
		direct := env.NewSiteClient(browserB, "", "")
		p = direct.Do(t, req.Clone(req.Context()), false)
		g.Expect(p.Status).To(Equal(http.StatusForbidden), p.Body)
	})

	t.Run("the redirect back after the challenge never leaves the site", func(t *testing.T) {
		g := NewWithT(t)
		other := env.NewSiteClient(browserB, user, password)
		p := other.Get(t, signin+"?rd="+url.QueryEscape("http://evil.example.com/steal"))
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		f := p.FormWith(t, "code")
		code, _ := otp.NextCode(t)
		req, err := http.NewRequest(http.MethodPost, f.Action, strings.NewReader(f.Values(map[string]string{"code": code}).Encode()))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		p = other.Do(t, req, false)
		g.Expect(p.Status).To(BeNumerically(">=", 300), p.Body)
		g.Expect(p.Status).To(BeNumerically("<", 400), p.Body)
		loc, err := url.Parse(p.Location())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc.Hostname()).To(Equal("app.localhost"), "redirected to %s", loc)
		g.Expect(other.GetNoRedirect(t, "/docs").Status).To(Equal(http.StatusOK), "the second factor took")
	})

	t.Run("without the first factor, Traefik's basic auth answers 401; the JWKS stays public", func(t *testing.T) {
		g := NewWithT(t)
		anonymous := env.NewSiteClient(browserB, "", "")
		p := anonymous.GetNoRedirect(t, "/docs")
		g.Expect(p.Status).To(Equal(http.StatusUnauthorized))
		g.Expect(p.Header.Get("WWW-Authenticate")).To(HavePrefix("Basic "))
		g.Expect(anonymous.GetNoRedirect(t, signin).Status).To(Equal(http.StatusUnauthorized))
		g.Expect(anonymous.GetNoRedirect(t, "/.well-known/jwks.json").Status).To(Equal(http.StatusOK), "the JWKS is public")
	})
}
