//go:build e2e

package faults

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// paddedPoliciesYAML is n policies s-00.. of about 12 kB each (three
// rules that never match, with long literals), so that a few dozen fill
// several bundle shards. The rule that decides depends on version: a
// request for /<version>/<i> needs a second factor, any other is allowed.
func paddedPoliciesYAML(n int, version string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "---\napiVersion: mfa.operator.dev/v1alpha1\nkind: MFAPolicy\nmetadata: {name: s-%02d, namespace: apps}\nspec:\n", i)
		fmt.Fprintf(&b, "  hosts: [s-%02d.localhost]\n  identity: {header: {user: %s}}\n  rules:\n", i, userHeader)
		for r := range 3 {
			fmt.Fprintf(&b, "  - name: pad-%d\n    when: 'request.path == \"/%s\"'\n    action: Deny\n", r, strings.Repeat(fmt.Sprintf("%c%02d", 'a'+r, i), 1300))
		}
		fmt.Fprintf(&b, "  - name: area-%s\n    when: request.path.startsWith(\"/%s/%d\")\n    action: RequireMFA\n    multifactor: {providers: [google-authenticator]}\n", version, version, i)
		b.WriteString("  - name: rest\n    when: \"true\"\n    action: Allow\n")
	}
	return b.String()
}

// versionServed asks server base about policy s-i with the one request
// that tells the versions apart: v1 allows /v2/<i> (200), v2 asks for a
// second factor (401).
func versionServed(client *http.Client, base string, i int) string {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/auth/apps/s-%02d", base, i), nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("X-Original-URL", fmt.Sprintf("http://s-%02d.localhost/v2/%d", i, i))
	req.Header.Set("X-Original-Method", http.MethodGet)
	req.Header.Set(userHeader, "ana@example.com")
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return "v1"
	case http.StatusUnauthorized:
		return "v2"
	}
	return resp.Status
}

// replicaWatch asks one replica about every policy, in turn, until
// stopped, and keeps what each answer said.
type replicaWatch struct {
	name    string
	answers []string // "s-07 v1", in the order answered
}

func (w *replicaWatch) run(base string, n int, stop *atomic.Bool, done *sync.WaitGroup) {
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	done.Go(func() {
		for round := 0; !stop.Load(); round++ {
			for i := range n {
				w.answers = append(w.answers, fmt.Sprintf("s-%02d %s", i, versionServed(client, base, i)))
			}
		}
	})
}

// mixed returns the first answer that shows the replica serving parts of
// two sets: an old answer after a new one, or anything but v1 or v2.
func (w *replicaWatch) mixed() string {
	sawNew := false
	for k, a := range w.answers {
		v := a[strings.IndexByte(a, ' ')+1:]
		switch {
		case v == "v2":
			sawNew = true
		case v != "v1":
			return fmt.Sprintf("answer %d: %s", k, a)
		case sawNew:
			return fmt.Sprintf("answer %d: %s after a v2 answer", k, a)
		}
	}
	return ""
}

// serves checks that every policy of a replica answers version.
func serves(t *testing.T, base string, n int, version string) bool {
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		if versionServed(client, base, i) != version {
			return false
		}
	}
	return true
}

// bundleManifest is the manifest in force in the bundle Secret.
func bundleManifest(t *testing.T, env *harness.Env) *policy.Manifest {
	t.Helper()
	m, err := policy.ParseManifest([]byte(decodeB64(t, secretData(t, env, policy.BundleSecretName)[policy.ManifestKey])))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func secretExists(env *harness.Env, name string) bool {
	_, err := env.Kubectl("", "-n", env.Setting("DEMO_NAMESPACE"), "get", "secret", name, "-o", "name")
	return err == nil
}

// freezeManifest makes the API server refuse every write of the bundle
// Secret (a ValidatingAdmissionPolicy), as an API server that fails the
// one update that switches the manifest.
const freezeManifest = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: freeze-bundle-manifest}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE", "UPDATE"], resources: ["secrets"]}
  validations:
  - expression: "object.metadata.name != 'mfa-bundle'"
    message: the bundle manifest is frozen
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: freeze-bundle-manifest}
spec:
  policyName: freeze-bundle-manifest
  validationActions: [Deny]
`

// TestBundleSwitchIsAtomicOnEveryReplica changes every policy of a bundle
// held in several shards at once, while the controller is down, then
// lets it write the new shards but not switch the manifest (the API
// server refuses that update), and kills it there. Three challenge
// servers following the cluster keep serving the old set, whole; once
// the controller runs again freely, each switches to the new set, whole.
// Every replica is asked about every policy in turn the whole time: no
// replica ever answers for the old set after answering for the new one.
func TestBundleSwitchIsAtomicOnEveryReplica(t *testing.T) {
	const n = 48
	g := NewWithT(t)
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller}})
	env.Apply(t, namespaceYAML+objectsYAML("")+paddedPoliciesYAML(n, "v1"))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=120s", "mfapolicy", "--all")
	oldHash := readObjects(t, env).expectedHash(t)
	eventually(t, time.Minute, "the bundle of the v1 policies", func() bool { return bundleSecretHash(t, env) == oldHash })
	old := bundleManifest(t, env)
	g.Expect(len(old.Shards)).To(BeNumerically(">=", 3), "the bundle is held in several shards")
	t.Logf("the v1 bundle: %d shards in %d buckets", len(old.Shards), old.Buckets)

	var replicas []string
	for _, name := range []string{"replica-a", "replica-b", "replica-c"} {
		replicas = append(replicas, env.StartWebhookReplica(t, name).URL)
	}
	for _, r := range replicas {
		eventually(t, time.Minute, r+" on the v1 bundle", func() bool { return bundleInForce(t, r) == oldHash[:12] })
		g.Expect(serves(t, r, n, "v1")).To(BeTrue(), r)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	watches := make([]*replicaWatch, len(replicas))
	for i, r := range replicas {
		watches[i] = &replicaWatch{name: r}
		watches[i].run(r, n, &stop, &wg)
	}
	stopWatches := func() {
		stop.Store(true)
		wg.Wait()
	}
	t.Cleanup(stopWatches)

	// Every policy changes while the controller is down: its next write
	// touches every shard.
	env.Stop(t, harness.Controller)
	env.Apply(t, paddedPoliciesYAML(n, "v2"))
	env.Apply(t, freezeManifest)
	eventually(t, time.Minute, "the API server refusing writes of the bundle Secret", func() bool {
		_, err := env.Kubectl("", "-n", env.Setting("DEMO_NAMESPACE"), "annotate", "--overwrite", "secret", policy.BundleSecretName, "probe="+time.Now().Format("150405.000"))
		return err != nil && strings.Contains(err.Error(), "the bundle manifest is frozen")
	})
	st := readObjects(t, env)
	newHash := st.expectedHash(t)
	b, _ := policy.BuildBundle(st.policies, st.providers, nil, nil, policy.BuildOptions{})
	next, err := b.Split(old.Buckets)
	g.Expect(err).NotTo(HaveOccurred())

	t.Run("killed after writing the new shards, before the manifest switch", func(t *testing.T) {
		g := NewWithT(t)
		env.Restart(harness.Controller)
		eventually(t, 2*time.Minute, "the new shards written and the manifest update refused", func() bool {
			for _, sh := range next.Shards {
				if !secretExists(env, sh.Name) {
					return false
				}
			}
			return strings.Contains(env.Log(harness.Controller), "the bundle manifest is frozen")
		})
		env.Signal(t, harness.Controller, syscall.SIGKILL)
		g.Expect(bundleSecretHash(t, env)).To(Equal(oldHash), "the manifest was not switched")
		for _, r := range replicas {
			g.Expect(bundleInForce(t, r)).To(Equal(oldHash[:12]), r)
			g.Expect(serves(t, r, n, "v1")).To(BeTrue(), "%s serves the old set, whole", r)
		}
	})

	t.Run("started again with the manifest free, every replica switches whole", func(t *testing.T) {
		g := NewWithT(t)
		env.MustKubectl(t, "", "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "freeze-bundle-manifest")
		env.Restart(harness.Controller)
		eventually(t, 2*time.Minute, "the manifest switched", func() bool { return bundleSecretHash(t, env) == newHash })
		for _, r := range replicas {
			eventually(t, time.Minute, r+" on the v2 bundle", func() bool { return bundleInForce(t, r) == newHash[:12] })
			g.Expect(serves(t, r, n, "v2")).To(BeTrue(), "%s serves the new set, whole", r)
		}
		m := bundleManifest(t, env)
		want := append(shardNamesOf(m), m.Retain...)
		slices.Sort(want)
		eventually(t, time.Minute, "the shard Secrets to be those the manifest names or retains", func() bool {
			out, err := env.Kubectl("", "-n", env.Setting("DEMO_NAMESPACE"), "get", "secrets", "-l", policy.ShardLabel+"=true", "-o", "jsonpath={.items[*].metadata.name}")
			got := strings.Fields(out)
			slices.Sort(got)
			return err == nil && slices.Equal(got, want)
		})
	})

	stopWatches()
	for _, w := range watches {
		v1, v2 := 0, 0
		for _, a := range w.answers {
			if strings.HasSuffix(a, " v1") {
				v1++
			} else if strings.HasSuffix(a, " v2") {
				v2++
			}
		}
		t.Logf("%s: %d answers for the old set, then %d for the new", w.name, v1, v2)
		g.Expect(w.mixed()).To(BeEmpty(), "%s never serves parts of two sets", w.name)
		g.Expect(v1).To(BeNumerically(">=", n))
		g.Expect(v2).To(BeNumerically(">=", n))
	}
}

func shardNamesOf(m *policy.Manifest) []string {
	var out []string
	for _, r := range m.Shards {
		out = append(out, r.Name)
	}
	return out
}
