package hostname

import (
	"fmt"
	"slices"
	"strings"
)

// Patterns are normalised host names without a port ("admin.example.com")
// or wildcards ("*.corp.example.com", every host under corp.example.com at
// any depth). A port never takes part in which policy serves a host: with
// most front doors the client writes the Host header, port included, so a
// port that chose the policy would let the client choose it.

// Match reports whether the host name (normalised, without a port) is one
// the pattern names.
func Match(pattern, name string) bool {
	suffix, wild := strings.CutPrefix(pattern, "*")
	if !wild {
		return pattern == name
	}
	return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
}

// Contains reports whether every host pattern b names, a names too.
func Contains(a, b string) bool {
	if a == b {
		return true
	}
	if !strings.HasPrefix(a, "*.") {
		return false
	}
	return Match(a, strings.TrimPrefix(b, "*"))
}

// Overlap reports whether some host is named by both patterns. Patterns
// name a host or the hosts under a name, so two that overlap are nested.
func Overlap(a, b string) bool { return Contains(a, b) || Contains(b, a) }

// MoreSpecific reports whether pattern a wins over pattern b where both
// match: a host beats a wildcard, a longer wildcard a shorter one.
func MoreSpecific(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		return bw
	}
	return len(a) > len(b)
}

// Claim is a host pattern a policy lists.
type Claim struct {
	// Pattern is normalised, without a port (Name of NormalizePattern).
	Pattern string
	// Namespace is the policy's namespace; Policy is "namespace/name".
	Namespace, Policy string
}

// Conflict reports whether two claims make hosts fail closed on host-based
// lookup. Claims of one policy never conflict. Two policies conflict when
// they claim the same pattern (whichever namespaces: which one was meant
// cannot be known), or overlapping patterns from different namespaces: an
// exact host inside another namespace's wildcard, or nested wildcards. A
// namespace may not take a host from under another's wildcard, nor put its
// wildcard over another's hosts. Within one namespace, overlapping patterns
// are not a conflict: the most specific wins (MoreSpecific).
func Conflict(a, b Claim) bool {
	if a.Policy == b.Policy {
		return false
	}
	if a.Pattern == b.Pattern {
		return true
	}
	return a.Namespace != b.Namespace && Overlap(a.Pattern, b.Pattern)
}

// Claims indexes claims by pattern, so that the ones overlapping a pattern
// are found without comparing every pair. The server and the controller
// both judge conflicts through it.
type Claims struct {
	byPattern map[string][]Claim
	// under holds, by name, the claims whose hosts are all strictly under
	// it: "a.b.c" and "*.x.b.c" are under "b.c" and "c".
	under map[string][]Claim
}

// NewClaims indexes claims; a policy claiming one pattern twice counts once.
func NewClaims(claims []Claim) *Claims {
	c := &Claims{byPattern: map[string][]Claim{}, under: map[string][]Claim{}}
	for _, cl := range claims {
		if slices.Contains(c.byPattern[cl.Pattern], cl) {
			continue
		}
		c.byPattern[cl.Pattern] = append(c.byPattern[cl.Pattern], cl)
		name := strings.TrimPrefix(cl.Pattern, "*.")
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				c.under[name[i+1:]] = append(c.under[name[i+1:]], cl)
			}
		}
	}
	return c
}

// containing calls fn for every claim whose pattern contains p, p's own
// included.
func (c *Claims) containing(p string, fn func(Claim)) {
	for _, cl := range c.byPattern[p] {
		fn(cl)
	}
	name := strings.TrimPrefix(p, "*.")
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			for _, cl := range c.byPattern["*"+name[i:]] {
				fn(cl)
			}
		}
	}
}

// Contested returns the policies (sorted, each once) whose claims conflict
// with x over hosts x names: hosts that x's pattern would serve fail closed
// on host-based lookup because of them. Claims under x's wildcard are not
// counted: they make their own hosts fail closed, not all of x's.
func (c *Claims) Contested(x Claim) []string {
	var out []string
	c.containing(x.Pattern, func(cl Claim) {
		if Conflict(x, cl) && !slices.Contains(out, cl.Policy) {
			out = append(out, cl.Policy)
		}
	})
	slices.Sort(out)
	return out
}

// Conflicts returns the claims of other policies that conflict with x,
// whichever of the two patterns contains the other, ordered by policy and
// pattern.
func (c *Claims) Conflicts(x Claim) []Claim {
	var out []Claim
	add := func(cl Claim) {
		if Conflict(x, cl) && !slices.Contains(out, cl) {
			out = append(out, cl)
		}
	}
	c.containing(x.Pattern, add)
	if suffix, wild := strings.CutPrefix(x.Pattern, "*."); wild {
		for _, cl := range c.under[suffix] {
			add(cl)
		}
	}
	slices.SortFunc(out, func(a, b Claim) int {
		if a.Policy != b.Policy {
			return strings.Compare(a.Policy, b.Policy)
		}
		return strings.Compare(a.Pattern, b.Pattern)
	})
	return out
}

// InvalidHostError is a policy host that is not a host name or pattern.
type InvalidHostError struct {
	// Index is its place in spec.hosts.
	Index int
	Host  string
	Err   error
}

func (e *InvalidHostError) Error() string {
	return fmt.Sprintf("spec.hosts[%d]: %q is not a host name or a wildcard (*.example.com): %v", e.Index, e.Host, e.Err)
}

// ClaimsOf returns the claims of a policy's spec.hosts, each pattern once.
// A host that does not normalise claims nothing; it is returned as an
// *InvalidHostError.
func ClaimsOf(namespace, name string, hosts []string) ([]Claim, []error) {
	var claims []Claim
	var errs []error
	for i, h := range hosts {
		p, err := NormalizePattern(h)
		if err != nil {
			errs = append(errs, &InvalidHostError{Index: i, Host: h, Err: err})
			continue
		}
		c := Claim{Pattern: Name(p), Namespace: namespace, Policy: namespace + "/" + name}
		if !slices.Contains(claims, c) {
			claims = append(claims, c)
		}
	}
	return claims, errs
}
