package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// gatewayAttacher attaches policies to their spec.targetRefs with the
// front doors installed, and audits the routes serving their hosts.
type gatewayAttacher struct {
	client   client.Client
	opts     Options
	doors    *frontDoors
	recorder events.EventRecorder
}

// reconcile runs both steps on a policy, writing its status.
func (a *gatewayAttacher) reconcile(ctx context.Context, p *v1alpha1.MFAPolicy) error {
	installed, err := a.doors.installed(ctx)
	if err != nil {
		return err
	}
	if err := a.attach(ctx, p, installed); err != nil {
		return err
	}
	return a.audit(ctx, p, installed[gvkHTTPRoute])
}

// forget drops what is kept about a deleted policy, and its namespace's
// ReferenceGrant when it was the last policy there with targets. Its own
// objects go with it: the policy owns them.
func (a *gatewayAttacher) forget(ctx context.Context, key types.NamespacedName) error {
	unprotectedRoutes.DeleteLabelValues(key.String())
	installed, err := a.doors.installed(ctx)
	if err != nil {
		return err
	}
	siblings, err := policiesWithTargets(ctx, a.client, key.Namespace)
	if err != nil {
		return fmt.Errorf("listing the MFAPolicies of %s: %w", key.Namespace, err)
	}
	return a.ensureReferenceGrant(ctx, key.Namespace, siblings, installed)
}

// attach writes the front door objects of the policy's targets, deletes
// the ones of targets no longer listed, and reports each target.
func (a *gatewayAttacher) attach(ctx context.Context, p *v1alpha1.MFAPolicy, installed map[schema.GroupVersionKind]bool) error {
	if len(p.Spec.TargetRefs) == 0 && len(p.Status.Targets) == 0 {
		p.Status.IstioExtensionProvider = ""
		return nil
	}
	siblings, err := policiesWithTargets(ctx, a.client, p.Namespace)
	if err != nil {
		return fmt.Errorf("listing the MFAPolicies of %s: %w", p.Namespace, err)
	}
	var desired []*unstructured.Unstructured
	needMiddleware := false
	statuses := make([]v1alpha1.TargetStatus, 0, len(p.Spec.TargetRefs))
	for i := range p.Spec.TargetRefs {
		ref := &p.Spec.TargetRefs[i]
		st := v1alpha1.TargetStatus{TargetRef: *ref}
		field := fmt.Sprintf("spec.targetRefs[%d]", i)
		what := fmt.Sprintf("%s %s/%s", ref.Kind, p.Namespace, ref.Name)
		if ref.SectionName != nil {
			what += " (section " + string(*ref.SectionName) + ")"
		}
		gvk := gvkHTTPRoute
		if ref.Kind == "Gateway" {
			gvk = gvkGateway
		}
		if !installed[gvk] {
			st.State = v1alpha1.TargetCRDMissing
			st.Message = fmt.Sprintf("%s: the %s CRD (%s/%s) is not installed in the cluster; install Gateway API to attach to %s", field, ref.Kind, gvk.Group, gvk.Version, what)
			statuses = append(statuses, st)
			continue
		}
		if winner := targetOwner(p, ref, siblings); winner != "" {
			st.State = v1alpha1.TargetConflict
			st.Message = fmt.Sprintf("%s: %s is also targeted by MFAPolicy %s/%s, which came first and keeps it; nothing is written for it here: remove one of the two targetRefs",
				field, what, p.Namespace, winner)
			statuses = append(statuses, st)
			continue
		}
		objs, gaps, found, err := a.targetObjects(ctx, p, ref, installed)
		if err != nil {
			return err
		}
		if !found {
			st.State = v1alpha1.TargetNotFound
			st.Message = fmt.Sprintf("%s: %s does not exist", field, what)
			if len(gaps) > 0 {
				st.Message = fmt.Sprintf("%s: %s", field, strings.Join(gaps, "; "))
			}
			statuses = append(statuses, st)
			continue
		}
		needMiddleware = needMiddleware || installed[gvkMiddleware]
		wired := false
		if ref.Kind == "HTTPRoute" && ref.SectionName == nil {
			r := &gwapiv1.HTTPRoute{}
			if err := a.client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)}, r); err == nil {
				wired = a.opts.routeWired(p, r)
			}
		}
		for _, o := range objs {
			st.Objects = append(st.Objects, fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName()))
		}
		desired = append(desired, objs...)
		switch {
		case len(objs) > 0:
			st.State = v1alpha1.TargetAttached
			st.Message = fmt.Sprintf("%s: %s is sent to the challenge server by %s", field, what, strings.Join(st.Objects, ", "))
		case wired:
			st.State = v1alpha1.TargetAttached
			st.Message = fmt.Sprintf("%s: every rule of %s carries the filter to this policy", field, what)
		default:
			st.State = v1alpha1.TargetFilterRequired
			st.Message = fmt.Sprintf("%s: nothing the controller writes attaches %s; add to the filters of each of its rules, for the Gateway API ExternalAuth filter "+
				"(NGINX Gateway Fabric, Cilium; needs the ReferenceGrant mfa-challenge-from-%s in %s, which the controller writes):\n%s", field, what, p.Namespace, a.opts.Namespace, externalAuthFilter(a.opts, p))
			if installed[gvkMiddleware] {
				st.Message += "or, for Traefik, the Middleware it wrote:\n" + traefikFilter(p)
			}
		}
		if len(gaps) > 0 {
			st.Message += "; " + strings.Join(gaps, "; ")
		}
		statuses = append(statuses, st)
	}
	if needMiddleware {
		desired = append(desired, TraefikMiddleware(a.opts, p))
	}
	if err := a.apply(ctx, p, desired, installed); err != nil {
		return err
	}
	if err := a.ensureReferenceGrant(ctx, p.Namespace, siblings, installed); err != nil {
		return err
	}
	p.Status.Targets = statuses
	p.Status.IstioExtensionProvider = ""
	if installed[gvkAuthorizationPolicy] && len(p.Spec.TargetRefs) > 0 {
		p.Status.IstioExtensionProvider = IstioExtensionProvider(a.opts, p)
	}
	return nil
}

// targetOwner returns the name of the other policy of the namespace that
// keeps a target both list (the one created first, then by name), or ""
// when p keeps it.
func targetOwner(p *v1alpha1.MFAPolicy, ref *v1alpha1.TargetRef, siblings []v1alpha1.MFAPolicy) string {
	for i := range siblings {
		o := &siblings[i]
		if o.Name == p.Name || o.DeletionTimestamp != nil {
			continue
		}
		if !slices.ContainsFunc(o.Spec.TargetRefs, func(t v1alpha1.TargetRef) bool { return t.Kind == ref.Kind && t.Name == ref.Name }) {
			continue
		}
		if o.CreationTimestamp.Before(&p.CreationTimestamp) || o.CreationTimestamp.Equal(&p.CreationTimestamp) && o.Name < p.Name {
			return o.Name
		}
	}
	return ""
}

// targetObjects reads a target and returns the objects that attach the
// policy to it, what could not be attached and why, and whether the
// target exists.
func (a *gatewayAttacher) targetObjects(ctx context.Context, p *v1alpha1.MFAPolicy, ref *v1alpha1.TargetRef, installed map[schema.GroupVersionKind]bool) ([]*unstructured.Unstructured, []string, bool, error) {
	key := types.NamespacedName{Namespace: p.Namespace, Name: string(ref.Name)}
	var gateways, hosts, gaps []string
	if ref.Kind == "Gateway" {
		gw := &gwapiv1.Gateway{}
		if err := a.client.Get(ctx, key, gw); err != nil {
			return nil, nil, false, client.IgnoreNotFound(err)
		}
		if ref.SectionName != nil && !slices.ContainsFunc(gw.Spec.Listeners, func(l gwapiv1.Listener) bool { return l.Name == *ref.SectionName }) {
			return nil, []string{fmt.Sprintf("Gateway %s has no listener %q", key, *ref.SectionName)}, false, nil
		}
		gateways = []string{gw.Name}
	} else {
		r := &gwapiv1.HTTPRoute{}
		if err := a.client.Get(ctx, key, r); err != nil {
			return nil, nil, false, client.IgnoreNotFound(err)
		}
		if ref.SectionName != nil && !slices.ContainsFunc(r.Spec.Rules, func(rl gwapiv1.HTTPRouteRule) bool { return rl.Name != nil && *rl.Name == *ref.SectionName }) {
			return nil, []string{fmt.Sprintf("HTTPRoute %s has no rule named %q", key, *ref.SectionName)}, false, nil
		}
		for _, pr := range r.Spec.ParentRefs {
			if (pr.Kind == nil || *pr.Kind == "Gateway") && (pr.Namespace == nil || string(*pr.Namespace) == p.Namespace) {
				gateways = append(gateways, string(pr.Name))
			}
		}
		for _, h := range r.Spec.Hostnames {
			hosts = append(hosts, string(h))
		}
	}
	var objs []*unstructured.Unstructured
	if installed[gvkSecurityPolicy] {
		objs = append(objs, SecurityPolicy(a.opts, p, ref))
	}
	if installed[gvkAuthorizationPolicy] {
		switch {
		case ref.SectionName != nil:
			gaps = append(gaps, "Istio: an AuthorizationPolicy targets whole Gateways, not a section: target the HTTPRoute or Gateway without sectionName")
		case len(gateways) == 0:
			gaps = append(gaps, fmt.Sprintf("Istio: no parent Gateway of the HTTPRoute is in %s, and an AuthorizationPolicy targets Gateways of its own namespace only", p.Namespace))
		case ref.Kind == "HTTPRoute" && len(hosts) == 0:
			gaps = append(gaps, "Istio: the HTTPRoute lists no hostnames, so an AuthorizationPolicy on its Gateway would cover every route of the Gateway; list the hostnames or target the Gateway")
		default:
			objs = append(objs, AuthorizationPolicy(p, generatedName(p.Name, ref), gateways, hosts))
		}
	}
	return objs, gaps, true, nil
}

// apply creates or updates the desired objects, owned by the policy, and
// deletes the policy's objects of the installed kinds that are not desired.
func (a *gatewayAttacher) apply(ctx context.Context, p *v1alpha1.MFAPolicy, desired []*unstructured.Unstructured, installed map[schema.GroupVersionKind]bool) error {
	want := map[string]bool{}
	for _, d := range desired {
		want[d.GetKind()+"/"+d.GetName()] = true
		if err := controllerutil.SetControllerReference(p, d, a.client.Scheme()); err != nil {
			return err
		}
		existing := &unstructured.Unstructured{}
		existing.SetGroupVersionKind(d.GroupVersionKind())
		err := a.client.Get(ctx, client.ObjectKeyFromObject(d), existing)
		if apierrors.IsNotFound(err) {
			if err := a.client.Create(ctx, d); err != nil {
				return fmt.Errorf("creating %s %s: %w", d.GetKind(), client.ObjectKeyFromObject(d), err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s %s: %w", d.GetKind(), client.ObjectKeyFromObject(d), err)
		}
		if !metav1.IsControlledBy(existing, p) {
			return fmt.Errorf("%s %s exists and is not this policy's: rename or delete it", d.GetKind(), client.ObjectKeyFromObject(d))
		}
		// DeepDerivative: what the API server defaulted (a backendRef's
		// weight) is not a difference; a value someone changed is.
		if equality.Semantic.DeepDerivative(d.Object["spec"], existing.Object["spec"]) && equality.Semantic.DeepEqual(existing.GetLabels(), mergeMaps(existing.GetLabels(), d.GetLabels())) {
			continue
		}
		existing.Object["spec"] = d.Object["spec"]
		existing.SetLabels(mergeMaps(existing.GetLabels(), d.GetLabels()))
		if err := a.client.Update(ctx, existing); err != nil {
			return fmt.Errorf("updating %s %s: %w", d.GetKind(), client.ObjectKeyFromObject(d), err)
		}
	}
	for _, gvk := range generatedKinds {
		if !installed[gvk] {
			continue
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := a.client.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels{labelPolicy: p.Name}); err != nil {
			return fmt.Errorf("listing %ss: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			o := &list.Items[i]
			if want[o.GetKind()+"/"+o.GetName()] || !metav1.IsControlledBy(o, p) {
				continue
			}
			if err := a.client.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting %s %s: %w", o.GetKind(), client.ObjectKeyFromObject(o), err)
			}
		}
	}
	return nil
}
