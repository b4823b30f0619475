package webhook

import "strings"

// policyHosts are the hosts a policy lists, for the check that a policy
// answers only for its own hosts. Each is lower-case, without a trailing
// dot or a port; a wildcard "*.example.com" is kept as its suffix
// ".example.com".
type policyHosts struct {
	exact     map[string]struct{}
	wildcards map[string]struct{}
}

func newPolicyHosts(hosts []string) policyHosts {
	ph := policyHosts{exact: map[string]struct{}{}, wildcards: map[string]struct{}{}}
	for _, h := range hosts {
		h = bareHost(h)
		if suffix, ok := strings.CutPrefix(h, "*"); ok {
			ph.wildcards[suffix] = struct{}{}
		} else {
			ph.exact[h] = struct{}{}
		}
	}
	return ph
}

// bareHost is a host lower-cased, without its port and trailing dot.
func bareHost(h string) string {
	h = lowerASCII(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

// lists says whether host (as the original request names it) is one of
// the hosts. A policy that lists no host serves any host it is asked
// about by name: the front door's route decides which requests come.
func (ph policyHosts) lists(host string) bool {
	if len(ph.exact) == 0 && len(ph.wildcards) == 0 {
		return true
	}
	host = bareHost(host)
	if _, ok := ph.exact[host]; ok {
		return true
	}
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			if _, ok := ph.wildcards[host[i:]]; ok && i > 0 {
				return true
			}
		}
	}
	return false
}
