package source

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// Origin is where an object was read: a file and the document's number in
// it (1 for the first).
type Origin struct {
	File     string
	Document int
}

// Policies are the MFAPolicy objects read, in order.
func (o *Objects) Policies() []v1alpha1.MFAPolicy { return o.policies }

// Providers are the MFAProvider objects read, in order.
func (o *Objects) Providers() []v1alpha1.MFAProvider { return o.providers }

// PolicyOrigin is where Policies()[i] was read.
func (o *Objects) PolicyOrigin(i int) Origin { return o.policyOrigins[i] }

// ProviderOrigin is where Providers()[i] was read.
func (o *Objects) ProviderOrigin(i int) Origin { return o.providerOrigins[i] }

// Secret returns the Secret namespace/name read, or nil.
func (o *Objects) Secret(k types.NamespacedName) *corev1.Secret { return o.secrets[k] }

// AddSecret adds a Secret unless one of that name was read.
func (o *Objects) AddSecret(s *corev1.Secret) {
	k := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
	if o.secrets[k] == nil {
		o.secrets[k] = s
	}
}

// HasNamespace says whether a Namespace object of that name was read.
func (o *Objects) HasNamespace(name string) bool {
	_, ok := o.namespaceLabels[name]
	return ok
}
