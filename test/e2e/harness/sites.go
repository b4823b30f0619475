package harness

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Several sites behind one front door, as a cluster's ingress controller
// serves the hosts of several teams: a browser that resolves their names to
// 127.0.0.1, nginx rewired to another policy as ingress-nginx is when an
// Ingress's annotations change, and assertions checked against keys fetched
// from the challenge server itself (the way the sample app does).

// NewSiteClient returns a client like NewClient that also resolves hosts
// (e.g. a.example.test, b.example.test) to 127.0.0.1, as an /etc/hosts entry
// would, and sends the first-factor login to each of them on any port: one
// browser going to several sites whose front doors share the first factor.
//
// Its connections come from the loopback address from (e.g. 127.0.0.12;
// the zero Addr: the system's choice), so that the front doors report
// browsers as different clients, as browsers on different networks are:
// the challenge server limits form submissions per client address.
func (e *Env) NewSiteClient(from netip.Addr, user, password string, hosts ...string) *Client {
	c := &Client{env: e, User: user, Password: password, Jar: NewJar()}
	var d net.Dialer
	if from.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
	}
	local := map[string]bool{}
	for _, h := range hosts {
		local[strings.ToLower(h)] = true
	}
	if host, _, err := net.SplitHostPort(e.Host); err == nil {
		local[strings.ToLower(host)] = true
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if host = strings.ToLower(host); local[host] || host == "localhost" || strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	tr := &http.Transport{
		DialContext:     dial,
		MaxIdleConns:    8,
		IdleConnTimeout: 30 * time.Second,
	}
	rt := &siteLoginTransport{c: c, hosts: local, next: tr}
	c.follow = &http.Client{Transport: rt, Jar: c.Jar, Timeout: 30 * time.Second}
	c.noFollow = &http.Client{Transport: rt, Jar: c.Jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

// siteLoginTransport sends the basic login to every site host, whatever
// the port (nginx and Caddy listen on different ones).
type siteLoginTransport struct {
	c     *Client
	hosts map[string]bool
	next  http.RoundTripper
}

func (s *siteLoginTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.c.User != "" && s.hosts[strings.ToLower(r.URL.Hostname())] && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.SetBasicAuth(s.c.User, s.c.Password)
	}
	return s.next.RoundTrip(r)
}

// WireNginx renders nginx again with another auth-url and auth-signin and
// restarts it, as ingress-nginx reloads when an Ingress's annotations
// change or another Ingress takes the host. It lasts until the next call.
func (e *Env) WireNginx(t testing.TB, authURL, signinURL string) {
	t.Helper()
	// The last value of a variable in a command's environment wins.
	e.environ = append(e.environ, "DEMO_AUTH_URL="+authURL, "DEMO_SIGNIN_URL="+signinURL)
	if out, err := e.demo(2*time.Minute, "restart", Nginx); err != nil {
		t.Fatalf("hack/demo.sh restart nginx (auth-url %s): %v\n%s", authURL, err, out)
	}
	for name, pid := range e.Processes() {
		e.started[name] = pid
	}
}

// VerifyAssertionAt checks an X-MFA-Assertion as an app would, against the
// keys published at jwksURL (ES256 only, time claims required), and
// returns its claims.
func VerifyAssertionAt(t testing.TB, jwksURL, assertion string) jwt.MapClaims {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(jwksURL)
	if err != nil {
		t.Fatalf("GET %s: %v", jwksURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", jwksURL, resp.StatusCode, err, body)
	}
	return verifyWithJWKS(t, body, assertion)
}
