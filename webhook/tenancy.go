package webhook

import (
	"strings"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// policyHosts are the hosts a policy lists, for the check that a policy
// answers only for its own hosts, also when asked by name. Patterns are in
// the one form of internal/hostname, without a port: a port never chooses
// the policy.
type policyHosts struct {
	// listed: the policy lists hosts (spec.hosts is not empty). A policy
	// that lists none answers for whatever its front-door route sends it.
	listed bool
	// exact are host names; wildcards the suffixes of wildcards
	// (".example.com" for "*.example.com").
	exact, wildcards map[string]struct{}
	// yielded are the patterns this policy claims in conflict with an older
	// claim of another namespace's policy, with that policy: it no longer
	// answers for them by name either (see yieldHosts).
	yielded map[string]string
}

// newPolicyHosts indexes a policy's hosts. A host that does not normalise
// answers for nothing (the controller reports it on the policy).
func newPolicyHosts(hosts []string) policyHosts {
	ph := policyHosts{listed: len(hosts) > 0, exact: map[string]struct{}{}, wildcards: map[string]struct{}{}}
	for _, h := range hosts {
		p, err := hostname.NormalizePattern(h)
		if err != nil {
			continue
		}
		p = hostname.Name(p)
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			ph.wildcards[suffix] = struct{}{}
		} else {
			ph.exact[p] = struct{}{}
		}
	}
	return ph
}

// refuses returns why the policy key does not answer for host
// (normalised, without a port), or "" when it does.
func (ph *policyHosts) refuses(key, host string) string {
	if !ph.listed {
		return ""
	}
	for pattern, older := range ph.yielded {
		if hostname.Match(pattern, host) {
			return "MFAPolicy " + key + " does not answer for the host " + host + ": MFAPolicy " + older + " of another namespace claimed it first " +
				"(HostConflict); remove it from one of them"
		}
	}
	if _, ok := ph.exact[host]; ok {
		return ""
	}
	for i := 1; i < len(host); i++ {
		if host[i] == '.' {
			if _, ok := ph.wildcards[host[i:]]; ok {
				return ""
			}
		}
	}
	return "MFAPolicy " + key + " does not list the host " + host + " in spec.hosts; add it there or use the policy that lists it"
}

// yieldHosts settles, for answers by name, the host claims that conflict
// across namespaces: the policy whose claim is older (creation time, then
// namespace/name) keeps the hosts both patterns name; the other yields
// them. Host-based lookup refuses them either way (routeHosts); this keeps
// a namespace from answering, by name, for hosts another namespace
// claimed first, while the first keeps working behind its own front door.
func yieldHosts(claims []hostClaim, index *hostname.Claims, byKey map[string]*policyEntry) {
	for _, c := range claims {
		for _, o := range index.Conflicts(c.Claim) {
			other := byKey[o.Policy]
			if o.Namespace == c.Namespace || other == nil || !other.olderThan(c.entry) {
				continue
			}
			shared := c.Pattern
			if hostname.Contains(c.Pattern, o.Pattern) {
				shared = o.Pattern
			}
			if c.entry.hosts.yielded == nil {
				c.entry.hosts.yielded = map[string]string{}
			}
			c.entry.hosts.yielded[shared] = o.Policy
		}
	}
}

// olderThan orders claims: the earlier created policy first, then by
// namespace/name.
func (e *policyEntry) olderThan(o *policyEntry) bool {
	if !e.created.Equal(o.created) {
		return e.created.Before(o.created)
	}
	return e.key < o.key
}
