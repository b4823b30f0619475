// Package v1alpha1 contains the API of mfa-operator: MFAProvider (a second
// factor and its settings) and MFAPolicy (a protected surface and the ordered
// rules that decide when a second factor is needed).
// +kubebuilder:object:generate=true
// +groupName=mfa.operator.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the mfa-operator API.
	GroupVersion = schema.GroupVersion{Group: "mfa.operator.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
