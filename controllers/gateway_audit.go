package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// annotationAuthURL is ingress-nginx's external authentication annotation.
const annotationAuthURL = "nginx.ingress.kubernetes.io/auth-url"

// unprotectedRoutes is the number of routes serving a policy's hosts
// without sending their requests to it.
var unprotectedRoutes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "mfa_unprotected_routes",
	Help: "Ingresses and HTTPRoutes that serve a host of the MFAPolicy without sending their requests to the challenge server for it.",
}, []string{"policy"})

func init() { metrics.Registry.MustRegister(unprotectedRoutes) }

// maxNamedRoutes is how many unprotected routes the Protected message names.
const maxNamedRoutes = 3

// ingressHosts are the hosts of an Ingress's rules. A rule without a host
// (the default server, reached only when no other names the host) is left
// out.
func ingressHosts(ing *networkingv1.Ingress) []string {
	var hs []string
	for _, r := range ing.Spec.Rules {
		if r.Host != "" {
			hs = append(hs, r.Host)
		}
	}
	return hs
}

// servedPatterns returns the route hosts (as the route writes them) that
// overlap a host of the policy, each normalised through internal/hostname
// as the challenge server reads hosts: a route's wildcard over a policy
// host serves it, and so does a route host under a policy's wildcard.
func servedPatterns(p *v1alpha1.MFAPolicy, routeHosts []string) []string {
	claims, _ := hostname.ClaimsOf(p.Namespace, p.Name, p.Spec.Hosts)
	var out []string
	for _, h := range routeHosts {
		n, err := hostname.NormalizePattern(h)
		if err != nil {
			continue
		}
		for _, c := range claims {
			if hostname.Overlap(c.Pattern, hostname.Name(n)) {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// authURLPolicy reads the policy an auth-url names: /auth/{ns}/{name}.
func authURLPolicy(raw string) (types.NamespacedName, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return types.NamespacedName{}, false
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "auth" || parts[1] == "" || parts[2] == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: parts[1], Name: parts[2]}, true
}

// isChallengeHost says whether an auth-url's host is the challenge
// server: its Service by any of its in-cluster names, or --public-url.
func (o Options) isChallengeHost(host string) bool {
	h := hostname.Name(strings.ToLower(host))
	svc := ChallengeName + "." + o.Namespace
	switch h {
	case svc, svc + ".svc", svc + ".svc.cluster.local":
		return true
	}
	if pu, err := url.Parse(o.SigninBaseURL()); err == nil && strings.EqualFold(pu.Hostname(), h) {
		return true
	}
	return false
}

// ingressGap says why an Ingress does not send its requests to the policy,
// "" when it does: its auth-url names the policy, or the host-based /auth.
func (o Options) ingressGap(p *v1alpha1.MFAPolicy, ing *networkingv1.Ingress) string {
	raw, ok := ing.Annotations[annotationAuthURL]
	if !ok {
		return "without the auth-url annotation"
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !o.isChallengeHost(u.Host) {
		return fmt.Sprintf("with an auth-url (%q) that is not the challenge server", raw)
	}
	if u.Path == "/auth" {
		return ""
	}
	if ref, ok := authURLPolicy(raw); ok {
		if ref.Namespace == p.Namespace && ref.Name == p.Name {
			return ""
		}
		return fmt.Sprintf("with the auth-url of MFAPolicy %s, not this policy's", ref)
	}
	return fmt.Sprintf("with an auth-url (%q) that names no policy", raw)
}

// routeWired says whether every rule of an HTTPRoute sends its requests
// to the policy: an ExternalAuth filter to the challenge Service (HTTP
// under the policy's prefix, or gRPC), or the ExtensionRef to the
// policy's Traefik Middleware.
func (o Options) routeWired(p *v1alpha1.MFAPolicy, r *gwapiv1.HTTPRoute) bool {
	if len(r.Spec.Rules) == 0 {
		return false
	}
	for _, rule := range r.Spec.Rules {
		wired := false
		for _, f := range rule.Filters {
			switch {
			case f.Type == gwapiv1.HTTPRouteFilterExternalAuth && f.ExternalAuth != nil:
				b := f.ExternalAuth.BackendRef
				ns := r.Namespace
				if b.Namespace != nil {
					ns = string(*b.Namespace)
				}
				if string(b.Name) != ChallengeName || ns != o.Namespace || b.Kind != nil && *b.Kind != "Service" {
					continue
				}
				if f.ExternalAuth.ExternalAuthProtocol == gwapiv1.HTTPRouteExternalAuthGRPCProtocol ||
					f.ExternalAuth.HTTPAuthConfig != nil && f.ExternalAuth.HTTPAuthConfig.Path == ExtAuthzPrefix(p.Namespace, p.Name) {
					wired = true
				}
			case f.Type == gwapiv1.HTTPRouteFilterExtensionRef && f.ExtensionRef != nil:
				e := f.ExtensionRef
				if string(e.Group) == gvkMiddleware.Group && string(e.Kind) == gvkMiddleware.Kind && string(e.Name) == generatedName(p.Name, nil) {
					wired = true
				}
			}
		}
		if !wired {
			return false
		}
	}
	return true
}

// coveredByTargets says whether the policy's own generated objects cover
// a whole HTTPRoute: it is an Attached target, or a Gateway it is attached
// to is.
func coveredByTargets(p *v1alpha1.MFAPolicy, r *gwapiv1.HTTPRoute) bool {
	for _, t := range p.Status.Targets {
		if t.State != v1alpha1.TargetAttached || t.SectionName != nil || len(t.Objects) == 0 || r.Namespace != p.Namespace && t.Kind == "HTTPRoute" {
			continue
		}
		if t.Kind == "HTTPRoute" && string(t.Name) == r.Name {
			return true
		}
		if t.Kind == "Gateway" {
			for _, pr := range r.Spec.ParentRefs {
				ns := r.Namespace
				if pr.Namespace != nil {
					ns = string(*pr.Namespace)
				}
				if (pr.Kind == nil || *pr.Kind == "Gateway") && string(pr.Name) == string(t.Name) && ns == p.Namespace && pr.SectionName == nil {
					return true
				}
			}
		}
	}
	return false
}

// audit sets the Protected condition: every Ingress and (when the CRD is
// installed) HTTPRoute serving a host of the policy must send its requests
// to it. A policy without hosts has no Protected condition.
func (a *gatewayAttacher) audit(ctx context.Context, p *v1alpha1.MFAPolicy, httpRoutes bool) error {
	key := p.Namespace + "/" + p.Name
	if len(p.Spec.Hosts) == 0 {
		meta.RemoveStatusCondition(&p.Status.Conditions, v1alpha1.ProtectedCondition)
		unprotectedRoutes.DeleteLabelValues(key)
		return nil
	}
	var open []string
	total := 0
	var ings networkingv1.IngressList
	if err := a.client.List(ctx, &ings, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing Ingresses: %w", err)
	}
	for i := range ings.Items {
		ing := &ings.Items[i]
		served := servedPatterns(p, ingressHosts(ing))
		if len(served) == 0 {
			continue
		}
		total++
		if gap := a.opts.ingressGap(p, ing); gap != "" {
			open = append(open, fmt.Sprintf("Ingress %s/%s serves %s %s", ing.Namespace, ing.Name, strings.Join(served, ", "), gap))
		}
	}
	if httpRoutes {
		var routes gwapiv1.HTTPRouteList
		if err := a.client.List(ctx, &routes, client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("listing HTTPRoutes: %w", err)
		}
		for i := range routes.Items {
			r := &routes.Items[i]
			var hs []string
			for _, h := range r.Spec.Hostnames {
				hs = append(hs, string(h))
			}
			served := servedPatterns(p, hs)
			if len(served) == 0 {
				continue
			}
			total++
			if !a.opts.routeWired(p, r) && !coveredByTargets(p, r) {
				open = append(open, fmt.Sprintf("HTTPRoute %s/%s serves %s without an ExternalAuth filter to the challenge server in every rule, "+
					"nor a SecurityPolicy or AuthorizationPolicy of this policy (spec.targetRefs)", r.Namespace, r.Name, strings.Join(served, ", ")))
			}
		}
	}
	unprotectedRoutes.WithLabelValues(key).Set(float64(len(open)))
	before := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ProtectedCondition)
	var was metav1.Condition
	if before != nil {
		was = *before
	}
	if len(open) == 0 {
		msg := fmt.Sprintf("%d routes serve the policy's hosts, all through the challenge server", total)
		if !httpRoutes {
			msg += " (Ingresses only: the Gateway API HTTPRoute CRD is not installed)"
		}
		setCondition(&p.Status.Conditions, p.Generation, v1alpha1.ProtectedCondition, metav1.ConditionTrue, v1alpha1.ReasonRoutesProtected, msg)
		return nil
	}
	names := open
	if len(names) > maxNamedRoutes {
		names = names[:maxNamedRoutes]
	}
	msg := fmt.Sprintf("%d of %d routes serving the policy's hosts do not ask the challenge server for this policy, and are open: %s",
		len(open), total, strings.Join(names, "; "))
	if len(open) > maxNamedRoutes {
		msg += fmt.Sprintf("; and %d more", len(open)-maxNamedRoutes)
	}
	msg = statusMessage(fmt.Errorf("%s", msg))
	setCondition(&p.Status.Conditions, p.Generation, v1alpha1.ProtectedCondition, metav1.ConditionFalse, v1alpha1.ReasonUnprotectedRoutes, msg)
	if a.recorder != nil && (was.Status != metav1.ConditionFalse || was.Message != msg) {
		a.recorder.Eventf(p, nil, corev1.EventTypeWarning, v1alpha1.ReasonUnprotectedRoutes, "Audit", "%s", msg)
	}
	return nil
}
