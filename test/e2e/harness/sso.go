package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
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

// RunningSSO is the single sign-on that hack/sso.sh up started in dir
// (the demo's is STATE/sso), read from its sso.env; the test does not
// own it (its Stop is not for it).
func RunningSSO(t testing.TB, dir string) *SSO {
	t.Helper()
	return &SSO{Dir: dir, Settings: readSettings(t, filepath.Join(dir, "sso.env")), root: RepoRoot(t)}
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

// SignIn types a user's login into glewlwyd's login page, which the tab
// shows, and submits it.
func (s *SSO) SignIn(b *Tab, user, password string) {
	b.t.Helper()
	b.Do("sign in at the IdP as "+user,
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#loginbut")))
}

// Continue presses glewlwyd's Continue button, which sends the browser
// back to oauth2-proxy's callback with the authorization code.
func (s *SSO) Continue(b *Tab) {
	b.t.Helper()
	b.Do("continue at the IdP", chromedp.WaitVisible(chromedp.CSS("button.btn-success")), chromedp.Click(chromedp.CSS("button.btn-success")))
}

// IDToken is the ID token oauth2-proxy hands the front door for the
// browser's session: the Authorization header of its /oauth2/auth answer
// (--set-authorization-header) to a request with the browser's cookies for
// appURL. (The pages' Content-Security-Policy keeps scripts from asking
// it themselves.) Its signature is checked against glewlwyd's JWKS, and
// its issuer and audience; it returns the claims.
func (s *SSO) IDToken(t testing.TB, b *Tab, appURL string) jwt.MapClaims {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	jar, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{appURL}})
	if err != nil {
		t.Fatalf("the browser's cookies: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Settings["SSO_AUTH_URL"], nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range jar.Cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	answer, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("oauth2-proxy's /oauth2/auth: %v", err)
	}
	answer.Body.Close()
	token, ok := strings.CutPrefix(answer.Header.Get("Authorization"), "Bearer ")
	if answer.StatusCode != http.StatusAccepted || !ok {
		t.Fatalf("oauth2-proxy's /oauth2/auth answered %d without a bearer token", answer.StatusCode)
	}
	resp, err := http.Get(s.Settings["SSO_JWKS_URL"])
	if err != nil {
		t.Fatalf("glewlwyd's JWKS: %v", err)
	}
	doc, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("glewlwyd's JWKS: %d %v", resp.StatusCode, err)
	}
	keys, err := jwks.Parse(doc)
	if err != nil {
		t.Fatalf("glewlwyd's JWKS: %v\n%s", err, doc)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key %q in glewlwyd's JWKS", kid)
		}
		return k.Key, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(s.Settings["SSO_ISSUER"]),
		jwt.WithAudience(s.Settings["SSO_CLIENT_ID"]), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("the ID token does not verify: %v", err)
	}
	return claims
}

// TOTP is the authenticator app of the third user (SSO_USER3), whose
// login at the IdP asks for its code.
func (s *SSO) TOTP() *OTP {
	return &OTP{Account: s.Settings["SSO_USER3"], Secret: s.Settings["SSO_TOTP_SECRET3"], Algorithm: "SHA1", Digits: 6, Period: 30 * time.Second}
}

// EnterCode types a one-time code into glewlwyd's OTP form (the second
// step of a login whose scope asks for it) and submits it.
func (s *SSO) EnterCode(b *Tab, code string) {
	b.t.Helper()
	b.Do("enter the one-time code at the IdP",
		chromedp.WaitVisible(chromedp.CSS("#otpSchemeForm #value")),
		chromedp.SendKeys(chromedp.CSS("#otpSchemeForm #value"), code),
		chromedp.Click(chromedp.CSS("#otpSchemeForm #but")))
}
