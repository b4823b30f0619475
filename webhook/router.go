package webhook

import (
	"net/http"
	"strings"
)

// router answers the auth endpoints, which the front door calls on every
// protected request, without the ServeMux's pattern matching; every other
// request, and any auth path that is not plain (escapes, dot segments,
// empty segments), goes through the mux, whose routes cover the same
// paths with the same handlers.
type router struct {
	auth *authHandler
	mux  *http.ServeMux
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The ext-authz dialect carries the original path, escapes and dot
	// segments included, after its prefix: it is routed on the
	// request-target as sent, never on the mux's cleaned path.
	if strings.HasPrefix(r.RequestURI, extAuthzPrefix) && r.Method != http.MethodConnect {
		rt.auth.handleExtAuthz(w, r)
		return
	}
	if r.Method != http.MethodConnect && r.URL.RawPath == "" {
		p := r.URL.Path
		if rest, ok := strings.CutPrefix(p, "/auth"); ok {
			if ns, name, ok := policyPath(rest); ok {
				rt.auth.serveDecision(w, r, ns, name, "", dialectAuth)
				return
			}
		} else if rest, ok := strings.CutPrefix(p, "/forward-auth"); ok {
			if ns, name, ok := policyPath(rest); ok {
				rt.auth.serveDecision(w, r, ns, name, "", dialectForwardAuth)
				return
			}
		}
	}
	rt.mux.ServeHTTP(w, r)
}

// policyPath reads what follows /auth: nothing (the policy is chosen by
// host), or /{namespace}/{policy} with two plain segments.
func policyPath(rest string) (ns, name string, ok bool) {
	if rest == "" {
		return "", "", true
	}
	if rest[0] != '/' {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest[1:], "/")
	if !ok || !plainSegment(ns) || !plainSegment(name) {
		return "", "", false
	}
	return ns, name, true
}

func plainSegment(seg string) bool {
	return seg != "" && seg != "." && seg != ".." && strings.IndexByte(seg, '/') < 0
}
