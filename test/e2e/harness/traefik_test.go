package harness

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

// middlewareForwardAuth is spec.forwardAuth of a traefik.io/v1alpha1
// Middleware as the API server returns it (Traefik's own CRD).
const middlewareForwardAuth = `{"address":"http://mfa-challenge.mfa-system.svc.cluster.local/forward-auth/apps/admin",` +
	`"authResponseHeaders":["X-MFA-User","X-MFA-Multifactor","X-MFA-Assertion"],"trustForwardHeader":true}`

func TestTraefikDynamicConfigCarriesAMiddlewaresForwardAuthAsIs(t *testing.T) {
	g := NewWithT(t)
	var fa TraefikForwardAuth
	g.Expect(json.Unmarshal([]byte(middlewareForwardAuth), &fa)).To(Succeed())
	out, err := TraefikDynamicConfig(TraefikSite{
		Host: "app.localhost", AppURL: "http://127.0.0.1:1", ChallengeURL: "http://127.0.0.1:2",
		UsersFile: "/htpasswd", IdentityHeader: "X-Auth-Request-Email",
	}, fa)
	g.Expect(err).NotTo(HaveOccurred())

	var conf struct {
		HTTP struct {
			Routers map[string]struct {
				Rule        string   `json:"rule"`
				Service     string   `json:"service"`
				Middlewares []string `json:"middlewares"`
			} `json:"routers"`
			Middlewares map[string]map[string]json.RawMessage `json:"middlewares"`
		} `json:"http"`
	}
	g.Expect(yaml.Unmarshal(out, &conf)).To(Succeed(), string(out))
	g.Expect(conf.HTTP.Middlewares["mfa"]["forwardAuth"]).To(MatchJSON(middlewareForwardAuth))
	g.Expect(conf.HTTP.Routers["app"].Middlewares).To(Equal([]string{"first-factor", "mfa"}), "the first factor comes before the second")
	g.Expect(conf.HTTP.Routers["challenge"].Middlewares).To(Equal([]string{"first-factor"}))
	g.Expect(conf.HTTP.Routers["jwks"].Middlewares).To(BeEmpty())
}

func TestTraefikDynamicConfigRefusesAnEmptyAddress(t *testing.T) {
	g := NewWithT(t)
	_, err := TraefikDynamicConfig(TraefikSite{
		Host: "app.localhost", AppURL: "http://127.0.0.1:1", ChallengeURL: "http://127.0.0.1:2",
		UsersFile: "/htpasswd", IdentityHeader: "X-Auth-Request-Email",
	}, TraefikForwardAuth{})
	g.Expect(err).To(MatchError(ContainSubstring("address is empty")))
}
