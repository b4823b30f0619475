package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// Owner references with blockOwnerDeletion need update on the owner's
// finalizers where the OwnerReferencesPermissionEnforcement admission
// plugin runs.
// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfapolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;gateways,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.envoyproxy.io,resources=securitypolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=traefik.io,resources=middlewares,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;create;update;patch;delete,namespace=mfa-system

// frontDoorCRDs are the CRDs whose arrival or removal changes what the
// controller can do, by name.
var frontDoorCRDs = map[string]schema.GroupVersionKind{
	"httproutes.gateway.networking.k8s.io":      gvkHTTPRoute,
	"gateways.gateway.networking.k8s.io":        gvkGateway,
	"securitypolicies.gateway.envoyproxy.io":    gvkSecurityPolicy,
	"middlewares.traefik.io":                    gvkMiddleware,
	"authorizationpolicies.security.istio.io":   gvkAuthorizationPolicy,
	"referencegrants.gateway.networking.k8s.io": gvkReferenceGrant,
}

// frontDoors knows which front door kinds the API server serves
// (discovery; a kind not installed is not an error) and starts the
// watches on them as they appear: CRDs installed after the controller
// started are picked up without a restart.
type frontDoors struct {
	disc  discovery.DiscoveryInterface
	mgr   ctrl.Manager
	reads client.Reader

	mu      sync.Mutex
	checked time.Time
	present map[schema.GroupVersionKind]bool
	watched map[schema.GroupVersionKind]bool
	// changed is when a CRD event about a kind was last seen.
	changed map[schema.GroupVersionKind]time.Time
	ctrl    controller.Controller
}

// discoveryTTL bounds how long a discovery answer is reused; a CRD event
// clears it at once.
const discoveryTTL = time.Minute

// crdSettle is how long after a CRD event discovery is asked again at
// every reconcile while it does not show the kind: the API server serves
// a new CRD's kind a moment after the CRD (and its Established condition)
// is written, and no other event comes when it does.
const crdSettle = 30 * time.Second

func newFrontDoors(mgr ctrl.Manager) (*frontDoors, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	return &frontDoors{disc: disc, mgr: mgr, reads: mgr.GetClient(),
		watched: map[schema.GroupVersionKind]bool{}, changed: map[schema.GroupVersionKind]time.Time{}}, nil
}

// installed returns the front door kinds served now.
func (f *frontDoors) installed(ctx context.Context) (map[schema.GroupVersionKind]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.present != nil && time.Since(f.checked) < discoveryTTL && !f.settlingLocked() {
		return f.present, nil
	}
	present := map[schema.GroupVersionKind]bool{}
	byGV := map[schema.GroupVersion][]schema.GroupVersionKind{}
	for _, gvk := range frontDoorCRDs {
		byGV[gvk.GroupVersion()] = append(byGV[gvk.GroupVersion()], gvk)
	}
	for gv, kinds := range byGV {
		list, err := f.disc.ServerResourcesForGroupVersion(gv.String())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("discovering %s: %w", gv, err)
		}
		for _, r := range list.APIResources {
			for _, k := range kinds {
				if r.Kind == k.Kind {
					present[k] = true
				}
			}
		}
	}
	f.present, f.checked = present, time.Now()
	if f.ctrl != nil {
		if err := f.startWatches(ctx); err != nil {
			return nil, err
		}
	}
	return present, nil
}

// crdChanged notes a CRD event: the next installed() asks the API server
// again, and keeps asking while the kind settles.
func (f *frontDoors) crdChanged(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.present = nil
	if gvk, ok := frontDoorCRDs[name]; ok {
		f.changed[gvk] = time.Now()
	}
}

// settling reports whether a front door CRD changed less than crdSettle
// ago and discovery does not show its kind (yet): the policies are looked
// at again shortly.
func (f *frontDoors) settling() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settlingLocked()
}

func (f *frontDoors) settlingLocked() bool {
	for gvk, at := range f.changed {
		if time.Since(at) < crdSettle && !f.present[gvk] {
			return true
		}
	}
	return false
}

// startWatches watches the kinds present and not watched yet. f.mu held.
func (f *frontDoors) startWatches(ctx context.Context) error {
	for gvk := range f.present {
		if f.watched[gvk] {
			continue
		}
		var src source.Source
		switch gvk {
		case gvkHTTPRoute:
			src = source.Kind(f.mgr.GetCache(), client.Object(&gwapiv1.HTTPRoute{}), handler.EnqueueRequestsFromMapFunc(f.policiesForRoute))
		case gvkGateway:
			src = source.Kind(f.mgr.GetCache(), client.Object(&gwapiv1.Gateway{}), handler.EnqueueRequestsFromMapFunc(f.policiesForRoute))
		case gvkSecurityPolicy, gvkMiddleware, gvkAuthorizationPolicy:
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			src = source.Kind(f.mgr.GetCache(), client.Object(u),
				handler.EnqueueRequestForOwner(f.mgr.GetScheme(), f.mgr.GetRESTMapper(), &v1alpha1.MFAPolicy{}, handler.OnlyControllerOwner()))
		default:
			continue
		}
		if err := f.ctrl.Watch(src); err != nil {
			return fmt.Errorf("watching %s: %w", gvk.Kind, err)
		}
		f.watched[gvk] = true
		log.FromContext(ctx).Info("watching a front door kind", "kind", gvk.Kind, "group", gvk.Group)
	}
	return nil
}

// watch adds the watches that do not depend on CRDs to the policy
// controller's builder: Ingresses, the other policies of a namespace (a
// new, changed or deleted one may start or end a Conflict; status writes
// are not changes), and the CRDs themselves.
func (f *frontDoors) watch(b *builder.Builder) *builder.Builder {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	return b.
		Watches(&networkingv1.Ingress{}, handler.EnqueueRequestsFromMapFunc(f.policiesForRoute)).
		Watches(&v1alpha1.MFAPolicy{}, handler.EnqueueRequestsFromMapFunc(f.siblingsWithTargets),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(crd, handler.EnqueueRequestsFromMapFunc(f.policiesForCRD),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { _, ok := frontDoorCRDs[o.GetName()]; return ok })))
}

// bind starts the watches of the kinds installed, once the controller is
// built.
func (f *frontDoors) bind(ctx context.Context, c controller.Controller) error {
	f.mu.Lock()
	f.ctrl = c
	f.mu.Unlock()
	_, err := f.installed(ctx)
	return err
}

// policiesForCRD: a front door CRD came, changed or went: every policy
// with targets or hosts is looked at again.
func (f *frontDoors) policiesForCRD(ctx context.Context, crd client.Object) []reconcile.Request {
	f.crdChanged(crd.GetName())
	if _, err := f.installed(ctx); err != nil {
		log.FromContext(ctx).Error(err, "discovering the front door kinds")
	}
	return f.policies(ctx, func(p *v1alpha1.MFAPolicy) bool { return len(p.Spec.TargetRefs) > 0 || len(p.Spec.Hosts) > 0 })
}

// policiesForRoute maps an Ingress, HTTPRoute or Gateway to the policies
// that target it, whose hosts it serves, or that an Ingress's auth-url
// names.
func (f *frontDoors) policiesForRoute(ctx context.Context, o client.Object) []reconcile.Request {
	var kind string
	var hosts []string
	named := ""
	switch r := o.(type) {
	case *networkingv1.Ingress:
		kind, hosts = "Ingress", ingressHosts(r)
		if ref, ok := authURLPolicy(r.Annotations[annotationAuthURL]); ok {
			named = ref.String()
		}
	case *gwapiv1.HTTPRoute:
		kind = "HTTPRoute"
		for _, h := range r.Spec.Hostnames {
			hosts = append(hosts, string(h))
		}
	case *gwapiv1.Gateway:
		kind = "Gateway"
	}
	return f.policies(ctx, func(p *v1alpha1.MFAPolicy) bool {
		if p.Namespace+"/"+p.Name == named {
			return true
		}
		if p.Namespace == o.GetNamespace() {
			for _, t := range p.Spec.TargetRefs {
				if string(t.Kind) == kind && string(t.Name) == o.GetName() || t.Kind == "Gateway" && kind == "HTTPRoute" {
					return true
				}
			}
		}
		return len(servedPatterns(p, hosts)) > 0
	})
}

func (f *frontDoors) policies(ctx context.Context, keep func(*v1alpha1.MFAPolicy) bool) []reconcile.Request {
	var list v1alpha1.MFAPolicyList
	// Read only: keep looks at the objects, nothing keeps or changes them.
	if err := f.reads.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "listing MFAPolicies")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if keep(&list.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// siblingsWithTargets maps a policy to the other policies of its
// namespace with targetRefs: one that is deleted, or drops a target, may
// end another's Conflict.
func (f *frontDoors) siblingsWithTargets(ctx context.Context, o client.Object) []reconcile.Request {
	siblings, err := policiesWithTargets(ctx, f.reads, o.GetNamespace())
	if err != nil {
		log.FromContext(ctx).Error(err, "listing the MFAPolicies with targetRefs", "namespace", o.GetNamespace())
		return nil
	}
	var reqs []reconcile.Request
	for i := range siblings {
		if p := &siblings[i]; p.Name != o.GetName() && len(p.Spec.TargetRefs) > 0 {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
		}
	}
	return reqs
}
