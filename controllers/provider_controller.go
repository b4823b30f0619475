package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/passkey"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// MFAProviderReconciler checks MFAProviders: settings, the Secrets and keys
// a Duo provider reads and, when DuoCheck is set, that Duo accepts the
// credentials.
type MFAProviderReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// DuoCheck asks Duo about a provider's credentials; nil means no check
	// (a Duo provider is Ready once its Secrets resolve).
	DuoCheck DuoCheckFunc
	// DuoResults receives the outcomes of DuoCheck for the bundle
	// reconciler; required when DuoCheck is set.
	DuoResults *DuoResults
	// BundleTrigger is fired when a Duo outcome changes, so the bundle
	// follows without waiting for another change.
	BundleTrigger *BundleTrigger
	// WebAuthnDefaults are what a webauthn provider's unset RP ID and
	// origins default to (the operator's cookie domain and public URL).
	WebAuthnDefaults passkey.Defaults
}

// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfaproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfaproviders/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// SetupWithManager registers the reconciler. A Secret's change re-checks
// the providers that read it.
func (r *MFAProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.DuoCheck != nil && r.DuoResults == nil {
		return fmt.Errorf("MFAProviderReconciler: DuoResults is required with DuoCheck")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.MFAProvider{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(requestsForSecret(mgr.GetClient()))).
		// A Duo outage is retried with backoff, capped so that a provider is
		// Ready again within a minute of Duo coming back.
		WithOptions(controller.Options{
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, time.Minute),
		}).
		Complete(r)
}

// Reconcile writes the provider's verdict.
func (r *MFAProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return ctrl.Result{}, reconcileVerdict(ctx, r.Client, r.Recorder, req, &v1alpha1.MFAProvider{}, r.reconcile)
}

func (r *MFAProviderReconciler) reconcile(ctx context.Context, obj *v1alpha1.MFAProvider) error {
	obj.Status.Multifactor = obj.Spec.MultifactorName()
	entry, err := r.resolve(ctx, obj)
	if err == nil {
		err = validateDuoAPIHost(obj)
	}
	if err == nil {
		err = policy.CheckWebAuthnDefaults(&obj.Spec, r.WebAuthnDefaults)
	}
	msg := "TOTP provider ready"
	if obj.Spec.Type == v1alpha1.ProviderWebAuthn {
		msg = "WebAuthn provider ready"
	}
	if err == nil && entry.Duo != nil {
		msg = "Duo credentials resolved"
		if r.DuoCheck != nil {
			msg = "Duo accepted the credentials"
			err = r.checkDuo(ctx, obj, entry)
		}
	}
	return setVerdict(&obj.Status.Conditions, &obj.Status.ObservedGeneration, obj.Generation, msg, err)
}

// resolve reads the Secrets the provider names and resolves its settings.
func (r *MFAProviderReconciler) resolve(ctx context.Context, obj *v1alpha1.MFAProvider) (*policy.BundleProvider, error) {
	secrets := map[types.NamespacedName]*corev1.Secret{}
	for _, name := range policy.SecretNames(&obj.Spec) {
		key := types.NamespacedName{Namespace: obj.Namespace, Name: name}
		s := &corev1.Secret{}
		if err := r.Get(ctx, key, s); err != nil {
			if apierrors.IsNotFound(err) {
				continue // ResolveProvider names the field
			}
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		secrets[key] = s
	}
	return policy.ResolveProvider(obj, secrets)
}

// checkDuo asks Duo about the credentials and records the outcome for the
// bundle reconciler.
func (r *MFAProviderReconciler) checkDuo(ctx context.Context, obj *v1alpha1.MFAProvider, entry *policy.BundleProvider) error {
	cctx, cancel := context.WithTimeout(ctx, duoCheckTimeout)
	defer cancel()
	outcome := classifyDuoError(obj.Spec.Duo.APIHost, r.DuoCheck(cctx, obj.Spec.Duo.APIHost, *entry.Duo))
	if r.DuoResults.record(client.ObjectKeyFromObject(obj), duoFingerprint(obj.Spec.Duo.APIHost, *entry.Duo), outcome) {
		r.BundleTrigger.Fire(ctx)
	}
	return outcome
}
