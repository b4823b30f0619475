package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// readSecrets reads the Secrets names of namespace ns into secrets, once
// each; a Secret that does not exist is left out (the build says so).
func readSecrets(ctx context.Context, c client.Reader, ns string, names []string, secrets map[types.NamespacedName]*corev1.Secret) error {
	for _, name := range names {
		key := types.NamespacedName{Namespace: ns, Name: name}
		if _, done := secrets[key]; done {
			continue
		}
		s := &corev1.Secret{}
		if err := c.Get(ctx, key, s); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("reading Secret %s: %w", key, err)
		}
		secrets[key] = s
	}
	return nil
}

// checkPolicySecrets checks what a policy reads from Secrets (the CA
// bundle of its first factor), as the bundle's build does.
func checkPolicySecrets(ctx context.Context, c client.Reader, obj *v1alpha1.MFAPolicy) error {
	names := policy.PolicySecretNames(&obj.Spec)
	if len(names) == 0 {
		return nil
	}
	secrets := map[types.NamespacedName]*corev1.Secret{}
	if err := readSecrets(ctx, c, obj.Namespace, names, secrets); err != nil {
		return err
	}
	_, err := policy.ResolvePolicySecrets(obj, secrets)
	return err
}

// requestsForPolicySecret maps a Secret to the MFAPolicies that read it.
func requestsForPolicySecret(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, s client.Object) []reconcile.Request {
		var list v1alpha1.MFAPolicyList
		if err := c.List(ctx, &list, client.InNamespace(s.GetNamespace()), client.MatchingFields{indexPolicySecrets: s.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "listing the MFAPolicies that use a Secret", "secret", client.ObjectKeyFromObject(s))
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return reqs
	}
}
