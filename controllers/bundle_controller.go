package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// BundleTrigger asks the bundle reconciler to run when nothing it watches
// changed: once at start (so the bundle, keyring and challenge server exist
// even before the first policy) and when a Duo check's outcome changes.
type BundleTrigger struct {
	ch  chan event.GenericEvent
	obj client.Object
}

// NewBundleTrigger returns a trigger that has already fired once.
func NewBundleTrigger(namespace string) *BundleTrigger {
	t := &BundleTrigger{
		ch:  make(chan event.GenericEvent, 16),
		obj: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: policy.BundleSecretName}},
	}
	t.Fire(context.Background())
	return t
}

// Fire enqueues a bundle reconcile. It never blocks: a full buffer already
// holds a pending request, and one reconcile reads the latest state.
func (t *BundleTrigger) Fire(context.Context) {
	if t == nil {
		return
	}
	select {
	case t.ch <- event.GenericEvent{Object: t.obj}:
	default:
	}
}

// BundleReconciler compiles every valid MFAPolicy and MFAProvider into the
// bundle Secret and keeps what serves it: the challenge Deployment,
// Service and PodDisruptionBudget, and the keyring Secret. It has one
// request key, the bundle Secret's, whatever triggered it, and runs one
// reconcile at a time.
type BundleReconciler struct {
	client.Client
	// APIReader reads the previous bundle, the keyring and what shows that
	// a keyring is in use past the cache: the last good entries must be the
	// last ones written, and a keyring must never be made twice.
	APIReader client.Reader
	Options   Options
	// Recorder reports a keyring written back or refused (may be nil).
	Recorder events.EventRecorder
	// DuoResults, when set, keeps Duo credentials out of the bundle until
	// Duo accepted them.
	DuoResults *DuoResults
	Trigger    *BundleTrigger
	// Now is the clock of new keys (time.Now when nil).
	Now func() time.Time

	// compiled keeps each policy's outcome from one build to the next.
	compiled policy.BuildCache

	// known is what this controller last read or wrote, to write a
	// deleted Secret back as it was.
	known knownSecrets
	// shards are the stored bundle's shards this controller read or
	// wrote (see bundle_store.go).
	shards shardsSeen
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=mfa-system,resources=secrets,verbs=create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=mfa-system,resources=services,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,namespace=mfa-system,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=policy,namespace=mfa-system,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=mfa.operator.dev,resources=mfapolicies;mfaproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers the reconciler: any policy, provider or
// referenced Secret change, a change to what it owns, or the trigger.
func (r *BundleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toBundle := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{r.request()}
	})
	owned := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() == r.Options.Namespace && o.GetName() == ChallengeName {
			return []reconcile.Request{r.request()}
		}
		return nil
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("bundle").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&v1alpha1.MFAPolicy{}, toBundle, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.MFAProvider{}, toBundle, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsForSecret)).
		// A namespace's labels may admit it to, or take it out of, a
		// provider's allowedNamespaceSelector.
		Watches(&corev1.Namespace{}, toBundle, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.Trigger.ch, toBundle))
	if r.Options.ManageDeployment {
		b = b.Watches(&appsv1.Deployment{}, owned).Watches(&corev1.Service{}, owned).Watches(&policyv1.PodDisruptionBudget{}, owned)
	}
	return b.Complete(r)
}

func (r *BundleReconciler) request() reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Options.Namespace, Name: policy.BundleSecretName}}
}

// requestsForSecret wakes the reconciler for its own Secrets and for the
// Secrets providers read, not for every Secret of the cluster.
func (r *BundleReconciler) requestsForSecret(ctx context.Context, s client.Object) []reconcile.Request {
	if s.GetNamespace() == r.Options.Namespace && (s.GetName() == policy.BundleSecretName || s.GetName() == policy.KeyringSecretName || isShard(s)) {
		return []reconcile.Request{r.request()}
	}
	providers, err := providersUsingSecret(ctx, r.Client, s)
	if err != nil {
		log.FromContext(ctx).Error(err, "listing the MFAProviders that use a Secret", "secret", client.ObjectKeyFromObject(s))
		return nil
	}
	if len(providers) > 0 || len(requestsForPolicySecret(r.Client)(ctx, s)) > 0 {
		return []reconcile.Request{r.request()}
	}
	return nil
}

// Reconcile writes the bundle and makes sure the challenge server runs it.
// A refused keyring (see ensureKeyring) does not stop the rest: the bundle
// and the challenge objects are kept as they should be, and the refusal is
// returned so that it is retried and logged with a backoff.
func (r *BundleReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	current, previous, err := r.readBundle(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	bundle, err := r.build(ctx, previous)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.writeBundle(ctx, current, bundle); err != nil {
		return ctrl.Result{}, err
	}
	keyringErr := r.ensureKeyring(ctx)
	if keyringErr != nil && !errors.Is(keyringErr, errKeyringRefused) {
		return ctrl.Result{}, keyringErr
	}
	if r.Options.ManageDeployment {
		if err := r.applyChallengeServer(ctx); err != nil {
			return ctrl.Result{}, errors.Join(keyringErr, err)
		}
	}
	return ctrl.Result{}, keyringErr
}

// build lists every policy, provider and the Secrets providers read, and
// compiles them: the policies whose inputs changed since the last build,
// the others' outcomes are reused (policy.BuildCache).
func (r *BundleReconciler) build(ctx context.Context, previous *policy.Bundle) (*policy.Bundle, error) {
	start := time.Now()
	// The cache's objects, not copies: BuildBundle only reads them, and
	// copying thousands of policies at every build cost more than
	// compiling the few that changed.
	var policies v1alpha1.MFAPolicyList
	if err := r.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing MFAPolicies: %w", err)
	}
	var providers v1alpha1.MFAProviderList
	if err := r.List(ctx, &providers, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing MFAProviders: %w", err)
	}
	secrets := map[types.NamespacedName]*corev1.Secret{}
	for i := range providers.Items {
		p := &providers.Items[i]
		if err := readSecrets(ctx, r.Client, p.Namespace, policy.SecretNames(&p.Spec), secrets); err != nil {
			return nil, err
		}
	}
	for i := range policies.Items {
		p := &policies.Items[i]
		if err := readSecrets(ctx, r.Client, p.Namespace, policy.PolicySecretNames(&p.Spec), secrets); err != nil {
			return nil, err
		}
	}
	// The same checks as the provider reconciler's, so that the bundle and
	// the providers' Ready conditions agree.
	checks := []policy.ProviderCheck{func(p *v1alpha1.MFAProvider, _ *policy.BundleProvider) error { return validateDuoAPIHost(p) }}
	if r.DuoResults != nil {
		checks = append(checks, r.DuoResults.Check)
	}
	nsLabels, err := namespaceLabels(ctx, r.Client, &providers)
	if err != nil {
		return nil, err
	}
	bundle, verdicts := policy.BuildBundle(policies.Items, providers.Items, secrets, previous, policy.BuildOptions{
		NamespaceLabels: nsLabels,
		IdentityHeaders: r.Options.IdentityHeaders,
		GeoIP:           r.Options.GeoIPDB != "",
		Checks:          checks,
		Cache:           &r.compiled,
	})
	logVerdicts(ctx, verdicts)
	log.FromContext(ctx).Info("bundle built", "policies", len(bundle.Policies), "providers", len(bundle.Providers),
		"compiled", r.compiled.Compiled(), "seconds", time.Since(start).Seconds())
	return bundle, nil
}

func logVerdicts(ctx context.Context, v policy.Verdicts) {
	l := log.FromContext(ctx).V(1)
	for k, err := range v.Policies {
		if err != nil {
			l.Info("MFAPolicy not in force as is", "policy", k, "reason", statusMessage(err))
		}
	}
	for k, err := range v.Providers {
		if err != nil {
			l.Info("MFAProvider not in force as is", "provider", k, "reason", statusMessage(err))
		}
	}
}

// applyChallengeServer creates or repairs the challenge Deployment, Service
// and PodDisruptionBudget.
//
// None of them has an owner reference, and the controller re-creates any
// of them that goes missing (it watches them by name). The front door
// calls this server for every protected request, so nothing that is not
// an uninstall may take it away by garbage collection: not the bundle
// Secret (its owner in earlier versions, so deleting one Secret took the
// whole server down), and not the operator's own Deployment either, which
// is deleted and created again by some upgrades and GitOps syncs, and
// whose identity the controller would have to discover (downward API, then
// Pod, ReplicaSet, Deployment) and cannot have when it runs out of the
// cluster. Uninstalling (make undeploy, kubectl delete -k config/default)
// deletes the operator's namespace, which holds them all; when the
// namespace is kept, they are found by their labels.
func (r *BundleReconciler) applyChallengeServer(ctx context.Context) error {
	if err := applyChallengeObject(ctx, r.Client, "Deployment", &appsv1.Deployment{}, ChallengeDeployment(r.Options), MergeDeployment); err != nil {
		return err
	}
	if err := applyChallengeObject(ctx, r.Client, "Service", &corev1.Service{}, ChallengeService(r.Options), MergeService); err != nil {
		return err
	}
	return applyChallengeObject(ctx, r.Client, "PodDisruptionBudget", &policyv1.PodDisruptionBudget{}, ChallengeDisruptionBudget(r.Options), MergeDisruptionBudget)
}

// applyChallengeObject creates or updates the object named like desired
// (obj is an empty one of its type to read it into): merge brings it to
// desired, and the owner reference to the bundle Secret that earlier
// versions set is dropped.
func applyChallengeObject[T client.Object](ctx context.Context, c client.Client, kind string, obj, desired T, merge func(existing, desired T)) error {
	obj.SetName(desired.GetName())
	obj.SetNamespace(desired.GetNamespace())
	op, err := controllerutil.CreateOrUpdate(ctx, c, obj, func() error {
		merge(obj, desired)
		dropBundleOwner(obj)
		return nil
	})
	if err != nil {
		return fmt.Errorf("applying %s %s/%s: %w", kind, desired.GetNamespace(), desired.GetName(), err)
	}
	if op != controllerutil.OperationResultNone {
		log.FromContext(ctx).Info("challenge "+kind+" "+string(op), "object", client.ObjectKeyFromObject(obj))
	}
	return nil
}

// dropBundleOwner removes owner references to the bundle Secret; any other
// owner reference (set by someone else) is kept.
func dropBundleOwner(obj metav1.Object) {
	refs := obj.GetOwnerReferences()
	kept := make([]metav1.OwnerReference, 0, len(refs))
	for _, ref := range refs {
		if ref.APIVersion == "v1" && ref.Kind == "Secret" && ref.Name == policy.BundleSecretName {
			continue
		}
		kept = append(kept, ref)
	}
	if len(kept) != len(refs) {
		obj.SetOwnerReferences(kept)
	}
}
