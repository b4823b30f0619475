//go:build e2e

package faults

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// policiesYAML is n policies p-00.. whose rule depends on version.
func policiesYAML(from, to int, version string) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: p-%02d, namespace: apps}
spec:
  hosts: [p-%02d.localhost]
  identity: {header: {user: X-Auth-Request-Email}}
  rules:
  - name: area-%s
    when: request.path.startsWith("/%s/%d")
    action: RequireMFA
    multifactor: {providers: [google-authenticator]}
  - name: rest
    when: "true"
    action: Allow
`, i, i, version, version, i)
	}
	return b.String()
}

// objectsState is what the API server holds: every policy and provider,
// and whether the controller has judged each policy's current generation.
type objectsState struct {
	policies  []v1alpha1.MFAPolicy
	providers []v1alpha1.MFAProvider
	judged    int
}

func readObjects(t *testing.T, env *harness.Env) objectsState {
	t.Helper()
	var pl v1alpha1.MFAPolicyList
	if err := json.Unmarshal([]byte(env.MustKubectl(t, "", "get", "mfapolicies", "-A", "-o", "json")), &pl); err != nil {
		t.Fatal(err)
	}
	var vl v1alpha1.MFAProviderList
	if err := json.Unmarshal([]byte(env.MustKubectl(t, "", "get", "mfaproviders", "-A", "-o", "json")), &vl); err != nil {
		t.Fatal(err)
	}
	st := objectsState{policies: pl.Items, providers: vl.Items}
	for _, p := range pl.Items {
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ReadyCondition)
		if c != nil && c.Status == "True" && c.ObservedGeneration == p.Generation && p.Status.ObservedGeneration == p.Generation {
			st.judged++
		}
	}
	return st
}

// expectedHash is the hash of the bundle the objects make, computed here
// from what the API server holds, independently of the controller.
func (st objectsState) expectedHash(t *testing.T) string {
	t.Helper()
	b, verdicts := policy.BuildBundle(st.policies, st.providers, nil, nil, policy.BuildOptions{})
	for k, err := range verdicts.Policies {
		if err != nil {
			t.Fatalf("MFAPolicy %s is not valid: %v", k, err)
		}
	}
	_, hash, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func bundleSecretHash(t *testing.T, env *harness.Env) string {
	t.Helper()
	out, err := env.Kubectl("", "-n", env.Setting("DEMO_NAMESPACE"), "get", "secret", "mfa-bundle", "-o", "jsonpath={.data.hash}")
	if err != nil || out == "" {
		return ""
	}
	return decodeB64(t, out)
}

// TestControllerRestartedMidwayConverges SIGKILLs the controller while it
// reconciles a batch of policies, changes and deletes objects while it is
// down, kills it again mid-way, and checks that it converges to the bundle
// the objects make (the same hash, computed here from the objects).
func TestControllerRestartedMidwayConverges(t *testing.T) {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller}})
	env.Apply(t, namespaceYAML+objectsYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin")
	const n = 40

	killMidway := func(t *testing.T, what string) {
		env.Signal(t, harness.Controller, syscall.SIGKILL)
		st := readObjects(t, env)
		t.Logf("%s: controller killed with %d of %d policies judged", what, st.judged, len(st.policies))
	}
	converged := func(t *testing.T) string {
		t.Helper()
		var st objectsState
		eventually(t, 2*time.Minute, "every policy judged", func() bool {
			st = readObjects(t, env)
			return st.judged == len(st.policies)
		})
		want := st.expectedHash(t)
		eventually(t, time.Minute, "the bundle of the objects", func() bool {
			return bundleSecretHash(t, env) == want
		})
		return want
	}

	t.Run("killed while reconciling a batch, objects changed while it is down, killed again", func(t *testing.T) {
		g := NewWithT(t)
		// kubectl applies the batch while the controller works on the
		// first ones; the kill comes once a few are judged.
		applied := make(chan error, 1)
		go func() {
			_, err := env.Kubectl(policiesYAML(0, n, "v1"), "apply", "-f", "-")
			applied <- err
		}()
		eventually(t, time.Minute, "the first policies of the batch judged", func() bool {
			return readObjects(t, env).judged >= 6
		})
		killMidway(t, "batch of 40 being applied")
		g.Expect(<-applied).To(Succeed())

		env.Apply(t, policiesYAML(0, 10, "v2"))
		env.MustKubectl(t, "", "-n", "apps", "delete", "mfapolicy", "p-30", "p-31", "p-32", "p-33", "p-34")
		env.Restart(harness.Controller)

		env.Apply(t, policiesYAML(10, 20, "v3"))
		killMidway(t, "10 changed right after the restart")
		env.Restart(harness.Controller)

		hash := converged(t)
		st := readObjects(t, env)
		g.Expect(st.policies).To(HaveLen(n - 5 + 1))
		t.Logf("converged on bundle %s (%d policies)", hash[:12], len(st.policies))
	})

	t.Run("a clean restart keeps the bundle, and the next change is reconciled", func(t *testing.T) {
		g := NewWithT(t)
		before := bundleSecretHash(t, env)
		env.Restart(harness.Controller)
		env.Apply(t, policiesYAML(n, n+1, "v1"))
		after := converged(t)
		g.Expect(after).NotTo(Equal(before))
		// Remove the new policy again: the bundle is the one before, byte for byte.
		env.MustKubectl(t, "", "-n", "apps", "delete", "mfapolicy", fmt.Sprintf("p-%02d", n))
		g.Expect(converged(t)).To(Equal(before))
	})
}
