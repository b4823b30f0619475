package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// MFAPolicyReconciler checks MFAPolicies: every rule's `when` compiles in
// the shared CEL environment and every provider it names exists and is
// Ready. The verdict goes to status; the bundle reconciler puts valid
// policies in force.
type MFAPolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Options  Options

	// Gateway attaches policies to their targetRefs and audits the routes
	// serving their hosts (gateway_*.go); nil leaves both out.
	Gateway *gatewayAttacher

	// claims are the hosts of the policies in force, from the bundle.
	claims bundleClaims
}

// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfapolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfapolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfaproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler. A provider's change (its
// Ready condition included) re-checks the policies that name it; a change
// of the bundle re-checks the policies in a host conflict before or after
// it (see hosts.go).
func (r *MFAPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.MFAPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: policyWorkers}).
		Watches(&v1alpha1.MFAProvider{}, handler.EnqueueRequestsFromMapFunc(requestsForProvider(mgr.GetClient()))).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(requestsForNamespace(mgr.GetClient())),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestsForHostConflicts(r.Options.Namespace, mgr.GetClient()))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestsForPolicySecret(mgr.GetClient())))
	if r.Gateway == nil {
		return b.Complete(r)
	}
	c, err := r.Gateway.doors.watch(b).Build(r)
	if err != nil {
		return err
	}
	return r.Gateway.doors.bind(context.Background(), c)
}

// policyWorkers is how many policies are checked at once. A check is
// mostly waiting on the API server (the status patch: 0.1 to 0.3 s on a
// busy one), so one worker made thousands of new policies wait in line
// for round trips, not for CPU: 10,000 policies Ready within a minute
// takes some 170 checks a second, about 30 in flight. Idle workers cost
// nothing; the same policy is never checked by two workers at once.
const policyWorkers = 32

// Reconcile writes the policy's verdict.
func (r *MFAPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	err := reconcileVerdict(ctx, r.Client, r.Recorder, req, &v1alpha1.MFAPolicy{}, r.reconcile)
	if r.Gateway == nil || err != nil {
		return ctrl.Result{}, err
	}
	if gone := r.Get(ctx, req.NamespacedName, &v1alpha1.MFAPolicy{}); apierrors.IsNotFound(gone) {
		return ctrl.Result{}, r.Gateway.forget(ctx, req.NamespacedName)
	}
	if r.Gateway.doors.settling() {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, nil
}

func (r *MFAPolicyReconciler) reconcile(ctx context.Context, obj *v1alpha1.MFAPolicy) error {
	r.setURLs(obj)
	var gatewayErr error
	if r.Gateway != nil {
		// Before the verdict, and whatever it is: an edit that breaks the
		// rules keeps the last valid ones in force, and must not detach
		// the routes they protect.
		gatewayErr = r.Gateway.reconcile(ctx, obj)
	}
	compiled, err := r.check(ctx, obj)
	if err == nil {
		err = checkPolicySecrets(ctx, r.Client, obj)
	}
	if err == nil {
		// RuleCount is what is in force, so it changes only when the policy
		// is valid: an invalid policy keeps its last good rules in force.
		obj.Status.RuleCount = int32(len(compiled.Rules))
		var conflicts string
		if conflicts, err = r.hostConflicts(ctx, obj); err == nil && conflicts != "" {
			// In force by name, refused by host: Ready stays True.
			err = &inForceWarning{reason: v1alpha1.ReasonHostConflict, message: readyMessage(compiled) + "; " + conflicts}
		}
	}
	return kerrors.NewAggregate([]error{
		setVerdict(&obj.Status.Conditions, &obj.Status.ObservedGeneration, obj.Generation, readyMessage(compiled), err),
		gatewayErr,
	})
}

// setURLs writes the addresses the front door is configured with.
func (r *MFAPolicyReconciler) setURLs(obj *v1alpha1.MFAPolicy) {
	obj.Status.AuthURL = r.Options.AuthURL(obj.Namespace, obj.Name)
	obj.Status.SigninURL = r.Options.SigninURL(obj.Namespace, obj.Name)
}

// check compiles the policy and checks the providers it names: that they
// exist, are Ready and admit the policy's namespace.
func (r *MFAPolicyReconciler) check(ctx context.Context, obj *v1alpha1.MFAPolicy) (*policy.CompiledPolicy, error) {
	states := map[types.NamespacedName]policy.ProviderState{}
	var nsLabels map[string]string
	for _, k := range policy.ProviderKeys(obj.Namespace, &obj.Spec) {
		var p v1alpha1.MFAProvider
		if err := r.Get(ctx, k, &p); err != nil {
			if apierrors.IsNotFound(err) {
				states[k] = policy.ProviderMissing
				continue
			}
			return nil, fmt.Errorf("reading MFAProvider %s: %w", k, err)
		}
		if p.Namespace != obj.Namespace && nsLabels == nil && p.Spec.AllowedNamespaceSelector != nil {
			var ns corev1.Namespace
			if err := r.Get(ctx, types.NamespacedName{Name: obj.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("reading Namespace %s: %w", obj.Namespace, err)
			}
			nsLabels = ns.Labels
		}
		ready := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ReadyCondition)
		switch {
		case !policy.Admits(p.Namespace, &p.Spec, obj.Namespace, nsLabels):
			states[k] = policy.ProviderNotAdmitted
		case ready != nil && ready.Status == metav1.ConditionTrue && ready.ObservedGeneration == p.Generation:
			states[k] = policy.ProviderReady
		default:
			states[k] = policy.ProviderNotReady
		}
	}
	return policy.CheckPolicy(obj, policy.Tenancy{
		IdentityHeaders: r.Options.IdentityHeaders,
		GeoIP:           r.Options.GeoIPDB != "",
		Provider: func(k types.NamespacedName, _ string) policy.ProviderState {
			if s, ok := states[k]; ok {
				return s
			}
			return policy.ProviderMissing
		},
	})
}

func readyMessage(cp *policy.CompiledPolicy) string {
	if cp == nil {
		return ""
	}
	if len(cp.Rules) == 1 {
		return "1 rule compiled and in force"
	}
	return fmt.Sprintf("%d rules compiled and in force", len(cp.Rules))
}
