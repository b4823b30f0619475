package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Action is what a rule decides.
// +kubebuilder:validation:Enum=Allow;RequireMFA;Deny
type Action string

const (
	// ActionAllow lets the request through without a second factor.
	ActionAllow Action = "Allow"
	// ActionRequireMFA lets the request through once the user has answered
	// one of the rule's providers.
	ActionRequireMFA Action = "RequireMFA"
	// ActionDeny refuses the request (403).
	ActionDeny Action = "Deny"
)

// DefaultAction is what happens when no rule matches: Allow or Deny.
// +kubebuilder:validation:Enum=Allow;Deny
type DefaultAction string

const (
	DefaultAllow DefaultAction = "Allow"
	DefaultDeny  DefaultAction = "Deny"
)

// PolicyMode says whether a policy's decisions are applied or only
// recorded.
// +kubebuilder:validation:Enum=Enforce;Audit
type PolicyMode string

const (
	// ModeEnforce applies the decisions: 401, 403 or 200 as the rules say.
	ModeEnforce PolicyMode = "Enforce"
	// ModeAudit computes and records the decisions (the metric
	// mfa_audit_decisions_total and a log line) and lets every request
	// through as if no policy applied: a shadow roll-out.
	ModeAudit PolicyMode = "Audit"
)

// DefaultRememberFor is how long a browser is remembered after a second
// factor: once a month.
const DefaultRememberFor = 720 * time.Hour

// Bounds of rememberFor: a remembered browser is asked again at least once
// a year, and not sooner than a minute after it answered. The CRD's rule
// on the field repeats them.
const (
	MinRememberFor = time.Minute
	MaxRememberFor = 8760 * time.Hour
)

// HeaderIdentity reads the user from headers set by the first-factor proxy
// in front of the challenge server (oauth2-proxy, an ingress auth layer).
type HeaderIdentity struct {
	// User is the header holding the user's identifier (also used as email
	// when it looks like one). Defaults to X-Auth-Request-Email.
	// +optional
	// +kubebuilder:default=X-Auth-Request-Email
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	User string `json:"user,omitempty"`
	// Groups is the header holding the user's groups, comma separated.
	// Unset, user.groups is empty.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	Groups string `json:"groups,omitempty"`
	// Name is the header holding the user's display name. Unset,
	// user.name is empty.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name,omitempty"`
}

// JWTIdentity reads the user from a signed JWT (an ID or access token).
// +kubebuilder:validation:XValidation:rule="!(has(self.header) && has(self.cookie))",message="set at most one of header and cookie"
type JWTIdentity struct {
	// Issuer must equal the token's iss claim.
	// +required
	// +kubebuilder:validation:MinLength=1
	Issuer string `json:"issuer"`
	// Audiences: the token's aud must contain at least one of them.
	// +required
	// +kubebuilder:validation:MinItems=1
	Audiences []string `json:"audiences"`
	// JWKSURL is where the issuer's signing keys are published.
	// +required
	// +kubebuilder:validation:Pattern=`^https?://`
	JWKSURL string `json:"jwksURL"`
	// Header holding the token; "Authorization" reads a Bearer token.
	// Defaults to Authorization when no cookie is set.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9-]+$`
	Header string `json:"header,omitempty"`
	// Cookie holding the token.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.-]+$`
	Cookie string `json:"cookie,omitempty"`
	// UserClaim is the claim naming the user (default sub).
	// +optional
	UserClaim string `json:"userClaim,omitempty"`
	// GroupsClaim is the claim listing the user's groups (default groups).
	// +optional
	GroupsClaim string `json:"groupsClaim,omitempty"`
}

// IdentitySpec says who the user is; the first factor happened upstream.
// Exactly one of header, jwt and forwardAuth is set.
// +kubebuilder:validation:XValidation:rule="(has(self.header) ? 1 : 0) + (has(self.jwt) ? 1 : 0) + (has(self.forwardAuth) ? 1 : 0) == 1",message="set exactly one of identity.header, identity.jwt and identity.forwardAuth"
type IdentitySpec struct {
	// Header reads the user from request headers set by the first-factor
	// proxy in front. Exclusive with jwt. A policy reading the user from
	// headers has no user.claims.
	// +optional
	Header *HeaderIdentity `json:"header,omitempty"`
	// JWT reads the user from a signed token; its claims are user.claims.
	// Exclusive with header.
	// +optional
	JWT *JWTIdentity `json:"jwt,omitempty"`
	// ForwardAuth asks the first-factor service (oauth2-proxy, Pomerium,
	// Authelia) who the user is, so that one auth URL on the route does
	// both factors. Exclusive with header and jwt.
	// +optional
	ForwardAuth *ForwardAuthIdentity `json:"forwardAuth,omitempty"`
}

// MultifactorSpec says which second factors a rule accepts and how long a
// browser is remembered.
type MultifactorSpec struct {
	// Providers are the MFAProviders the user may answer, any of them: a
	// name for a provider of the policy's namespace, or `namespace/name` for
	// a provider of another namespace whose spec.allowedNamespaces (or
	// allowedNamespaceSelector) admits the policy's namespace.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Providers []string `json:"providers"`
	// RememberFor is how long a browser that answered is not asked again
	// (the remembered-browser cookie), between 1m and 8760h (a year).
	// A duration is a number and a unit, h, m, s or ms, or several of them:
	// 720h, 90m, 1h30m; there is no unit for days (30 days is 720h).
	// Defaults to 720h, once a month.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}([.][0-9]{1,9})?(ms|s|m|h)){1,4}$') && duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="rememberFor must be a duration between 1m and 8760h, e.g. 720h"
	RememberFor *metav1.Duration `json:"rememberFor,omitempty"`
	// IgnoreCookie: when true the remembered-browser cookie is not honoured,
	// so every new browser session (or a newer login, for JWT identities)
	// answers the second factor again.
	// +optional
	IgnoreCookie bool `json:"ignoreCookie,omitempty"`
}

// Rule is a named CEL condition and its action.
// +kubebuilder:validation:XValidation:rule="self.action != 'RequireMFA' || has(self.multifactor)",message="a RequireMFA rule needs multifactor.providers"
// +kubebuilder:validation:XValidation:rule="self.action == 'RequireMFA' || !has(self.multifactor)",message="multifactor is only allowed on a RequireMFA rule"
type Rule struct {
	// Name of the rule, unique in the policy; shown in logs and metrics.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// When is a CEL expression of type bool over `user` and `request`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	When string `json:"when"`
	// Action taken when `when` is true.
	// +required
	Action Action `json:"action"`
	// Multifactor settings, required for RequireMFA.
	// +optional
	Multifactor *MultifactorSpec `json:"multifactor,omitempty"`
}

// MFAPolicySpec is one protected surface and its ordered rules.
type MFAPolicySpec struct {
	// Hosts served by this policy on the global /auth and /forward-auth
	// endpoints; also the hosts a browser may be sent back to after the
	// challenge. A host is compared in one form: lower-case, without a
	// trailing dot, internationalised names in punycode; a port never
	// chooses the policy ("admin.example.com:443" is admin.example.com).
	// "*.example.com" names every host under example.com, at any depth.
	// Within a namespace the most specific host wins; the same host in two
	// policies, or overlapping hosts in two namespaces, are a conflict
	// (reason HostConflict) and the challenge server refuses them by host
	// until it is resolved.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?$`
	Hosts []string `json:"hosts,omitempty"`
	// Identity says how the user is known: set exactly one of header,
	// jwt and forwardAuth.
	// +required
	Identity IdentitySpec `json:"identity"`
	// Rules are evaluated in order; the first whose `when` is true decides,
	// and default applies when none is.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	Rules []Rule `json:"rules"`
	// Default is the action when no rule matches: Allow (the default: no
	// rule, no second factor) or Deny.
	// +optional
	// +kubebuilder:default=Allow
	Default DefaultAction `json:"default,omitempty"`
	// TargetRefs attach the policy to Gateway API HTTPRoutes (or whole
	// Gateways) of its namespace: for each, the controller writes the
	// installed front door's own object (an Envoy Gateway SecurityPolicy, a
	// Traefik Middleware, an Istio AuthorizationPolicy) pointing at this
	// policy's endpoints, and reports in status.targets how it is wired.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.group == 'gateway.networking.k8s.io' && (r.kind == 'HTTPRoute' || r.kind == 'Gateway'))",message="targetRefs: only group gateway.networking.k8s.io, kind HTTPRoute or Gateway"
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, a.kind == b.kind && a.name == b.name && (has(a.sectionName) ? a.sectionName : '') == (has(b.sectionName) ? b.sectionName : '')))",message="targetRefs: each target at most once"
	TargetRefs []TargetRef `json:"targetRefs,omitempty"`

	// Mode is Enforce (the default: the decisions are applied) or Audit
	// (the decisions are computed and recorded, in the metric
	// mfa_audit_decisions_total and a log line, and every request is let
	// through as if no policy applied, without X-MFA-* headers). Audit is
	// for rolling out a policy in shadow before it enforces.
	// +optional
	// +kubebuilder:default=Enforce
	Mode PolicyMode `json:"mode,omitempty"`
}

// MFAPolicyStatus is the observed state of an MFAPolicy.
type MFAPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Stalled, Protected.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// AuthURL is the value for ingress-nginx's auth-url annotation.
	// +optional
	AuthURL string `json:"authURL,omitempty"`
	// SigninURL is the value for ingress-nginx's auth-signin annotation.
	// +optional
	SigninURL string `json:"signinURL,omitempty"`
	// RuleCount is the number of rules in force.
	// +optional
	RuleCount int32 `json:"ruleCount,omitempty"`
	// Targets is the state of each spec.targetRefs entry, in order.
	// +optional
	// +listType=atomic
	Targets []TargetStatus `json:"targets,omitempty"`
	// IstioExtensionProvider is the entry of Istio's mesh config
	// (meshConfig.extensionProviders) that the generated
	// AuthorizationPolicies name, shown when Istio is installed: mesh
	// config is cluster-wide and stays the operator's to set.
	// +optional
	IstioExtensionProvider string `json:"istioExtensionProvider,omitempty"`
}

// MFAPolicy decides, rule by rule, when a request to a protected app needs a
// second factor.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mfapol,categories=mfa
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Rules",type=integer,JSONPath=`.status.ruleCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Protected",type=string,JSONPath=`.status.conditions[?(@.type=="Protected")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Auth URL",type=string,priority=1,JSONPath=`.status.authURL`
type MFAPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the protected surface and its rules.
	// +required
	Spec MFAPolicySpec `json:"spec"`
	// Status is the controller's verdict.
	// +optional
	Status MFAPolicyStatus `json:"status,omitempty"`
}

// MFAPolicyList is a list of MFAPolicy.
// +kubebuilder:object:root=true
type MFAPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MFAPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MFAPolicy{}, &MFAPolicyList{})
}

// GetRememberFor returns how long a browser is remembered (720h by default).
// The bounds are checked elsewhere (the CRD, policy.CheckPolicy).
func (m *MultifactorSpec) GetRememberFor() time.Duration {
	if m == nil || m.RememberFor == nil || m.RememberFor.Duration <= 0 {
		return DefaultRememberFor
	}
	return m.RememberFor.Duration
}

// GetDefault returns the action when no rule matches (Allow by default).
func (s *MFAPolicySpec) GetDefault() Action {
	if s.Default == DefaultDeny {
		return ActionDeny
	}
	return ActionAllow
}

// GetMode returns the policy's mode (Enforce by default).
func (s *MFAPolicySpec) GetMode() PolicyMode {
	if s.Mode == ModeAudit {
		return ModeAudit
	}
	return ModeEnforce
}

// GetUserHeader returns the header naming the user.
func (h *HeaderIdentity) GetUserHeader() string {
	if h == nil || h.User == "" {
		return "X-Auth-Request-Email"
	}
	return h.User
}

// GetHeader returns the header holding the token, when no cookie is set.
func (j *JWTIdentity) GetHeader() string {
	if j.Header == "" && j.Cookie == "" {
		return "Authorization"
	}
	return j.Header
}

// GetUserClaim returns the claim naming the user.
func (j *JWTIdentity) GetUserClaim() string {
	if j.UserClaim == "" {
		return "sub"
	}
	return j.UserClaim
}

// GetGroupsClaim returns the claim listing the user's groups.
func (j *JWTIdentity) GetGroupsClaim() string {
	if j.GroupsClaim == "" {
		return "groups"
	}
	return j.GroupsClaim
}

// GetConditions returns the status conditions.
func (p *MFAPolicy) GetConditions() []metav1.Condition { return p.Status.Conditions }
