package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// referenceGrantName names the ReferenceGrant, in the challenge server's
// namespace, that lets the routes and SecurityPolicies of one namespace
// name the challenge Service (a backendRef to another namespace needs one).
func referenceGrantName(namespace string) string { return "mfa-challenge-from-" + namespace }

// ChallengeReferenceGrant is that ReferenceGrant: HTTPRoutes (their
// ExternalAuth filter) and, with Envoy Gateway, SecurityPolicies of
// namespace may refer to the challenge Service, and nothing else of the
// challenge server's namespace.
func ChallengeReferenceGrant(o Options, namespace string, envoyGateway bool) *unstructured.Unstructured {
	from := []any{map[string]any{"group": v1alpha1.GatewayAPIGroup, "kind": "HTTPRoute", "namespace": namespace}}
	if envoyGateway {
		from = append(from, map[string]any{"group": gvkSecurityPolicy.Group, "kind": gvkSecurityPolicy.Kind, "namespace": namespace})
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"from": from,
		"to":   []any{map[string]any{"group": "", "kind": "Service", "name": ChallengeName}},
	}}}
	u.SetGroupVersionKind(gvkReferenceGrant)
	u.SetNamespace(o.Namespace)
	u.SetName(referenceGrantName(namespace))
	u.SetLabels(labels(ChallengeName, "reference-grant"))
	return u
}

// ensureReferenceGrant writes the ReferenceGrant of a namespace while one
// of its policies has targetRefs, and deletes it when none has. It has no
// owner: it lives in another namespace than the policies.
func (a *gatewayAttacher) ensureReferenceGrant(ctx context.Context, namespace string, policies []v1alpha1.MFAPolicy, installed map[schema.GroupVersionKind]bool) error {
	if !installed[gvkReferenceGrant] {
		return nil
	}
	needed := false
	for i := range policies {
		if len(policies[i].Spec.TargetRefs) > 0 && policies[i].DeletionTimestamp == nil {
			needed = true
		}
	}
	desired := ChallengeReferenceGrant(a.opts, namespace, installed[gvkSecurityPolicy])
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(gvkReferenceGrant)
	err := a.client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err) && !needed:
		return nil
	case apierrors.IsNotFound(err):
		if err := a.client.Create(ctx, desired); err != nil {
			return fmt.Errorf("creating ReferenceGrant %s: %w", client.ObjectKeyFromObject(desired), err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading ReferenceGrant %s: %w", client.ObjectKeyFromObject(desired), err)
	case !needed:
		return client.IgnoreNotFound(a.client.Delete(ctx, existing))
	case equality.Semantic.DeepDerivative(desired.Object["spec"], existing.Object["spec"]):
		return nil
	}
	existing.Object["spec"] = desired.Object["spec"]
	existing.SetLabels(mergeMaps(existing.GetLabels(), desired.GetLabels()))
	return a.client.Update(ctx, existing)
}
