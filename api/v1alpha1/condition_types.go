package v1alpha1

// Condition types.
const (
	// ReadyCondition is True when the object is valid and in force.
	ReadyCondition = "Ready"
	// StalledCondition is True when the object cannot become Ready without a
	// change from its author (a configuration error); the controller does not
	// retry it until the object or something it references changes.
	StalledCondition = "Stalled"
	// ProtectedCondition is True when every Ingress and HTTPRoute that
	// serves a host of the policy sends its requests to the challenge
	// server for this policy, False (with the count and the first names)
	// when some do not: those are open, whatever the policy says.
	ProtectedCondition = "Protected"
)

// Condition reasons.
const (
	// ReasonSucceeded: the object is valid and compiled into the bundle.
	ReasonSucceeded = "Succeeded"
	// ReasonInvalidExpression: a rule's `when` does not compile, is not a
	// bool, or is too expensive.
	ReasonInvalidExpression = "InvalidExpression"
	// ReasonInvalidSpec: a value the schema cannot check is wrong.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonProviderNotFound: a rule names an MFAProvider that does not
	// exist (yet). The policy waits for it, not Stalled; the event is
	// Normal, or Warning when the policy was Ready at this generation.
	ReasonProviderNotFound = "ProviderNotFound"
	// ReasonProviderNotReady: a rule names an MFAProvider that is not Ready
	// (yet). The policy waits for it, as for ProviderNotFound.
	ReasonProviderNotReady = "ProviderNotReady"
	// ReasonProviderNotAdmitted: a rule names an MFAProvider of another
	// namespace that does not admit the policy's namespace.
	ReasonProviderNotAdmitted = "ProviderNotAdmitted"
	// ReasonIdentityHeaderNotAllowed: the policy names an identity header
	// the operator does not allow (--identity-headers).
	ReasonIdentityHeaderNotAllowed = "IdentityHeaderNotAllowed"
	// ReasonSecretNotFound: a referenced Secret does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonSecretKeyNotFound: a referenced Secret lacks the key.
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	// ReasonDuoCheckFailed: Duo refused the credentials.
	ReasonDuoCheckFailed = "DuoCheckFailed"
	// ReasonDuoUnreachable: Duo could not be reached; retried with backoff.
	ReasonDuoUnreachable = "DuoUnreachable"
	// ReasonProgressing: the controller is working on the object.
	ReasonProgressing = "Progressing"
	// ReasonHostConflict: a host of the policy is also listed by another
	// MFAPolicy in force (the same host once normalised, or overlapping
	// hosts of another namespace: a host inside its wildcard, nested
	// wildcards), so host-based lookup (/auth, /forward-auth) refuses it.
	// Ready stays True with this reason: the policy stays in force at
	// /auth/{namespace}/{policy}.
	ReasonHostConflict = "HostConflict"
	// ReasonRoutesProtected: every route serving the policy's hosts is
	// wired to it (or none serves them).
	ReasonRoutesProtected = "RoutesProtected"
	// ReasonUnprotectedRoutes: some route serving the policy's hosts is not
	// wired to it.
	ReasonUnprotectedRoutes = "UnprotectedRoutes"
	// ReasonGeoIPUnavailable: a rule reads request.geo but the operator
	// runs without a GeoIP database (--geoip-db), so the country and ASN
	// would always be empty.
	ReasonGeoIPUnavailable = "GeoIPUnavailable"
)
