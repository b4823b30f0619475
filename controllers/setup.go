package controllers

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// Setup registers the field indexes and the reconcilers with mgr.
// duoCheck may be nil (no Duo credential check).
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options, duoCheck DuoCheckFunc) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return err
	}
	trigger := NewBundleTrigger(opts.Namespace)
	var results *DuoResults
	if duoCheck != nil {
		results = NewDuoResults()
	}
	rec := mgr.GetEventRecorder(ControllerName)
	if err := (&MFAProviderReconciler{
		Client:           mgr.GetClient(),
		Recorder:         rec,
		DuoCheck:         duoCheck,
		DuoResults:       results,
		BundleTrigger:    trigger,
		WebAuthnDefaults: opts.WebAuthnDefaults(),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := gwapiv1.Install(mgr.GetScheme()); err != nil {
		return err
	}
	doors, err := newFrontDoors(mgr)
	if err != nil {
		return err
	}
	if err := (&MFAPolicyReconciler{
		Client:   mgr.GetClient(),
		Recorder: rec,
		Options:  opts,
		Gateway:  &gatewayAttacher{client: mgr.GetClient(), opts: opts, doors: doors, recorder: rec},
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&IngressAuditReconciler{Client: mgr.GetClient(), Recorder: rec, Options: opts}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&BundleReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Options:    opts,
		Recorder:   rec,
		DuoResults: results,
		Trigger:    trigger,
	}).SetupWithManager(mgr)
}

// CacheOptions keeps the cache of what the controller owns to its own
// namespace, which is also all its Role lets it see of them, and keeps the
// challenge server's per-user enrolment Secrets (one per user, written at
// every enrolment and failed attempt) out of the controller's cache and
// watches.
func CacheOptions(opts Options) cache.Options {
	own := cache.ByObject{Namespaces: map[string]cache.Config{opts.Namespace: {}}}
	notEnrollments, err := k8slabels.Parse(store.KindLabel + " notin (" + store.KindEnrollment + ")")
	if err != nil {
		panic(err) // constant input
	}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:            own,
		&corev1.Service{}:               own,
		&policyv1.PodDisruptionBudget{}: own,
		&corev1.Secret{}:                {Label: notEnrollments},
	}}
}
