package webhook

import (
	"slices"
	"strings"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// hostRoutes serve host-based lookup: /auth and /forward-auth without a
// policy in the path choose the policy by the original request's host.
//
// Policy hosts are normalised (internal/hostname) when indexed, and the
// original host before lookup, so every spelling of a host (case, a
// trailing dot, the default port, Unicode or punycode) finds the same
// policy. A port never chooses the policy: "admin.example.com:8443" in a
// policy is the host admin.example.com, and a request for any port of
// admin.example.com is judged by that policy. The client writes the port
// (nginx's $http_host, the Host header a forward-auth proxy copies), so a
// port that chose the policy would let the client choose it.
//
// Where several policies name a host, the most specific pattern wins (a
// host over a wildcard, a longer wildcard over a shorter one) when they are
// of one namespace; policies of different namespaces naming overlapping
// hosts, or two policies naming the same pattern, are a conflict
// (hostname.Conflict): the hosts concerned fail closed, 403 naming the
// policies, until the conflict is resolved. Each policy stays in force at
// its own /auth/{namespace}/{policy}.
type hostRoutes struct {
	// exact maps a host name to its route; wildcard maps the suffix of a
	// wildcard (".example.com" for "*.example.com"), so that lookup slices
	// the host instead of building keys.
	exact, wildcard map[string]*hostRoute
}

// hostRoute is what lookup finds for a pattern: the policy that serves it,
// or the conflict that keeps it from being served.
type hostRoute struct {
	pattern string
	entry   *policyEntry
	// conflict, when set, is the reason the hosts of the pattern are
	// refused.
	conflict string
}

// hostClaim is a pattern a policy in force lists.
type hostClaim struct {
	hostname.Claim
	entry *policyEntry
}

func newHostRoutes() hostRoutes {
	return hostRoutes{exact: map[string]*hostRoute{}, wildcard: map[string]*hostRoute{}}
}

// appendHostClaims adds e's hosts to claims. A host that does not
// normalise is left out of lookup and logged: the controller reports it on
// the policy, and the policy stays in force by name.
func (sb *snapshotBuilder) appendHostClaims(claims []hostClaim, e *policyEntry) []hostClaim {
	cp := e.compiled
	cs, errs := hostname.ClaimsOf(cp.Namespace, cp.Name, cp.Spec.Hosts)
	for _, err := range errs {
		sb.log.Warn("MFAPolicy lists a host that is not a host name; host-based lookup ignores it", "policy", e.key, "error", err.Error())
	}
	for _, c := range cs {
		claims = append(claims, hostClaim{Claim: c, entry: e})
	}
	return claims
}

// routeHosts indexes the claims of every policy in force and marks the
// patterns whose hosts fail closed.
func (sb *snapshotBuilder) routeHosts(claims []hostClaim) hostRoutes {
	plain := make([]hostname.Claim, len(claims))
	for i := range claims {
		plain[i] = claims[i].Claim
	}
	index := hostname.NewClaims(plain)
	byKey := make(map[string]*policyEntry, len(claims))
	for _, c := range claims {
		byKey[c.Policy] = c.entry
	}
	yieldHosts(claims, index, byKey)
	routes := newHostRoutes()
	contested := map[*hostRoute][]string{}
	for _, c := range claims {
		m, key := routes.exact, c.Pattern
		if suffix, wild := strings.CutPrefix(c.Pattern, "*"); wild {
			m, key = routes.wildcard, suffix
		}
		r := m[key]
		if r == nil {
			r = &hostRoute{pattern: c.Pattern, entry: c.entry}
			m[key] = r
		}
		if others := index.Contested(c.Claim); len(others) > 0 {
			contested[r] = append(append(contested[r], c.Policy), others...)
		}
	}
	for r, policies := range contested {
		slices.Sort(policies)
		policies = slices.Compact(policies)
		r.entry = nil
		r.conflict = "the host " + r.pattern + " is claimed by MFAPolicies " + strings.Join(policies, ", ") +
			" in conflict (the same host, or overlapping hosts in different namespaces); host-based lookup refuses it until one remains. " +
			"Use /auth/{namespace}/{policy}, or remove the host from all but one policy"
		sb.log.Warn("host listed by MFAPolicies in conflict; host-based lookup refuses it until one remains", "host", r.pattern, "policies", strings.Join(policies, ","))
	}
	return routes
}

// lookup returns the route of the most specific pattern naming the host
// name (normalised, without a port), or nil. It does not allocate.
func (hr *hostRoutes) lookup(name string) *hostRoute {
	if r := hr.exact[name]; r != nil {
		return r
	}
	// Longest wildcard first: the suffix after each dot, left to right.
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if r := hr.wildcard[name[i:]]; r != nil {
				return r
			}
		}
	}
	return nil
}
