package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// ReasonPolicyNotFound is the reason of the Warning event on an Ingress
// whose auth-url names an MFAPolicy that does not exist.
const ReasonPolicyNotFound = "MFAPolicyNotFound"

// IngressAuditReconciler flags an Ingress whose auth-url sends its
// requests to the challenge server for an MFAPolicy that does not exist:
// the server answers 403 to every one of them (fail closed), which looks
// like an outage of the app rather than a typo in an annotation.
type IngressAuditReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Options  Options
}

// SetupWithManager watches Ingresses, and MFAPolicies to look again at the
// Ingresses naming one that was created or deleted.
func (r *IngressAuditReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("ingress-audit").
		For(&networkingv1.Ingress{}).
		Watches(&v1alpha1.MFAPolicy{}, handler.EnqueueRequestsFromMapFunc(r.ingressesNaming)).
		Complete(r)
}

// Reconcile records a Warning event on the Ingress when its auth-url names
// a policy that does not exist.
func (r *IngressAuditReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ing := &networkingv1.Ingress{}
	if err := r.Get(ctx, req.NamespacedName, ing); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ref, ok := r.namedPolicy(ing)
	if !ok {
		return ctrl.Result{}, nil
	}
	err := r.Get(ctx, ref, &v1alpha1.MFAPolicy{})
	if apierrors.IsNotFound(err) {
		r.Recorder.Eventf(ing, nil, corev1.EventTypeWarning, ReasonPolicyNotFound, "Audit",
			"metadata.annotations[%s] names MFAPolicy %s, which does not exist: the challenge server answers 403 to every request of this Ingress; create the policy or correct the annotation (a policy's status.authURL)",
			annotationAuthURL, ref)
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// namedPolicy returns the policy an Ingress's auth-url names on the
// challenge server.
func (r *IngressAuditReconciler) namedPolicy(ing *networkingv1.Ingress) (ref client.ObjectKey, ok bool) {
	raw, set := ing.Annotations[annotationAuthURL]
	if !set {
		return ref, false
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || !r.Options.isChallengeHost(u.Host) {
		return ref, false
	}
	return authURLPolicy(raw)
}

// ingressesNaming maps a policy to the Ingresses whose auth-url names it.
func (r *IngressAuditReconciler) ingressesNaming(ctx context.Context, p client.Object) []reconcile.Request {
	var list networkingv1.IngressList
	if err := r.List(ctx, &list); err != nil {
		log.FromContext(ctx).Error(fmt.Errorf("listing Ingresses: %w", err), "mapping an MFAPolicy to Ingresses")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if ref, ok := r.namedPolicy(&list.Items[i]); ok && ref.Namespace == p.GetNamespace() && ref.Name == p.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
