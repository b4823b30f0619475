package harness

// Traefik in front of an app, as a process: its file provider's dynamic
// configuration rendered from a forwardAuth middleware spec, and the
// binary hack/build-traefik.sh builds from Traefik's Go module.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TraefikForwardAuth is the part of a Traefik forwardAuth middleware the
// challenge server depends on. Its fields are named as in Traefik's dynamic
// configuration and in its Middleware CRD (spec.forwardAuth), so the spec
// of a Middleware object decodes into it as is.
type TraefikForwardAuth struct {
	// Address is the challenge server's /forward-auth/{namespace}/{policy}.
	Address string `json:"address"`
	// AuthResponseHeaders are copied from an allowing answer onto the
	// request to the app, replacing what the client sent.
	AuthResponseHeaders []string `json:"authResponseHeaders,omitempty"`
	// TrustForwardHeader passes on the X-Forwarded-* headers of the
	// request as the entry point left them.
	TrustForwardHeader bool `json:"trustForwardHeader,omitempty"`
}

// TraefikSite is one protected host behind Traefik.
type TraefikSite struct {
	// Host is the host name routers match (Host rule), e.g. app.localhost.
	Host string
	// AppURL and ChallengeURL are the app and the challenge server
	// (http://127.0.0.1:PORT).
	AppURL, ChallengeURL string
	// UsersFile is the htpasswd file of the first factor (Traefik's
	// basicAuth); IdentityHeader the header it sets to the user, replacing
	// any the client sent.
	UsersFile, IdentityHeader string
}

// TraefikDynamicConfig renders the file provider's configuration for site:
// basic authentication as the first factor on everything but the JWKS, the
// challenge pages served on the app's host under /challenge/, and every
// other path asking mfa (the forwardAuth middleware) before the app.
func TraefikDynamicConfig(site TraefikSite, mfa TraefikForwardAuth) ([]byte, error) {
	if site.Host == "" || site.AppURL == "" || site.ChallengeURL == "" || site.UsersFile == "" || site.IdentityHeader == "" {
		return nil, fmt.Errorf("TraefikDynamicConfig: every field of the site is needed: %+v", site)
	}
	if mfa.Address == "" {
		return nil, fmt.Errorf("TraefikDynamicConfig: the forwardAuth address is empty")
	}
	host := "Host(`" + site.Host + "`)"
	server := func(u string) map[string]any {
		return map[string]any{"loadBalancer": map[string]any{"servers": []any{map[string]any{"url": u}}}}
	}
	conf := map[string]any{"http": map[string]any{
		"routers": map[string]any{
			"jwks": map[string]any{
				"rule": host + " && Path(`/.well-known/jwks.json`)", "service": "mfa-challenge",
				"entryPoints": []string{"web"},
			},
			"challenge": map[string]any{
				"rule": host + " && PathPrefix(`/challenge/`)", "service": "mfa-challenge",
				"middlewares": []string{"first-factor"}, "entryPoints": []string{"web"},
			},
			"app": map[string]any{
				"rule": host, "service": "app",
				"middlewares": []string{"first-factor", "mfa"}, "entryPoints": []string{"web"},
			},
		},
		"middlewares": map[string]any{
			"first-factor": map[string]any{"basicAuth": map[string]any{
				"usersFile": site.UsersFile, "realm": "mfa-operator",
				"headerField": site.IdentityHeader, "removeHeader": true,
			}},
			"mfa": map[string]any{"forwardAuth": mfa},
		},
		"services": map[string]any{
			"app":           server(site.AppURL),
			"mfa-challenge": server(site.ChallengeURL),
		},
	}}
	return yaml.Marshal(conf)
}

// TraefikBinary is the Traefik that hack/build-traefik.sh built (make
// traefik); the test fails, saying so, when it is missing.
func TraefikBinary(t testing.TB) string {
	t.Helper()
	p, err := traefikPath(RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// traefikPath asks hack/build-traefik.sh where its binary is, without
// building it.
func traefikPath(root string) (string, error) {
	var stdout, stderr strings.Builder
	cmd := exec.Command(filepath.Join(root, "hack", "build-traefik.sh"), "--check")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("traefik: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// TraefikProcess is a running Traefik.
type TraefikProcess struct {
	// Log is its standard output and error.
	Log string
}

// StartTraefik runs Traefik with one entry point, web, on 127.0.0.1:port
// and the dynamic configuration in dir/dynamic.yaml, until the test ends.
// It returns once a request to readyURL (sent to the entry point with its
// host) gets an answer other than 404: the file provider's routers are in
// force.
func StartTraefik(t testing.TB, dir string, port int, dynamic []byte, readyURL string) *TraefikProcess {
	t.Helper()
	bin := TraefikBinary(t)
	conf := filepath.Join(dir, "dynamic.yaml")
	if err := os.WriteFile(conf, dynamic, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &TraefikProcess{Log: filepath.Join(dir, "traefik.log")}
	cmd := exec.Command(bin,
		"--entryPoints.web.address=127.0.0.1:"+strconv.Itoa(port),
		"--providers.file.filename="+conf,
		"--global.checkNewVersion=false",
		"--global.sendAnonymousUsage=false",
		"--log.level=INFO",
		"--accessLog=true",
	)
	cmd.Dir = dir
	c := &http.Client{Transport: &http.Transport{DialContext: dialLocalhost}, Timeout: 2 * time.Second}
	RunUntilReady(t, "traefik", cmd, p.Log, syscall.SIGTERM, 15*time.Second, 60*time.Second, func() bool {
		resp, err := c.Get(readyURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusNotFound
	})
	return p
}
