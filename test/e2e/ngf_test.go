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

// ngfConf is nginx rendered the way NGINX Gateway Fabric renders an
// HTTPRoute rule with the Gateway API ExternalAuth filter (protocol HTTP,
// path /ext-authz/apps/admin) in front of the app: auth_request to an
// internal location that proxies to the challenge server's Service with
// the prefix followed by the original request-target, the original Host
// and method, X-MFA-* copied from the answer to the upstream request.
// Added as a SnippetsFilter: the redirect of a missing second factor
// (nginx's auth_request passes only 2xx, 401 and 403 on; the 302 the
// dialect answers comes back as a 500 that error_page turns into the
// redirect it was). Basic authentication stands in for the first factor.
// The challenge pages are another rule of the route, without the filter.
const ngfConf = `%[1]s
daemon off;
master_process on;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/client_body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;

    upstream mfa-challenge { server %[4]s; }
    upstream app { server %[5]s; }

    server {
        listen 127.0.0.1:%[3]d;
        server_name app.localhost;
        auth_basic "first factor";
        auth_basic_user_file %[2]s/htpasswd;

        location /challenge/ {
            proxy_set_header Host $http_host;
            proxy_set_header X-Auth-Request-Email $remote_user;
            proxy_set_header Authorization "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_pass http://mfa-challenge;
        }

        location / {
            auth_request /_ngf-internal-extauth-apps-admin;
            auth_request_set $auth_x_mfa_user $upstream_http_x_mfa_user;
            auth_request_set $auth_x_mfa_multifactor $upstream_http_x_mfa_multifactor;
            auth_request_set $auth_x_mfa_assertion $upstream_http_x_mfa_assertion;
            proxy_set_header X-MFA-User $auth_x_mfa_user;
            proxy_set_header X-MFA-Multifactor $auth_x_mfa_multifactor;
            proxy_set_header X-MFA-Assertion $auth_x_mfa_assertion;

            # SnippetsFilter: a missing second factor is a redirect.
            auth_request_set $mfa_location $upstream_http_location;
            error_page 500 = @mfa-challenge;

            proxy_set_header Host $http_host;
            proxy_set_header X-Auth-Request-Email $remote_user;
            proxy_set_header Authorization "";
            proxy_pass http://app;
        }

        location = /_ngf-internal-extauth-apps-admin {
            internal;
            proxy_method $request_method;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Auth-Request-Email $remote_user;
            proxy_set_header Authorization "";
            proxy_pass http://mfa-challenge/ext-authz/apps/admin$request_uri;
        }

        location @mfa-challenge {
            if ($mfa_location = "") {
                return 500;
            }
            add_header Cache-Control no-store always;
            return 302 $mfa_location;
        }
    }
}
`

// deniedRule denies /denied for everyone.
const deniedRule = `  - name: denied
    when: request.path.startsWith("/denied")
    action: Deny
`

// TestNGINXGatewayFabricExternalAuth runs real nginx configured as NGINX
// Gateway Fabric renders the ExternalAuth filter, in front of an app, with
// the challenge server standalone answering /ext-authz: a browser is sent
// to the challenge, enrols (QR code read by zbarimg, code from oathtool),
// comes back to the app with the user and the factor; the browser is then
// remembered, another browser verifies with a code, a rule's denial is a
// 403, and an API client gets a 401 with WWW-Authenticate, not a redirect.
func TestNGINXGatewayFabricExternalAuth(t *testing.T) {
	nginx := harness.RequireBinary(t, "nginx")
	harness.RequireBinary(t, "oathtool")
	harness.RequireBinary(t, "zbarimg")
	harness.RequireBinary(t, "openssl")
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
	g.Expect(os.WriteFile(filepath.Join(configDir, "apps.yaml"), []byte(providerYAML+"---\n"+policyYAML(deniedRule)), 0o644)).To(Succeed())
	webhook := harness.StartWebhook(t, harness.WebhookOptions{
		Name:      "webhook-ngf",
		ConfigDir: configDir,
		DataDir:   filepath.Join(dir, "data"),
		PublicURL: site,
	})

	ngx := filepath.Join(dir, "nginx")
	g.Expect(os.MkdirAll(filepath.Join(ngx, "tmp"), 0o755)).To(Succeed())
	hash, err := exec.Command("openssl", "passwd", "-apr1", password).Output()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(ngx, "htpasswd"), []byte(user+":"+strings.TrimSpace(string(hash))+"\n"), 0o644)).To(Succeed())
	userDirective := ""
	if os.Geteuid() == 0 {
		userDirective = "user root root;"
	}
	conf := filepath.Join(ngx, "nginx.conf")
	g.Expect(os.WriteFile(conf, []byte(fmt.Sprintf(ngfConf, userDirective, ngx, port,
		strings.TrimPrefix(webhook.URL, "http://"), strings.TrimPrefix(app.URL, "http://"))), 0o644)).To(Succeed())
	startNginx(t, nginx, conf, ngx, port)

	env := &harness.Env{URL: site, Host: "app.localhost:" + strconv.Itoa(port), User: user, Password: password}
	ana := env.NewClient(user, password)
	var otp *harness.OTP

	t.Run("without a second factor, the browser is redirected to the challenge", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.GetNoRedirect(t, "/reports?q=1")
		g.Expect(p.Status).To(Equal(http.StatusFound), p.Body)
		loc, err := url.Parse(p.Location())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(site + "/challenge/apps/admin"))
		g.Expect(loc.Query().Get("rd")).To(Equal(site + "/reports?q=1"))
	})

	t.Run("enrolment, then the app sees the user and the factor", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.Get(t, "/reports?q=1")
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
		g.Expect(p.URL.String()).To(Equal(site + "/reports?q=1"))
		var seen caddyApp
		g.Expect(json.Unmarshal([]byte(p.Body), &seen)).To(Succeed(), p.Body)
		g.Expect(seen).To(Equal(caddyApp{Path: "/reports?q=1", User: user, Multifactor: "google-authenticator", HasAssertion: true, Identity: user}))
	})

	t.Run("the browser is remembered: no challenge on the next request", func(t *testing.T) {
		g := NewWithT(t)
		p := ana.GetNoRedirect(t, "/other/page")
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		var seen caddyApp
		g.Expect(json.Unmarshal([]byte(p.Body), &seen)).To(Succeed(), p.Body)
		g.Expect(seen.User).To(Equal(user))
	})

	t.Run("another browser verifies with a code", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(otp).NotTo(BeNil(), "enrolment ran")
		other := env.NewClient(user, password)
		g.Expect(other.GetNoRedirect(t, "/reports").Status).To(Equal(http.StatusFound))
		p := other.Get(t, "/reports")
		g.Expect(p.URL.Path).To(Equal("/challenge/apps/admin"))
		g.Expect(p.Find("img", "qr", "src")).To(BeEmpty(), "enrolled already: a verification, not a QR code")
		code, _ := otp.NextCode(t)
		p = other.Submit(t, p.FormWith(t, "code"), map[string]string{"code": code})
		g.Expect(p.Status).To(Equal(http.StatusOK), p.Body)
		g.Expect(p.URL.String()).To(Equal(site + "/reports"))
		g.Expect(p.Body).To(ContainSubstring(`"multifactor":"google-authenticator"`))
	})

	t.Run("a rule's denial is a 403", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(ana.GetNoRedirect(t, "/denied/x").Status).To(Equal(http.StatusForbidden))
	})

	t.Run("an API client gets 401 with WWW-Authenticate, not a redirect", func(t *testing.T) {
		g := NewWithT(t)
		api := env.NewClient(user, password)
		req, err := http.NewRequest(http.MethodGet, site+"/reports", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Accept", "application/json")
		p := api.Do(t, req, false)
		g.Expect(p.Status).To(Equal(http.StatusUnauthorized), p.Body)
		g.Expect(p.Location()).To(BeEmpty())
		g.Expect(p.Header.Get("WWW-Authenticate")).To(HavePrefix(`MFA realm="apps/admin", uri="` + site + `/challenge/apps/admin?rd=`))
	})
}

// startNginx runs nginx on conf (prefix dir) until the test ends and waits
// until it answers on port.
func startNginx(t *testing.T, nginx, conf, dir string, port int) {
	t.Helper()
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", "stderr")
	// Any answer means it listens (401: the first factor).
	harness.RunUntilReady(t, "nginx", cmd, filepath.Join(dir, "nginx.log"), syscall.SIGQUIT, 10*time.Second, 30*time.Second,
		answers("http://127.0.0.1:"+strconv.Itoa(port)+"/"))
}
