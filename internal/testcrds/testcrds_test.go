package testcrds

import (
	"testing"
)

// TestLoadFrontDoors reads every set and finds the kinds the controller
// writes or reads.
func TestLoadFrontDoors(t *testing.T) {
	crds, err := Load(FrontDoors...)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, c := range crds {
		kinds[c.Spec.Group+"/"+c.Spec.Names.Kind] = true
	}
	for _, k := range []string{
		"gateway.networking.k8s.io/HTTPRoute", "gateway.networking.k8s.io/Gateway",
		"gateway.envoyproxy.io/SecurityPolicy", "traefik.io/Middleware", "security.istio.io/AuthorizationPolicy",
	} {
		if !kinds[k] {
			t.Errorf("no CRD of %s among %d", k, len(crds))
		}
	}
}
