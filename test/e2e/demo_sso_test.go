//go:build e2e

package e2e

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// TestDemoSingleSignOn runs hack/demo.sh up as `make demo` does with its
// default first factor, the single sign-on: it prints the IdP's users, the
// sample policy reads the user through identity.forwardAuth, and a browser
// without a session is sent from the app to the challenge page, to
// oauth2-proxy and on to glewlwyd's authorization endpoint.
func TestDemoSingleSignOn(t *testing.T) {
	g := NewWithT(t)
	demo := harness.RunDemo(t, harness.Options{Policy: "default/admin", Env: map[string]string{
		"DEMO_FIRST_FACTOR":   "sso",
		"DEMO_SSO_IDP_PORT":   strconv.Itoa(harness.FreePort(t)),
		"DEMO_SSO_PROXY_PORT": strconv.Itoa(harness.FreePort(t)),
	}})
	g.Expect(demo.Output()).To(ContainSubstring("First factor    single sign-on: glewlwyd"))
	g.Expect(demo.Output()).To(ContainSubstring("user ana  password " + demo.Setting("DEMO_PASSWORD")))
	g.Expect(demo.Setting("DEMO_FIRST_FACTOR")).To(Equal("sso"))
	identity := demo.MustKubectl(t, "", "-n", "default", "get", "mfapolicy", "admin", "-o", "jsonpath={.spec.identity.forwardAuth.url}")
	g.Expect(identity).To(HaveSuffix("/oauth2/auth"))

	client := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, "127.0.0.1:"+port)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}
	next := func(u string) *url.URL {
		resp, err := client.Get(u)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusFound), u)
		loc, err := resp.Location()
		g.Expect(err).NotTo(HaveOccurred())
		return loc
	}
	loc := next(demo.URL + "/reports")
	g.Expect(loc.Path).To(Equal("/challenge/default/admin"))
	loc = next(loc.String())
	g.Expect(loc.String()).To(Equal(demo.URL + "/oauth2/start?rd=" + url.QueryEscape(demo.URL+"/reports")))
	loc = next(loc.String())
	g.Expect(loc.Path).To(Equal("/api/oidc/auth"))
	g.Expect(loc.Query().Get("client_id")).To(Equal("mfa-demo"))
}
