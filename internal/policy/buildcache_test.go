package policy

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// cacheWorld is what a build reads, as an API server would serve it: every
// object has a UID, a change of spec bumps the generation, a change of a
// Secret its resourceVersion.
type cacheWorld struct {
	policies  []v1alpha1.MFAPolicy
	providers []v1alpha1.MFAProvider
	secrets   map[types.NamespacedName]*corev1.Secret
	opts      BuildOptions
	rv        int
}

func (w *cacheWorld) putSecret(ns, name string, data map[string]string) {
	w.rv++
	s := secret(ns, name, data)
	s.ResourceVersion = fmt.Sprint(w.rv)
	w.secrets[types.NamespacedName{Namespace: ns, Name: name}] = s
}

func (w *cacheWorld) policy(name string) *v1alpha1.MFAPolicy {
	for i := range w.policies {
		if w.policies[i].Name == name {
			return &w.policies[i]
		}
	}
	panic("no policy " + name)
}

// servedPolicy and servedProvider give an object the UID an API server
// gives it.
func servedPolicy(p v1alpha1.MFAPolicy) v1alpha1.MFAPolicy {
	p.UID = types.UID("policy " + p.Namespace + "/" + p.Name)
	return p
}

func servedProvider(p v1alpha1.MFAProvider) v1alpha1.MFAProvider {
	p.UID = types.UID("provider " + p.Namespace + "/" + p.Name)
	return p
}

// canonical is a build's outcome in a comparable form: the bundle's JSON
// and every verdict's text.
func canonical(t *testing.T, b *Bundle, v Verdicts) (string, map[string]string) {
	t.Helper()
	data, _, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, err := range v.Policies {
		out["policy "+k.String()] = fmt.Sprint(err)
	}
	for k, err := range v.Providers {
		out["provider "+k.String()] = fmt.Sprint(err)
	}
	return string(data), out
}

// TestBuildCacheBuildsWhatAFullBuildBuilds: through a sequence of changes
// (spec edits, a provider becoming valid, a Secret changing, a namespace
// label admitting a policy, a deletion, other options), a build that
// reuses outcomes gives exactly the bundle and verdicts of a build that
// compiles everything, last good entries included.
func TestBuildCacheBuildsWhatAFullBuildBuilds(t *testing.T) {
	g := NewWithT(t)
	ca := selfSignedPEM(t)
	shared := servedProvider(sharedTOTP(sharedLabel()))
	faPolicy := servedPolicy(mfaPolicy("apps", "fa", 1, "true", "totp"))
	faPolicy.Spec.Identity = forwardAuthIdentity(func(f *v1alpha1.ForwardAuthIdentity) {
		f.CABundleRef = &v1alpha1.SecretKeySelector{Name: "sso-ca", Key: "ca.crt"}
	})
	w := &cacheWorld{
		policies: []v1alpha1.MFAPolicy{
			servedPolicy(mfaPolicy("apps", "valid", 1, "true", "totp")),
			servedPolicy(mfaPolicy("apps", "bad-cel", 1, "request.nope ==", "totp")),
			servedPolicy(mfaPolicy("apps", "waits-for-duo", 1, "true", "duo")),
			faPolicy,
			servedPolicy(mfaPolicy("team", "shared-user", 1, "true", platformNS+"/totp")),
		},
		providers: []v1alpha1.MFAProvider{
			servedProvider(totpProvider("apps", "totp")),
			servedProvider(duoProvider("apps", "duo", "duo-keys")),
			shared,
		},
		secrets: map[types.NamespacedName]*corev1.Secret{},
	}
	w.putSecret("apps", "sso-ca", map[string]string{"ca.crt": ca})

	steps := []struct {
		name   string
		change func()
	}{
		{"first build", func() {}},
		{"nothing changed", func() {}},
		{"a policy's rules edited", func() {
			p := w.policy("valid")
			p.Spec.Rules[0].When = "false"
			p.Generation++
		}},
		{"an invalid policy fixed", func() {
			p := w.policy("bad-cel")
			p.Spec.Rules[0].When = "true"
			p.Generation++
		}},
		{"a valid policy broken: its last good entry stays", func() {
			p := w.policy("valid")
			p.Spec.Rules[0].When = "1 +"
			p.Generation++
		}},
		{"the Duo Secret created: the policy waiting on its provider is valid", func() {
			w.putSecret("apps", "duo-keys", map[string]string{"ikey": "DIXXXXXXXXXXXXXXXXXX", "skey": "secret"})
		}},
		{"the CA Secret broken: the forwardAuth policy keeps its last good entry", func() {
			w.putSecret("apps", "sso-ca", map[string]string{"ca.crt": "not a certificate"})
		}},
		{"the CA Secret deleted", func() {
			delete(w.secrets, types.NamespacedName{Namespace: "apps", Name: "sso-ca"})
		}},
		{"a namespace label admits the other namespace's policy", func() {
			w.opts.NamespaceLabels = map[string]map[string]string{"team": sharedLabel().MatchLabels}
		}},
		{"the label taken away", func() {
			w.opts.NamespaceLabels = nil
		}},
		{"the Duo provider deleted", func() {
			w.providers = w.providers[:1:1]
			w.providers = append(w.providers, shared)
		}},
		{"a policy deleted", func() {
			w.policies = w.policies[1:]
		}},
		{"the operator restricts identity headers", func() {
			w.opts.IdentityHeaders = []string{"X-Other"}
		}},
		{"the operator allows them again", func() {
			w.opts.IdentityHeaders = nil
		}},
	}
	cache := &BuildCache{}
	var previous *Bundle
	for _, step := range steps {
		step.change()
		full, fullVerdicts := BuildBundle(w.policies, w.providers, w.secrets, previous, w.opts)
		opts := w.opts
		opts.Cache = cache
		cached, cachedVerdicts := BuildBundle(w.policies, w.providers, w.secrets, previous, opts)
		wantData, wantVerdicts := canonical(t, full, fullVerdicts)
		gotData, gotVerdicts := canonical(t, cached, cachedVerdicts)
		g.Expect(gotData).To(Equal(wantData), step.name)
		g.Expect(gotVerdicts).To(Equal(wantVerdicts), step.name)
		previous = full
	}
}

// TestBuildCacheCompilesOnlyWhatChanged: a rebuild with nothing changed
// compiles no policy; an edit compiles that policy alone; a provider
// change compiles the policies that name it.
func TestBuildCacheCompilesOnlyWhatChanged(t *testing.T) {
	g := NewWithT(t)
	var pols []v1alpha1.MFAPolicy
	for i := range 50 {
		provider := "totp"
		if i%10 == 0 {
			provider = "other"
		}
		pols = append(pols, servedPolicy(mfaPolicy("apps", fmt.Sprintf("p%02d", i), 1, "true", provider)))
	}
	provs := []v1alpha1.MFAProvider{servedProvider(totpProvider("apps", "totp"))}
	cache := &BuildCache{}
	build := func() *Bundle {
		b, _ := BuildBundle(pols, provs, nil, nil, BuildOptions{Cache: cache})
		return b
	}

	g.Expect(build().Policies).To(HaveLen(45))
	g.Expect(cache.Compiled()).To(Equal(50))
	build()
	g.Expect(cache.Compiled()).To(Equal(0), "nothing changed")

	pols[7].Spec.Rules[0].When = "false"
	pols[7].Generation++
	build()
	g.Expect(cache.Compiled()).To(Equal(1), "one policy edited")

	provs = append(provs, servedProvider(totpProvider("apps", "other")))
	g.Expect(build().Policies).To(HaveLen(50))
	g.Expect(cache.Compiled()).To(Equal(5), "the provider the five invalid policies waited on created")
}

// TestBuildCacheLeavesFilesAlone: objects read from files have no UID
// and no generation, and are compiled at every build.
func TestBuildCacheLeavesFilesAlone(t *testing.T) {
	g := NewWithT(t)
	p := mfaPolicy("apps", "from-a-file", 0, "true", "totp")
	cache := &BuildCache{}
	for range 2 {
		BuildBundle([]v1alpha1.MFAPolicy{p}, []v1alpha1.MFAProvider{totpProvider("apps", "totp")}, nil, nil, BuildOptions{Cache: cache})
		g.Expect(cache.Compiled()).To(Equal(1))
	}
}

// BenchmarkRebuildAfterOneEdit is the bundle reconciler's build after one
// policy edit among 10,000: compiling all of them again (no cache) against
// compiling the one edited (BuildCache).
func BenchmarkRebuildAfterOneEdit(b *testing.B) {
	pols := make([]v1alpha1.MFAPolicy, 10000)
	for i := range pols {
		pols[i] = servedPolicy(mfaPolicy("apps", fmt.Sprintf("p%05d", i), 1, `request.path.startsWith("/static/")`, "totp"))
	}
	provs := []v1alpha1.MFAProvider{servedProvider(totpProvider("apps", "totp"))}
	for _, tc := range []struct {
		name  string
		cache *BuildCache
	}{{"all-compiled", nil}, {"cached", &BuildCache{}}} {
		b.Run(tc.name, func(b *testing.B) {
			BuildBundle(pols, provs, nil, nil, BuildOptions{Cache: tc.cache})
			for b.Loop() {
				pols[0].Generation++
				if bundle, _ := BuildBundle(pols, provs, nil, nil, BuildOptions{Cache: tc.cache}); len(bundle.Policies) != len(pols) {
					b.Fatal(len(bundle.Policies))
				}
			}
		})
	}
}
