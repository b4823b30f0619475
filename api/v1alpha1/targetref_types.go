package v1alpha1

import (
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayAPIGroup is the API group of the objects a policy may target.
const GatewayAPIGroup = "gateway.networking.k8s.io"

// TargetRef names a Gateway API HTTPRoute (or a whole Gateway) of the
// policy's namespace that the policy protects, the way Envoy Gateway's
// SecurityPolicy and other Gateway API policies attach. SectionName names
// one rule of an HTTPRoute, or one listener of a Gateway.
type TargetRef = gwapiv1.LocalPolicyTargetReferenceWithSectionName

// TargetState says how one targetRef is wired to the challenge server.
// +kubebuilder:validation:Enum=Attached;FilterRequired;TargetNotFound;CRDMissing;Conflict
type TargetState string

const (
	// TargetAttached: every request the target serves is sent to the
	// challenge server: the controller wrote a front door object that
	// targets it (Envoy Gateway SecurityPolicy, Istio AuthorizationPolicy),
	// or the HTTPRoute itself carries the ExternalAuth filter or the
	// ExtensionRef to the generated Traefik Middleware in every rule.
	TargetAttached TargetState = "Attached"
	// TargetFilterRequired: the target exists but nothing the controller
	// may write attaches it (NGINX Gateway Fabric, Cilium, Traefik): the
	// HTTPRoute needs the filter shown in the message. The controller never
	// edits HTTPRoutes: they belong to their authors (and GitOps).
	TargetFilterRequired TargetState = "FilterRequired"
	// TargetNotFound: no object of that kind and name exists in the
	// policy's namespace (yet).
	TargetNotFound TargetState = "TargetNotFound"
	// TargetCRDMissing: the Gateway API CRD of the target's kind is not
	// installed in the cluster.
	TargetCRDMissing TargetState = "CRDMissing"
	// TargetConflict: another MFAPolicy targets the same object; the one
	// created first keeps it, the other writes nothing for it.
	TargetConflict TargetState = "Conflict"
)

// TargetStatus is the state of one entry of spec.targetRefs.
type TargetStatus struct {
	// Group, Kind, Name and SectionName repeat the targetRef.
	TargetRef `json:",inline"`
	// State is how the target is wired.
	// +required
	State TargetState `json:"state"`
	// Message explains the state, with the field path of the targetRef
	// and, when something is to be done, the exact YAML to add.
	// +optional
	Message string `json:"message,omitempty"`
	// Objects are the front door objects the controller wrote for this
	// target ("SecurityPolicy apps/mfa-admin").
	// +optional
	// +listType=atomic
	Objects []string `json:"objects,omitempty"`
}
