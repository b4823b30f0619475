package harness

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// SSO is a running single sign-on (hack/sso.sh): glewlwyd as the OpenID
// Connect provider with two local users, and oauth2-proxy as its client.
type SSO struct {
	Dir string
	// Settings are DIR/sso.env: SSO_ISSUER, SSO_JWKS_URL, SSO_CLIENT_ID,
	// SSO_AUTH_URL, SSO_SIGNIN_URL, SSO_USER, SSO_PASSWORD, ...
	Settings  map[string]string
	ProxyPort int
	root      string
	environ   []string
}

// StartSSO runs hack/sso.sh up for an app served at appURL (where the
// front door serves oauth2-proxy's /oauth2/), and stops it when the test
// ends.
func StartSSO(t testing.TB, appURL string) *SSO {
	t.Helper()
	RequireBinary(t, "glewlwyd")
	root := RepoRoot(t)
	s := &SSO{Dir: filepath.Join(t.TempDir(), "sso"), ProxyPort: FreePort(t), root: root}
	idp := FreePort(t)
	for idp == s.ProxyPort {
		idp = FreePort(t)
	}
	s.environ = append(os.Environ(), "SSO_IDP_PORT="+strconv.Itoa(idp), "SSO_PROXY_PORT="+strconv.Itoa(s.ProxyPort), "SSO_APP_URL="+appURL)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"glewlwyd.log", "oauth2-proxy.log"} {
				b, _ := os.ReadFile(filepath.Join(s.Dir, name))
				t.Logf("%s, last 4 KiB:\n%s", name, tail(b, 4096))
			}
		}
		s.Stop(t)
	})
	s.run(t, "up", s.Dir)
	s.Settings = readSettings(t, filepath.Join(s.Dir, "sso.env"))
	return s
}

func (s *SSO) run(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.root, "hack", "sso.sh"), args...)
	cmd.Env = s.environ
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/sso.sh %v: %v\n%s", args, err, out)
	}
}

// Stop stops glewlwyd and oauth2-proxy: the first factor is down.
func (s *SSO) Stop(t testing.TB) { s.run(t, "down", s.Dir) }

// Nginx renders hack/sso/nginx.conf.tmpl and runs nginx on port in front
// of the app at appPort, asking the challenge server at webhookPort about
// the MFAPolicy policy (namespace/name). It is stopped when the test ends.
func (s *SSO) Nginx(t testing.TB, port int, host string, appPort, webhookPort int, policy string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nginx")
	s.run(t, "nginx", dir, strconv.Itoa(port), host, strconv.Itoa(appPort), strconv.Itoa(webhookPort), policy)
	cmd := exec.Command(RequireBinary(t, "nginx"), "-e", "stderr", "-c", filepath.Join(dir, "nginx.conf"), "-p", dir)
	logf, err := os.Create(filepath.Join(dir, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "nginx.log"))
			t.Logf("nginx log:\n%s", tail(b, 4096))
		}
	})
	WaitListening(t, port)
}

// ForgetSSOSession deletes oauth2-proxy's session cookie in the browser,
// as when the session expires.
func ForgetSSOSession(ctx context.Context, appURL string) error {
	_, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "_oauth2_proxy", URL: appURL})
	return err
}

// WaitListening waits until something accepts connections on
// 127.0.0.1:port.
func WaitListening(t testing.TB, port int) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
