package webhook

import (
	"errors"
	"net/http"
	"strings"
)

// extAuthzPrefix starts the Envoy ext_authz HTTP dialect's paths:
// /ext-authz/{namespace}/{policy}<original path and query>.
const extAuthzPrefix = "/ext-authz/"

// handleExtAuthz answers Envoy's ext_authz http_service (path_prefix
// /ext-authz/{namespace}/{policy}), Istio's envoyExtAuthzHttp (pathPrefix),
// Envoy Gateway's extAuth.http and the Gateway API ExternalAuth filter
// (HTTP): the auth request is the original request itself, its method, its
// path appended to the prefix, its Host and headers. Allowed is 200 (never
// 202, which Envoy takes for a denial) with the X-MFA-* headers; a missing
// second factor is a 302 to the challenge, which Envoy hands to the browser
// as it is (a 401 problem document for an API client); a denial 403. The
// decision is /auth's, with its guarantees.
func (a *authHandler) handleExtAuthz(w http.ResponseWriter, r *http.Request) {
	ns, name, original, ok := extAuthzPath(r.RequestURI)
	if !ok {
		a.serveDecision(w, r, "", "", "", dialectExtAuthzBadPath)
		return
	}
	a.serveDecision(w, r, ns, name, original, dialectExtAuthz)
}

var errExtAuthzPath = errors.New("an ext-authz request's path must be /ext-authz/{namespace}/{policy} followed by the original path; configure the front door's path prefix as /ext-authz/{namespace}/{policy}")

// refuseExtAuthzPath is the parser of a path that names no policy.
func refuseExtAuthzPath(*http.Request, string, pathMode, *originalRequest) error {
	return errExtAuthzPath
}

// extAuthzPath splits the request-target of an ext-authz request (as sent,
// undecoded) into the policy it names and the original path and query
// ("/" when none). The policy's segments are names (no escapes, no dots
// alone); the original is judged by parseRequestLine.
func extAuthzPath(target string) (ns, name, original string, ok bool) {
	rest, found := strings.CutPrefix(target, extAuthzPrefix)
	if !found {
		return "", "", "", false
	}
	ns, rest, found = strings.Cut(rest, "/")
	if !found {
		return "", "", "", false
	}
	name, original = rest, "/"
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '/' || c == '?' {
			name, original = rest[:i], rest[i:]
			if c == '?' {
				original = "/" + original
			}
			break
		}
	}
	if !policySegment(ns) || !policySegment(name) {
		return "", "", "", false
	}
	return ns, name, original, true
}

// policySegment: a namespace or policy name in a path, as Kubernetes names
// are written (lower-case letters, digits, '-' and '.'), not "." or "..".
func policySegment(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parseRequestLine reads the original request of the Envoy dialects: the
// method and Host of r, target its path and query as sent (after the
// ext-authz prefix and policy; a Check's attributes.request.http.path),
// and the scheme from X-Forwarded-Proto (https when the front door does
// not say). The caller has checked that the peer is trusted.
func parseRequestLine(r *http.Request, target string, paths pathMode, o *originalRequest) error {
	scheme := "https"
	if proto := firstHeader(r.Header, "X-Forwarded-Proto"); proto != "" {
		if scheme = lowerASCII(proto); scheme != "http" && scheme != "https" {
			return errors.New("X-Forwarded-Proto must be http or https")
		}
	} else if len(r.Header["X-Forwarded-Proto"]) > 1 {
		return errSentTwice("X-Forwarded-Proto")
	}
	host := r.Host
	switch {
	case host == "" || notHost(host):
		return errors.New("the original Host is missing or not a host")
	case target == "" || target[0] != '/' || strings.HasPrefix(target, "//"):
		return errors.New("the original path must start with a single /")
	case r.Method == "":
		return errors.New("the original method is missing")
	}
	return parseOriginalParts(scheme, host, target, r.Method, paths, o)
}
