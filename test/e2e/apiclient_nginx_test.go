//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// apiClientNginxConf is the standalone nginx of the README with the
// snippet that answers API clients a 401 problem document instead of the
// redirect to the challenge (section "API clients"). No first factor: the
// identity header is set by nginx itself.
const apiClientNginxConf = `%[1]s
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

    map $http_accept $mfa_html { default 0; "" 1; "~*text/html" 1; }
    map $http_x_requested_with $mfa_xhr { default 1; "" 0; }
    map $http_cookie $mfa_no_cookie { default 0; "" 1; }
    map "$mfa_no_cookie$http_authorization" $mfa_bearer_only { default 0; "~*^1bearer " 1; }
    map "$mfa_xhr$mfa_bearer_only$mfa_html" $mfa_api_client { default 1; "001" 0; }

    server {
        listen 127.0.0.1:%[3]d;
        server_name app.localhost;

        location = /_mfa_auth {
            internal;
            proxy_pass              http://%[4]s/auth/apps/admin;
            proxy_pass_request_body off;
            proxy_set_header        Content-Length "";
            proxy_set_header        X-Original-URL    $scheme://$http_host$request_uri;
            proxy_set_header        X-Original-Method $request_method;
            proxy_set_header        X-Forwarded-For   $remote_addr;
            proxy_set_header        X-Auth-Request-Email ana@example.com;
        }
        location / {
            auth_request     /_mfa_auth;
            auth_request_set $mfa_location $upstream_http_location;
            error_page 401 = @mfa_challenge;
            proxy_pass http://%[5]s;
        }
        location @mfa_challenge {
            default_type application/problem+json;
            if ($mfa_api_client) {
                add_header WWW-Authenticate 'MFA realm="apps/admin", uri="$mfa_location"' always;
                add_header Cache-Control no-store always;
                return 401 '{"type":"https://mfa.operator.dev/problems/second-factor-required","title":"A second factor is required","status":401,"challenge_url":"$mfa_location"}\n';
            }
            return 302 $mfa_location;
        }
    }
}
`

// TestNGINXAuthRequestAPIClients runs real nginx with the README's
// auth_request snippet for API clients in front of /auth: a browser is
// redirected to the challenge, an API client (Accept without text/html,
// X-Requested-With, a bearer token without cookies) gets a 401 with
// WWW-Authenticate and a problem document naming the same challenge URL.
func TestNGINXAuthRequestAPIClients(t *testing.T) {
	nginx := harness.RequireBinary(t, "nginx")
	g := NewWithT(t)
	dir := t.TempDir()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("app\n")) }))
	t.Cleanup(app.Close)

	port := harness.FreePort(t)
	site := "http://app.localhost:" + strconv.Itoa(port)
	configDir := filepath.Join(dir, "config")
	g.Expect(os.MkdirAll(configDir, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(configDir, "apps.yaml"), []byte(providerYAML+"---\n"+policyYAML("")), 0o644)).To(Succeed())
	webhook := harness.StartWebhook(t, harness.WebhookOptions{Name: "webhook-api-clients", ConfigDir: configDir, DataDir: filepath.Join(dir, "data"), PublicURL: site})

	ngx := filepath.Join(dir, "nginx")
	g.Expect(os.MkdirAll(filepath.Join(ngx, "tmp"), 0o755)).To(Succeed())
	userDirective := ""
	if os.Geteuid() == 0 {
		userDirective = "user root root;"
	}
	conf := filepath.Join(ngx, "nginx.conf")
	g.Expect(os.WriteFile(conf, []byte(fmt.Sprintf(apiClientNginxConf, userDirective, ngx, port,
		strings.TrimPrefix(webhook.URL, "http://"), strings.TrimPrefix(app.URL, "http://"))), 0o644)).To(Succeed())
	startNginx(t, nginx, conf, ngx, port)

	env := &harness.Env{URL: site, Host: "app.localhost:" + strconv.Itoa(port)}
	challenge := site + "/challenge/apps/admin?rd=" + strings.ReplaceAll(strings.ReplaceAll(site, ":", "%3A"), "/", "%2F") + "%2Freports"
	for _, tt := range []struct {
		name    string
		headers map[string]string
		api     bool
	}{
		{"a browser navigation", map[string]string{"Accept": "text/html,*/*;q=0.8"}, false},
		{"Accept application/json", map[string]string{"Accept": "application/json"}, true},
		{"X-Requested-With", map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, true},
		{"a bearer token without cookies", map[string]string{"Accept": "text/html", "Authorization": "Bearer abc.def"}, true},
		{"a bearer token with cookies", map[string]string{"Accept": "text/html", "Authorization": "Bearer abc.def", "Cookie": "theme=dark"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			req, err := http.NewRequest(http.MethodGet, site+"/reports", nil)
			g.Expect(err).NotTo(HaveOccurred())
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			p := env.NewClient("", "").Do(t, req, false)
			if !tt.api {
				g.Expect(p.Status).To(Equal(http.StatusFound), p.Body)
				g.Expect(p.Location()).To(Equal(challenge))
				return
			}
			g.Expect(p.Status).To(Equal(http.StatusUnauthorized), p.Body)
			g.Expect(p.Location()).To(BeEmpty())
			g.Expect(p.Header.Get("WWW-Authenticate")).To(Equal(`MFA realm="apps/admin", uri="` + challenge + `"`))
			g.Expect(p.Header.Get("Content-Type")).To(Equal("application/problem+json"))
			var doc map[string]any
			g.Expect(json.Unmarshal([]byte(p.Body), &doc)).To(Succeed(), p.Body)
			g.Expect(doc).To(HaveKeyWithValue("challenge_url", challenge))
			g.Expect(doc).To(HaveKeyWithValue("status", BeNumerically("==", 401)))
		})
	}
}
