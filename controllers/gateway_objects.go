package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// The front doors' kinds the controller reads or writes.
var (
	gvkHTTPRoute           = schema.GroupVersionKind{Group: v1alpha1.GatewayAPIGroup, Version: "v1", Kind: "HTTPRoute"}
	gvkGateway             = schema.GroupVersionKind{Group: v1alpha1.GatewayAPIGroup, Version: "v1", Kind: "Gateway"}
	gvkReferenceGrant      = schema.GroupVersionKind{Group: v1alpha1.GatewayAPIGroup, Version: "v1beta1", Kind: "ReferenceGrant"}
	gvkSecurityPolicy      = schema.GroupVersionKind{Group: "gateway.envoyproxy.io", Version: "v1alpha1", Kind: "SecurityPolicy"}
	gvkMiddleware          = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}
	gvkAuthorizationPolicy = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
)

// generatedKinds are the kinds the controller writes and owns, per policy.
var generatedKinds = []schema.GroupVersionKind{gvkSecurityPolicy, gvkMiddleware, gvkAuthorizationPolicy}

// labelPolicy names, on a generated object, the MFAPolicy (of the same
// namespace) it was written for.
const labelPolicy = "mfa.operator.dev/policy"

// IstioProviderName is the name of a policy's extensionProviders entry of
// Istio's mesh config, which its AuthorizationPolicies name:
// mfa-operator.<namespace>.<policy>. One entry per policy, because the
// entry carries the policy's path prefix; a namespace has no dot, so the
// name is unambiguous.
func IstioProviderName(namespace, name string) string {
	return "mfa-operator." + namespace + "." + name
}

// MFAResponseHeaders are the headers the challenge server answers an
// allowed request with, for the app.
var MFAResponseHeaders = []string{"X-MFA-User", "X-MFA-Multifactor", "X-MFA-Assertion"}

// challengeServicePort is the port of the challenge Service's HTTP
// endpoints, as ChallengeService declares it.
func challengeServicePort(o Options) int64 {
	for _, p := range ChallengeService(o).Spec.Ports {
		if p.Name == ChallengePortName {
			return int64(p.Port)
		}
	}
	return 80
}

// ExtAuthzPrefix is the ext_authz path prefix of a policy: the front door
// appends the original path.
func ExtAuthzPrefix(namespace, name string) string {
	return "/ext-authz/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// extAuthzRequestHeaders are the client headers an ext_authz front door
// must pass on (Envoy's HTTP service sends only Host, Method, Path,
// Content-Length and Authorization by default): the cookies of the MFA
// session, the client address, and the policy's identity headers.
func extAuthzRequestHeaders(p *v1alpha1.MFAPolicy) []string {
	hs := []string{"cookie", "x-forwarded-for", "x-forwarded-proto"}
	add := func(h string) {
		h = strings.ToLower(h)
		if h == "" || h == "authorization" {
			return // always sent
		}
		for _, x := range hs {
			if x == h {
				return
			}
		}
		hs = append(hs, h)
	}
	if id := p.Spec.Identity.Header; id != nil {
		add(id.GetUserHeader())
		add(id.Groups)
		add(id.Name)
	}
	if j := p.Spec.Identity.JWT; j != nil {
		add(j.GetHeader())
	}
	return hs
}

// generatedName is the name of a generated object: mfa-<policy>, and the
// target's kind, name and section when the object is per target. Names
// too long for the API server end in a hash of the whole instead.
func generatedName(policy string, ref *v1alpha1.TargetRef) string {
	n := "mfa-" + policy
	if ref != nil {
		n += "-" + strings.ToLower(string(ref.Kind)) + "-" + string(ref.Name)
		if ref.SectionName != nil {
			n += "-" + string(*ref.SectionName)
		}
	}
	if len(n) <= 253 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return n[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

func newGenerated(gvk schema.GroupVersionKind, p *v1alpha1.MFAPolicy, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(p.Namespace)
	u.SetName(name)
	u.SetLabels(map[string]string{labelManagedBy: ControllerName, labelPartOf: partOf, labelPolicy: p.Name})
	return u
}

func targetRefMap(ref *v1alpha1.TargetRef) map[string]any {
	m := map[string]any{"group": string(ref.Group), "kind": string(ref.Kind), "name": string(ref.Name)}
	if ref.SectionName != nil {
		m["sectionName"] = string(*ref.SectionName)
	}
	return m
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// SecurityPolicy is the Envoy Gateway SecurityPolicy attaching a policy to
// one target: ext_authz over HTTP to the challenge Service, under the
// policy's /ext-authz prefix, failing closed.
func SecurityPolicy(o Options, p *v1alpha1.MFAPolicy, ref *v1alpha1.TargetRef) *unstructured.Unstructured {
	return newGenerated(gvkSecurityPolicy, p, generatedName(p.Name, ref), map[string]any{
		"targetRefs": []any{targetRefMap(ref)},
		"extAuth": map[string]any{
			"failOpen":         false,
			"headersToExtAuth": stringsAny(extAuthzRequestHeaders(p)),
			"http": map[string]any{
				"backendRefs": []any{map[string]any{
					"group": "", "kind": "Service",
					"name": ChallengeName, "namespace": o.Namespace, "port": challengeServicePort(o),
				}},
				"path":             ExtAuthzPrefix(p.Namespace, p.Name),
				"headersToBackend": stringsAny(MFAResponseHeaders),
			},
		},
	})
}

// TraefikForwardAuth is the forwardAuth middleware of a policy, the same
// for the Kubernetes CRD provider (Middleware.spec.forwardAuth) and the
// file provider (http.middlewares.<name>.forwardAuth).
//
// trustForwardHeader stays false: with true, Traefik passes on the
// X-Forwarded-* headers it got instead of writing its own, and the
// challenge server, which believes them because Traefik is in
// --trusted-proxies, would judge the host, path and client address a
// client wrote rather than the request it made.
func TraefikForwardAuth(o Options, namespace, name string) map[string]any {
	return map[string]any{
		"address": fmt.Sprintf("http://%s.%s.svc:%d/forward-auth/%s/%s", ChallengeName, o.Namespace, challengeServicePort(o),
			url.PathEscape(namespace), url.PathEscape(name)),
		"authResponseHeaders": stringsAny(MFAResponseHeaders),
		"trustForwardHeader":  false,
	}
}

// TraefikMiddleware is the Traefik Middleware of a policy, one per policy:
// routes attach it themselves (an ExtensionRef filter of an HTTPRoute, or
// a router's middlewares).
func TraefikMiddleware(o Options, p *v1alpha1.MFAPolicy) *unstructured.Unstructured {
	return newGenerated(gvkMiddleware, p, generatedName(p.Name, nil), map[string]any{
		"forwardAuth": TraefikForwardAuth(o, p.Namespace, p.Name),
	})
}

// AuthorizationPolicy is the Istio AuthorizationPolicy (action CUSTOM, the
// mfa-operator extension provider) for Gateways of the policy's namespace.
// hosts, when set, narrow it to an HTTPRoute's hostnames (with any port).
func AuthorizationPolicy(p *v1alpha1.MFAPolicy, name string, gateways []string, hosts []string) *unstructured.Unstructured {
	refs := make([]any, 0, len(gateways))
	for _, g := range gateways {
		refs = append(refs, map[string]any{"group": v1alpha1.GatewayAPIGroup, "kind": "Gateway", "name": g})
	}
	rule := map[string]any{}
	if len(hosts) > 0 {
		var hs []string
		for _, h := range hosts {
			hs = append(hs, h)
			// Istio matches a prefix or a suffix, not both: a wildcard
			// host cannot also take any port.
			if !strings.HasPrefix(h, "*") {
				hs = append(hs, h+":*")
			}
		}
		rule["to"] = []any{map[string]any{"operation": map[string]any{"hosts": stringsAny(hs)}}}
	}
	return newGenerated(gvkAuthorizationPolicy, p, name, map[string]any{
		"targetRefs": refs,
		"action":     "CUSTOM",
		"provider":   map[string]any{"name": IstioProviderName(p.Namespace, p.Name)},
		"rules":      []any{rule},
	})
}

// IstioExtensionProvider is the mesh config entry (meshConfig.
// extensionProviders) the policy's AuthorizationPolicies need, as YAML.
// Location and Set-Cookie go back to the browser on a redirect to the
// challenge; the X-MFA-* headers go to the app on allow.
func IstioExtensionProvider(o Options, p *v1alpha1.MFAPolicy) string {
	entry := map[string]any{
		"name": IstioProviderName(p.Namespace, p.Name),
		"envoyExtAuthzHttp": map[string]any{
			"service":                      fmt.Sprintf("%s.%s.svc.cluster.local", ChallengeName, o.Namespace),
			"port":                         challengeServicePort(o),
			"pathPrefix":                   ExtAuthzPrefix(p.Namespace, p.Name),
			"includeRequestHeadersInCheck": extAuthzRequestHeaders(p),
			"headersToUpstreamOnAllow":     MFAResponseHeaders,
			"headersToDownstreamOnDeny":    []string{"location", "set-cookie", "content-type", "www-authenticate"},
		},
	}
	b, _ := yaml.Marshal(map[string]any{"extensionProviders": []any{entry}})
	return string(b)
}

// externalAuthFilter is the Gateway API ExternalAuth filter that sends a
// route's requests to the policy (NGINX Gateway Fabric, Cilium, any
// implementation of GEP-1494), as YAML for a rule's filters.
func externalAuthFilter(o Options, p *v1alpha1.MFAPolicy) string {
	f := map[string]any{
		"type": "ExternalAuth",
		"externalAuth": map[string]any{
			"protocol":   "HTTP",
			"backendRef": map[string]any{"name": ChallengeName, "namespace": o.Namespace, "port": challengeServicePort(o)},
			"http": map[string]any{
				"path":                   ExtAuthzPrefix(p.Namespace, p.Name),
				"allowedHeaders":         extAuthzRequestHeaders(p),
				"allowedResponseHeaders": MFAResponseHeaders,
			},
		},
	}
	b, _ := yaml.Marshal([]any{f})
	return string(b)
}

// traefikFilter is the ExtensionRef filter attaching the policy's Traefik
// Middleware to an HTTPRoute rule.
func traefikFilter(p *v1alpha1.MFAPolicy) string {
	b, _ := yaml.Marshal([]any{map[string]any{
		"type":         "ExtensionRef",
		"extensionRef": map[string]any{"group": gvkMiddleware.Group, "kind": gvkMiddleware.Kind, "name": generatedName(p.Name, nil)},
	}})
	return string(b)
}
