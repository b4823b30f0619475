package controllers_test

import (
	"fmt"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/testcrds"
)

var (
	gvkSecurityPolicy      = schema.GroupVersionKind{Group: "gateway.envoyproxy.io", Version: "v1alpha1", Kind: "SecurityPolicy"}
	gvkMiddleware          = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}
	gvkAuthorizationPolicy = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
	gvkReferenceGrant      = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1beta1", Kind: "ReferenceGrant"}
)

var (
	frontDoorsOnce sync.Once
	frontDoorsErr  error
)

// installFrontDoors installs the CRDs of Envoy Gateway, Traefik and Istio
// in the suite's API server, once; Gateway API's are there from the start.
func installFrontDoors(t *testing.T) {
	t.Helper()
	frontDoorsOnce.Do(func() {
		frontDoorsErr = testcrds.Install(restConfig, testcrds.EnvoyGateway, testcrds.Traefik, testcrds.Istio)
	})
	if frontDoorsErr != nil {
		t.Fatalf("installing the front doors' CRDs: %v", frontDoorsErr)
	}
}

func targetRef(kind, name string) v1alpha1.TargetRef {
	var r v1alpha1.TargetRef
	r.Group, r.Kind, r.Name = v1alpha1.GatewayAPIGroup, gwapiv1.Kind(kind), gwapiv1.ObjectName(name)
	return r
}

func gateway(ns, name string) *gwapiv1.Gateway {
	return &gwapiv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gwapiv1.GatewaySpec{GatewayClassName: "example", Listeners: []gwapiv1.Listener{
			{Name: "http", Port: 80, Protocol: gwapiv1.HTTPProtocolType},
		}},
	}
}

func httpRoute(ns, name, gw string, hosts ...string) *gwapiv1.HTTPRoute {
	r := &gwapiv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: gwapiv1.ObjectName(gw)}}},
			Rules: []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
				BackendObjectReference: gwapiv1.BackendObjectReference{Name: "app", Port: ptr.To[gwapiv1.PortNumber](8080)},
			}}}}},
		},
	}
	for _, h := range hosts {
		r.Spec.Hostnames = append(r.Spec.Hostnames, gwapiv1.Hostname(h))
	}
	return r
}

// externalAuthFilter is the filter a policy's FilterRequired status shows.
func externalAuthFilter(ns, policy string) gwapiv1.HTTPRouteFilter {
	return gwapiv1.HTTPRouteFilter{Type: gwapiv1.HTTPRouteFilterExternalAuth, ExternalAuth: &gwapiv1.HTTPExternalAuthFilter{
		ExternalAuthProtocol: gwapiv1.HTTPRouteExternalAuthHTTPProtocol,
		BackendRef: gwapiv1.BackendObjectReference{Name: controllers.ChallengeName, Namespace: ptr.To(gwapiv1.Namespace(opts.Namespace)),
			Port: ptr.To[gwapiv1.PortNumber](80)},
		HTTPAuthConfig: &gwapiv1.HTTPAuthConfig{Path: controllers.ExtAuthzPrefix(ns, policy)},
	}}
}

func getGenerated(g Gomega, gvk schema.GroupVersionKind, ns, name string) *unstructured.Unstructured {
	return getGeneratedWith(g, k8sClient, gvk, ns, name)
}

func getGeneratedWith(g Gomega, c client.Client, gvk schema.GroupVersionKind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed(), "%s %s/%s", gvk.Kind, ns, name)
	return u
}

func expectGone(t *testing.T, gvk schema.GroupVersionKind, ns, name string) {
	t.Helper()
	NewWithT(t).Eventually(func() bool {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u))
	}).WithTimeout(timeout).Should(BeTrue(), "%s %s/%s should be deleted", gvk.Kind, ns, name)
}

func targetState(g Gomega, p *v1alpha1.MFAPolicy, i int, state v1alpha1.TargetState) v1alpha1.TargetStatus {
	g.Expect(p.Status.Targets).To(HaveLen(len(p.Spec.TargetRefs)))
	t := p.Status.Targets[i]
	g.Expect(t.State).To(Equal(state), "targets[%d]: %s", i, t.Message)
	return t
}

// TestGatewayTargetsAttached: an HTTPRoute and a Gateway target get an
// Envoy Gateway SecurityPolicy and an Istio AuthorizationPolicy each, and
// the policy a Traefik Middleware, all accepted by the API server against
// the front doors' own CRDs; a missing target is TargetNotFound; a target
// dropped from spec loses its objects; every object is owned by the policy.
func TestGatewayTargetsAttached(t *testing.T) {
	installFrontDoors(t)
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"), gateway(ns, "gw"), httpRoute(ns, "admin", "gw", "admin."+ns+".example.com"))
	p := mfaPolicy(ns, "admin", "false", "totp")
	p.Spec.TargetRefs = []v1alpha1.TargetRef{targetRef("HTTPRoute", "admin"), targetRef("Gateway", "gw"), targetRef("HTTPRoute", "nope")}
	create(t, p)

	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		route := targetState(g, p, 0, v1alpha1.TargetAttached)
		g.Expect(route.Objects).To(ConsistOf("SecurityPolicy "+ns+"/mfa-admin-httproute-admin", "AuthorizationPolicy "+ns+"/mfa-admin-httproute-admin"))
		g.Expect(route.Message).To(HavePrefix("spec.targetRefs[0]: HTTPRoute " + ns + "/admin is sent to the challenge server by"))
		gw := targetState(g, p, 1, v1alpha1.TargetAttached)
		g.Expect(gw.Objects).To(ContainElement("AuthorizationPolicy " + ns + "/mfa-admin-gateway-gw"))
		missing := targetState(g, p, 2, v1alpha1.TargetNotFound)
		g.Expect(missing.Message).To(Equal("spec.targetRefs[2]: HTTPRoute " + ns + "/nope does not exist"))
		g.Expect(p.Status.IstioExtensionProvider).To(ContainSubstring("pathPrefix: /ext-authz/" + ns + "/admin"))
		g.Expect(p.Status.IstioExtensionProvider).To(ContainSubstring("- location"))
	})

	g := NewWithT(t)
	sp := getGenerated(g, gvkSecurityPolicy, ns, "mfa-admin-httproute-admin")
	http, _, _ := unstructured.NestedMap(sp.Object, "spec", "extAuth", "http")
	g.Expect(http["path"]).To(Equal("/ext-authz/" + ns + "/admin"))
	g.Expect(http["headersToBackend"]).To(Equal([]any{"X-MFA-User", "X-MFA-Multifactor", "X-MFA-Assertion"}))
	g.Expect(http["backendRefs"]).To(ConsistOf(SatisfyAll(
		HaveKeyWithValue("kind", "Service"), HaveKeyWithValue("name", "mfa-challenge"),
		HaveKeyWithValue("namespace", "mfa-system"), HaveKeyWithValue("port", int64(80)))))
	g.Expect(sp.Object["spec"]).To(HaveKeyWithValue("extAuth", HaveKeyWithValue("failOpen", false)))
	g.Expect(metav1.GetControllerOf(sp)).NotTo(BeNil())
	g.Expect(metav1.GetControllerOf(sp).UID).To(Equal(p.UID))

	ap := getGenerated(g, gvkAuthorizationPolicy, ns, "mfa-admin-httproute-admin")
	g.Expect(ap.Object["spec"]).To(HaveKeyWithValue("action", "CUSTOM"))
	g.Expect(ap.Object["spec"]).To(HaveKeyWithValue("provider", map[string]any{"name": "mfa-operator." + ns + ".admin"}))
	g.Expect(ap.Object["spec"]).To(HaveKeyWithValue("targetRefs", []any{map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}}))

	// The Middleware's forwardAuth, rendered into Traefik's file provider,
	// is the one exported function's output.
	mw := getGenerated(g, gvkMiddleware, ns, "mfa-admin")
	fa, _, _ := unstructured.NestedMap(mw.Object, "spec", "forwardAuth")
	fileYAML, err := yaml.Marshal(map[string]any{"http": map[string]any{"middlewares": map[string]any{"mfa": map[string]any{"forwardAuth": controllers.TraefikForwardAuth(opts, ns, "admin")}}}})
	g.Expect(err).NotTo(HaveOccurred())
	var file struct {
		HTTP struct {
			Middlewares map[string]struct{ ForwardAuth map[string]any }
		}
	}
	g.Expect(yaml.Unmarshal(fileYAML, &file)).To(Succeed())
	g.Expect(file.HTTP.Middlewares["mfa"].ForwardAuth).To(Equal(fa))
	g.Expect(fa["address"]).To(Equal(fmt.Sprintf("http://mfa-challenge.mfa-system.svc:80/forward-auth/%s/admin", ns)))
	g.Expect(fa["trustForwardHeader"]).To(Equal(false))

	grant := getGenerated(g, gvkReferenceGrant, opts.Namespace, "mfa-challenge-from-"+ns)
	g.Expect(grant.Object["spec"]).To(HaveKeyWithValue("to", []any{map[string]any{"group": "", "kind": "Service", "name": "mfa-challenge"}}))

	// Dropping the route from spec removes its objects.
	update(t, p, func(p *v1alpha1.MFAPolicy) { p.Spec.TargetRefs = p.Spec.TargetRefs[1:2] })
	expectGone(t, gvkSecurityPolicy, ns, "mfa-admin-httproute-admin")
	expectGone(t, gvkAuthorizationPolicy, ns, "mfa-admin-httproute-admin")
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) { targetState(g, p, 0, v1alpha1.TargetAttached) })

	// Without targetRefs nothing is left in the namespace, and the
	// ReferenceGrant goes too.
	update(t, p, func(p *v1alpha1.MFAPolicy) { p.Spec.TargetRefs = nil })
	expectGone(t, gvkSecurityPolicy, ns, "mfa-admin-gateway-gw")
	expectGone(t, gvkAuthorizationPolicy, ns, "mfa-admin-gateway-gw")
	expectGone(t, gvkMiddleware, ns, "mfa-admin")
	expectGone(t, gvkReferenceGrant, opts.Namespace, "mfa-challenge-from-"+ns)
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) { g.Expect(p.Status.Targets).To(BeEmpty()) })
}

// TestGatewayTargetConflict: the policy created second that targets the
// same HTTPRoute is in Conflict and writes nothing for it; when the first
// one is deleted, the second attaches.
func TestGatewayTargetConflict(t *testing.T) {
	installFrontDoors(t)
	ns := newNamespace(t)
	create(t, totpProvider(ns, "totp"), gateway(ns, "gw"), httpRoute(ns, "shop", "gw", "shop."+ns+".example.com"))
	first := mfaPolicy(ns, "first", "false", "totp")
	first.Spec.TargetRefs = []v1alpha1.TargetRef{targetRef("HTTPRoute", "shop")}
	create(t, first)
	waitFor(t, first, func(g Gomega, p *v1alpha1.MFAPolicy) { targetState(g, p, 0, v1alpha1.TargetAttached) })
	second := mfaPolicy(ns, "second", "false", "totp")
	second.Spec.TargetRefs = []v1alpha1.TargetRef{targetRef("Gateway", "gw"), targetRef("HTTPRoute", "shop")}
	create(t, second)
	waitFor(t, second, func(g Gomega, p *v1alpha1.MFAPolicy) {
		c := targetState(g, p, 1, v1alpha1.TargetConflict)
		g.Expect(c.Message).To(HavePrefix("spec.targetRefs[1]: HTTPRoute " + ns + "/shop is also targeted by MFAPolicy " + ns + "/first"))
		g.Expect(c.Objects).To(BeEmpty())
		targetState(g, p, 0, v1alpha1.TargetAttached)
	})
	g := NewWithT(t)
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvkSecurityPolicy)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mfa-second-httproute-shop"}, u))).To(BeTrue())

	g.Expect(k8sClient.Delete(ctx, first)).To(Succeed())
	waitFor(t, second, func(g Gomega, p *v1alpha1.MFAPolicy) { targetState(g, p, 1, v1alpha1.TargetAttached) })
	getGenerated(g, gvkSecurityPolicy, ns, "mfa-second-httproute-shop")

	// The last policy of the namespace with targets gone, its
	// ReferenceGrant goes too (its own objects go with it by their owner
	// reference, which the garbage collector of a real cluster follows).
	getGenerated(g, gvkReferenceGrant, opts.Namespace, "mfa-challenge-from-"+ns)
	g.Expect(k8sClient.Delete(ctx, second)).To(Succeed())
	expectGone(t, gvkReferenceGrant, opts.Namespace, "mfa-challenge-from-"+ns)
}

// TestGatewaySectionTarget: a target naming one rule of an HTTPRoute gets
// an Envoy Gateway SecurityPolicy for that rule; Istio, which attaches to
// whole Gateways only, is reported as not attached, and the HTTPRoute
// itself is never written by the controller.
func TestGatewaySectionTarget(t *testing.T) {
	installFrontDoors(t)
	ns := newNamespace(t)
	route := httpRoute(ns, "portal", "gw-elsewhere")
	route.Spec.Rules[0].Name = ptr.To[gwapiv1.SectionName]("main")
	create(t, totpProvider(ns, "totp"), route)
	p := mfaPolicy(ns, "portal", "false", "totp")
	ref := targetRef("HTTPRoute", "portal")
	ref.SectionName = ptr.To[gwapiv1.SectionName]("main")
	p.Spec.TargetRefs = []v1alpha1.TargetRef{ref}
	create(t, p)
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		st := targetState(g, p, 0, v1alpha1.TargetAttached)
		// Envoy Gateway attaches to a rule; Istio cannot, and says so.
		g.Expect(st.Objects).To(Equal([]string{"SecurityPolicy " + ns + "/mfa-portal-httproute-portal-main"}))
		g.Expect(st.Message).To(ContainSubstring("Istio: an AuthorizationPolicy targets whole Gateways, not a section"))
	})
	before := &gwapiv1.HTTPRoute{}
	NewWithT(t).Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(route), before)).To(Succeed())
	NewWithT(t).Expect(before.Generation).To(BeEquivalentTo(1), "the controller never edits an HTTPRoute")
}

func protectedCondition(g Gomega, p *v1alpha1.MFAPolicy, status metav1.ConditionStatus) *metav1.Condition {
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ProtectedCondition)
	g.Expect(c).NotTo(BeNil(), "no Protected condition")
	g.Expect(c.Status).To(Equal(status), "Protected: %s", c.Message)
	return c
}

// unprotectedGauge reads mfa_unprotected_routes{policy}.
func unprotectedGauge(g Gomega, policy string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "mfa_unprotected_routes" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "policy" && l.GetValue() == policy {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestProtectedAudit: an Ingress serving a policy host without the
// auth-url annotation, and an HTTPRoute whose wildcard serves it without
// the ExternalAuth filter, make Protected False (with names, a Warning
// event and the gauge); wiring them makes it True.
func TestProtectedAudit(t *testing.T) {
	ns := newNamespace(t)
	host := "admin." + ns + ".example.com"
	p := mfaPolicy(ns, "admin", "false", "totp")
	p.Spec.Hosts = []string{host}
	create(t, totpProvider(ns, "totp"), p)
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		c := protectedCondition(g, p, metav1.ConditionTrue)
		g.Expect(c.Message).To(Equal("0 routes serve the policy's hosts, all through the challenge server"))
	})

	ing := ingress(ns, "admin-legacy", host, nil)
	route := httpRoute(ns, "wild", "gw", "*."+ns+".example.com")
	create(t, ing, route)
	key := ns + "/admin"
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		c := protectedCondition(g, p, metav1.ConditionFalse)
		g.Expect(c.Reason).To(Equal(v1alpha1.ReasonUnprotectedRoutes))
		g.Expect(c.Message).To(HavePrefix("2 of 2 routes serving the policy's hosts do not ask the challenge server for this policy"))
		g.Expect(c.Message).To(ContainSubstring("Ingress " + ns + "/admin-legacy serves " + host + " without the auth-url annotation"))
		g.Expect(c.Message).To(ContainSubstring("HTTPRoute " + ns + "/wild serves *." + ns + ".example.com without an ExternalAuth filter"))
		g.Expect(unprotectedGauge(g, key)).To(Equal(2.0))
	})
	expectWarningEvent(t, ns, "admin", v1alpha1.ReasonUnprotectedRoutes, "Ingress "+ns+"/admin-legacy serves")

	update(t, ing, func(i *networkingv1.Ingress) {
		i.Annotations = map[string]string{"nginx.ingress.kubernetes.io/auth-url": opts.AuthURL(ns, "admin")}
	})
	update(t, route, func(r *gwapiv1.HTTPRoute) {
		r.Spec.Rules[0].Filters = []gwapiv1.HTTPRouteFilter{externalAuthFilter(ns, "admin")}
	})
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		c := protectedCondition(g, p, metav1.ConditionTrue)
		g.Expect(c.Message).To(Equal("2 routes serve the policy's hosts, all through the challenge server"))
		g.Expect(unprotectedGauge(g, key)).To(Equal(0.0))
	})

	// Another policy's auth-url does not protect this policy's host.
	update(t, ing, func(i *networkingv1.Ingress) {
		i.Annotations = map[string]string{"nginx.ingress.kubernetes.io/auth-url": opts.AuthURL(ns, "other")}
	})
	waitFor(t, p, func(g Gomega, p *v1alpha1.MFAPolicy) {
		c := protectedCondition(g, p, metav1.ConditionFalse)
		g.Expect(c.Message).To(ContainSubstring("with the auth-url of MFAPolicy " + ns + "/other, not this policy's"))
	})
}

// TestIngressNamingMissingPolicy: an Ingress whose auth-url names an
// MFAPolicy that does not exist gets a Warning event.
func TestIngressNamingMissingPolicy(t *testing.T) {
	ns := newNamespace(t)
	create(t, ingress(ns, "typo", "typo."+ns+".example.com", map[string]string{
		"nginx.ingress.kubernetes.io/auth-url": opts.AuthURL(ns, "amdin"),
	}))
	expectWarningEvent(t, ns, "typo", controllers.ReasonPolicyNotFound,
		"metadata.annotations[nginx.ingress.kubernetes.io/auth-url] names MFAPolicy "+ns+"/amdin, which does not exist")
}

func ingress(ns, name, host string, annotations map[string]string) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}},
		}}}},
	}
}
