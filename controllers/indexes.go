package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Field indexes, so a change to a provider or a Secret finds the objects
// that refer to it without listing them all.
const (
	// indexPolicyProviders: MFAPolicy -> namespace/name of the MFAProviders
	// its rules name (all namespaces).
	indexPolicyProviders = ".spec.rules.multifactor.providers"
	// indexProviderSecrets: MFAProvider -> names of the Secrets it reads.
	indexProviderSecrets = ".spec.duo.secretRefs"
	// indexPolicySecrets: MFAPolicy -> names of the Secrets it reads.
	indexPolicySecrets = ".spec.identity.forwardAuth.caBundleRef"
	// indexPolicyTargets: MFAPolicy -> "true" when it has targetRefs, so
	// that a policy's event finds its siblings with targets without
	// listing every policy of the cluster.
	indexPolicyTargets = ".spec.targetRefs"
)

// SetupIndexes registers the field indexes the reconcilers use. Call it
// once per manager, before the reconcilers' SetupWithManager.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.MFAPolicy{}, indexPolicyProviders, func(o client.Object) []string {
		p := o.(*v1alpha1.MFAPolicy)
		var keys []string
		for _, k := range policy.ProviderKeys(p.Namespace, &p.Spec) {
			keys = append(keys, k.String())
		}
		return keys
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.MFAPolicy{}, indexPolicySecrets, func(o client.Object) []string {
		return policy.PolicySecretNames(&o.(*v1alpha1.MFAPolicy).Spec)
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.MFAPolicy{}, indexPolicyTargets, func(o client.Object) []string {
		if len(o.(*v1alpha1.MFAPolicy).Spec.TargetRefs) == 0 {
			return nil
		}
		return []string{"true"}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &v1alpha1.MFAProvider{}, indexProviderSecrets, func(o client.Object) []string {
		return policy.SecretNames(&o.(*v1alpha1.MFAProvider).Spec)
	})
}

// policiesWithTargets returns the MFAPolicies of namespace with
// targetRefs, the only ones that own targets or need a ReferenceGrant: a
// namespace of thousands of policies without targets costs nothing here.
// They are the cache's objects, to read only.
func policiesWithTargets(ctx context.Context, c client.Reader, namespace string) ([]v1alpha1.MFAPolicy, error) {
	var list v1alpha1.MFAPolicyList
	err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexPolicyTargets: "true"}, client.UnsafeDisableDeepCopy)
	return list.Items, err
}

// providersUsingSecret returns the MFAProviders that read a Secret.
func providersUsingSecret(ctx context.Context, c client.Reader, s client.Object) ([]v1alpha1.MFAProvider, error) {
	var list v1alpha1.MFAProviderList
	err := c.List(ctx, &list, client.InNamespace(s.GetNamespace()), client.MatchingFields{indexProviderSecrets: s.GetName()})
	return list.Items, err
}

// requestsForSecret maps a Secret to the MFAProviders that read it.
func requestsForSecret(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, s client.Object) []reconcile.Request {
		providers, err := providersUsingSecret(ctx, c, s)
		if err != nil {
			log.FromContext(ctx).Error(err, "listing the MFAProviders that use a Secret", "secret", client.ObjectKeyFromObject(s))
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(providers))
		for i := range providers {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&providers[i])})
		}
		return reqs
	}
}

// requestsForProvider maps an MFAProvider to the MFAPolicies that name it.
func requestsForProvider(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, p client.Object) []reconcile.Request {
		var list v1alpha1.MFAPolicyList
		key := types.NamespacedName{Namespace: p.GetNamespace(), Name: p.GetName()}.String()
		if err := c.List(ctx, &list, client.MatchingFields{indexPolicyProviders: key}); err != nil {
			log.FromContext(ctx).Error(err, "listing the MFAPolicies that use an MFAProvider", "provider", client.ObjectKeyFromObject(p))
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
		}
		return reqs
	}
}

// requestsForNamespace maps a Namespace whose labels changed to its
// MFAPolicies that name a provider of another namespace: a provider's
// allowedNamespaceSelector may admit them now, or no longer.
func requestsForNamespace(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, ns client.Object) []reconcile.Request {
		var list v1alpha1.MFAPolicyList
		if err := c.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
			log.FromContext(ctx).Error(err, "listing the MFAPolicies of a namespace", "namespace", ns.GetName())
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			p := &list.Items[i]
			if slices.ContainsFunc(policy.ProviderKeys(p.Namespace, &p.Spec), func(k types.NamespacedName) bool { return k.Namespace != p.Namespace }) {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)})
			}
		}
		return reqs
	}
}

// namespaceLabels reads the labels of the namespaces that providers'
// allowedNamespaceSelectors may look at; nil when no provider has one.
func namespaceLabels(ctx context.Context, c client.Reader, providers *v1alpha1.MFAProviderList) (map[string]map[string]string, error) {
	if !slices.ContainsFunc(providers.Items, func(p v1alpha1.MFAProvider) bool { return p.Spec.AllowedNamespaceSelector != nil }) {
		return nil, nil
	}
	var list corev1.NamespaceList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing Namespaces: %w", err)
	}
	out := make(map[string]map[string]string, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = list.Items[i].Labels
	}
	return out, nil
}
