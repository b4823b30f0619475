//go:build e2e

package faults

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// nginxFrontsConf is one real nginx with a server per challenge-server
// replica: each protects a static app with auth_request against its
// replica's /auth/apps/admin, passing the original URL and method the way
// ingress-nginx does, and the browser's cookies and identity header as
// they came.
const nginxFrontsServer = `
    server {
        listen 127.0.0.1:%d;
        location = /_mfa {
            internal;
            proxy_pass %s/auth/apps/admin;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL http://` + appHost + `$request_uri;
            proxy_set_header X-Original-Method $request_method;
        }
        location / {
            auth_request /_mfa;
            root %s;
        }
    }
`

// startNginxFronts runs nginx in front of each server and returns the
// front doors' base URLs, in the servers' order.
func startNginxFronts(t *testing.T, servers []string) []string {
	g := NewWithT(t)
	nginx := harness.RequireBinary(t, "nginx")
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	g.Expect(os.MkdirAll(filepath.Join(site, "reports"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(site, "reports", "index.html"), []byte("the app\n"), 0o644)).To(Succeed())
	var conf strings.Builder
	fmt.Fprintf(&conf, "daemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log %s/error.log notice;\n", dir, dir)
	fmt.Fprintf(&conf, "events { worker_connections 128; }\nhttp {\n    access_log off;\n")
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&conf, "    %s_temp_path %s/%s;\n", p, dir, p)
	}
	var fronts []string
	for _, s := range servers {
		port := harness.FreePort(t)
		fmt.Fprintf(&conf, nginxFrontsServer, port, s, site)
		fronts = append(fronts, fmt.Sprintf("http://127.0.0.1:%d", port))
	}
	conf.WriteString("}\n")
	path := filepath.Join(dir, "nginx.conf")
	g.Expect(os.WriteFile(path, []byte(conf.String()), 0o644)).To(Succeed())
	cmd := exec.Command(nginx, "-p", dir, "-c", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	b := newBrowser("nobody@example.com")
	for _, f := range fronts {
		eventually(t, 30*time.Second, "nginx listening at "+f, func() bool {
			p, err := b.viaFront(f, "/reports/")
			return err == nil && p.Status == http.StatusUnauthorized
		})
	}
	return fronts
}

// viaFront asks front door front for path, with the browser's cookies.
func (b *browser) viaFront(front, path string) (*harness.Page, error) {
	req, err := http.NewRequest(http.MethodGet, front+path, nil)
	if err != nil {
		return nil, err
	}
	return b.try(req)
}
