package policy

import (
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// BuildCache keeps, from one BuildBundle to the next, each policy's
// outcome: its verdict and, when valid, its bundle entry. The controller
// rebuilds the bundle on every change of any policy, provider or Secret it
// reads; with thousands of policies, compiling every one of them each time
// (CEL, deep copies) made one change cost as much as all of them.
//
// An outcome is reused only while nothing it was computed from changed:
// the same object (UID) at the same generation (its spec), the same state
// of every provider it names (found, Ready, admitting its namespace: what
// CheckPolicy asks of Tenancy.Provider), the same resourceVersion of every
// Secret it reads, and the same build options. Objects without a UID or
// generation (read from files, not from an API server) are never cached.
//
// The zero value is ready to use. A BuildCache is for one sequence of
// builds; it is safe for concurrent use, but builds are meant to run one
// at a time.
type BuildCache struct {
	mu sync.Mutex
	// options is the fingerprint of the options the entries were built
	// with; other options empty the cache.
	options  string
	policies map[types.UID]*cachedPolicy
	// build counts builds, to forget the policies a build did not see.
	build uint64
	// compiled is how many policies the last build compiled.
	compiled int
}

type cachedPolicy struct {
	key   string
	entry *BundlePolicy // nil when err != nil
	err   error
	build uint64
}

// Compiled returns how many policies the last build compiled (the others'
// outcomes were reused).
func (c *BuildCache) Compiled() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.compiled
}

// begin starts a build with opts; end finishes it.
func (c *BuildCache) begin(opts BuildOptions) {
	if c == nil {
		return
	}
	c.mu.Lock()
	fp := strconv.FormatBool(opts.GeoIP) + "|" + strings.Join(opts.IdentityHeaders, ",")
	if c.policies == nil || c.options != fp {
		c.policies, c.options = map[types.UID]*cachedPolicy{}, fp
	}
	c.build++
	c.compiled = 0
}

// end forgets the policies this build did not see (deleted).
func (c *BuildCache) end() {
	if c == nil {
		return
	}
	for uid, cp := range c.policies {
		if cp.build != c.build {
			delete(c.policies, uid)
		}
	}
	c.mu.Unlock()
}

// checkPolicy returns the bundle entry of p and its verdict, reused from
// an earlier build when its inputs are the same (see BuildCache).
func (c *BuildCache) checkPolicy(p *v1alpha1.MFAPolicy, t Tenancy, secrets map[types.NamespacedName]*corev1.Secret) (*BundlePolicy, error) {
	if c == nil {
		return compilePolicyEntry(p, t, secrets)
	}
	key, cacheable := policyCacheKey(p, t, secrets)
	if cached := c.policies[p.UID]; cacheable && cached != nil && cached.key == key {
		cached.build = c.build
		return cached.entry, cached.err
	}
	entry, err := compilePolicyEntry(p, t, secrets)
	c.compiled++
	if cacheable {
		c.policies[p.UID] = &cachedPolicy{key: key, entry: entry, err: err, build: c.build}
	}
	return entry, err
}

// compilePolicyEntry checks p (CheckPolicy), reads what it needs from
// Secrets and returns its bundle entry.
func compilePolicyEntry(p *v1alpha1.MFAPolicy, t Tenancy, secrets map[types.NamespacedName]*corev1.Secret) (*BundlePolicy, error) {
	if _, err := CheckPolicy(p, t); err != nil {
		return nil, err
	}
	ca, err := ResolvePolicySecrets(p, secrets)
	if err != nil {
		return nil, err
	}
	return &BundlePolicy{Namespace: p.Namespace, Name: p.Name, Generation: p.Generation, Created: p.CreationTimestamp.UTC(),
		Spec: *p.Spec.DeepCopy(), ForwardAuthCA: ca}, nil
}

// policyCacheKey is what p's outcome depends on besides the build
// options, or false when p cannot be cached.
func policyCacheKey(p *v1alpha1.MFAPolicy, t Tenancy, secrets map[types.NamespacedName]*corev1.Secret) (string, bool) {
	if p.UID == "" || p.Generation == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString(strconv.FormatInt(p.Generation, 10))
	for _, k := range ProviderKeys(p.Namespace, &p.Spec) {
		b.WriteString("|p")
		b.WriteString(strconv.Itoa(int(t.Provider(k, p.Namespace))))
	}
	for _, name := range PolicySecretNames(&p.Spec) {
		b.WriteString("|s")
		if s := secrets[keyOf(p.Namespace, name)]; s != nil {
			if s.ResourceVersion == "" {
				return "", false
			}
			b.WriteString(s.ResourceVersion)
		}
	}
	return b.String(), true
}
