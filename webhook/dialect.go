package webhook

// dialect is how a front door asks about a request: where the original
// request is read from, and how a missing second factor is answered.
type dialect struct {
	// parse reads the original request.
	parse originalParser
	// redirect: the front door hands the answer to the browser as it is,
	// so a missing second factor is a 302 to the challenge (a 401 problem
	// document for an API client), not nginx's 401 with Location.
	redirect bool
	// envoyAddress: the front door is of the Envoy family, whose
	// X-Envoy-External-Address names the client when X-Forwarded-For does
	// not (believed, like it, only from a trusted proxy). Other front doors
	// pass that header on from the client, so it is not read for them.
	envoyAddress bool
}

// The dialects of the auth endpoints (see DESIGN's front-door table).
var (
	// dialectAuth: /auth, ingress-nginx auth-url and nginx auth_request.
	dialectAuth = &dialect{parse: parseOriginal}
	// dialectForwardAuth: /forward-auth, Traefik and Caddy.
	dialectForwardAuth = &dialect{parse: parseForwarded, redirect: true}
	// dialectExtAuthz: /ext-authz/{ns}/{policy}/..., Envoy's http_service
	// and the Gateway API ExternalAuth filter (HTTP).
	// X-Envoy-External-Address is not read: nginx-based gateways (NGINX
	// Gateway Fabric) pass it on from the client as it came.
	dialectExtAuthz = &dialect{parse: parseRequestLine, redirect: true}
	// dialectExtAuthzBadPath: an /ext-authz/ path that names no policy.
	dialectExtAuthzBadPath = &dialect{parse: refuseExtAuthzPath, redirect: true}
)
