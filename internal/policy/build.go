package policy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// Verdicts says, for every object given to BuildBundle, whether it is valid
// now (nil) or why not (a *FieldError with a v1alpha1 reason, in most cases).
type Verdicts struct {
	Policies  map[types.NamespacedName]error
	Providers map[types.NamespacedName]error
}

// ProviderCheck is an extra check of a provider whose Secrets resolved, for
// what a pure function cannot know (e.g. that Duo accepted the credentials).
// A non-nil error makes the provider invalid for this build.
type ProviderCheck func(p *v1alpha1.MFAProvider, entry *BundleProvider) error

// ProviderState is what a policy check needs to know about a provider it names.
type ProviderState int

const (
	// ProviderMissing: no MFAProvider of that namespace and name.
	ProviderMissing ProviderState = iota
	// ProviderNotReady: the provider exists but is not valid (yet).
	ProviderNotReady
	// ProviderReady: the provider is valid and in force.
	ProviderReady
	// ProviderNotAdmitted: the provider is of another namespace and does
	// not admit the policy's.
	ProviderNotAdmitted
)

// BuildOptions is what a build knows beyond the objects themselves.
type BuildOptions struct {
	// NamespaceLabels are the labels of each namespace, for providers'
	// allowedNamespaceSelector; a namespace absent has no labels.
	NamespaceLabels map[string]map[string]string
	// IdentityHeaders are the only identity headers policies may name
	// (--identity-headers); empty allows any.
	IdentityHeaders []string
	// GeoIP: the challenge server has a GeoIP database (--geoip-db), so
	// rules may read request.geo.
	GeoIP bool
	// Checks run on every provider whose Secrets resolved.
	Checks []ProviderCheck
	// Cache, when set, keeps each policy's outcome for the next build, so
	// that only the policies whose inputs changed are compiled again.
	Cache *BuildCache
}

// BuildBundle compiles every valid policy and provider into a bundle.
//
// An object that is invalid now keeps its entry from previous, the last
// bundle in force, so that a bad change never opens or closes a door by
// accident; an object that was never valid is absent; an object that is no
// longer listed (deleted) disappears. A kept policy stays only while every
// provider it names is still in the bundle and still admits its namespace,
// so the bundle is always whole and a provider's owner can always take
// back what it shared.
//
// It does no I/O: the controller passes what it read from the API server,
// the standalone server what it read from files. It does not change what
// it is given, so the controller may pass the objects of its cache.
func BuildBundle(policies []v1alpha1.MFAPolicy, providers []v1alpha1.MFAProvider, secrets map[types.NamespacedName]*corev1.Secret, previous *Bundle, opts BuildOptions) (*Bundle, Verdicts) {
	verdicts := Verdicts{
		Policies:  make(map[types.NamespacedName]error, len(policies)),
		Providers: make(map[types.NamespacedName]error, len(providers)),
	}
	prevPolicies, prevProviders := indexBundle(previous)
	b := &Bundle{Policies: []BundlePolicy{}, Providers: []BundleProvider{}}

	validProviders := map[types.NamespacedName]bool{}
	// current are the provider objects as they are now, valid or not: a
	// provider kept from the last good bundle admits only what it admits
	// now too, so that its owner can always take a share back.
	current := map[types.NamespacedName]*v1alpha1.MFAProvider{}
	// inForce are the providers of the new bundle, valid now or kept.
	inForce := map[types.NamespacedName]*BundleProvider{}
	providerDup := duplicates(len(providers), func(i int) types.NamespacedName { return keyOf(providers[i].Namespace, providers[i].Name) })
	for i := range providers {
		p := &providers[i]
		key := keyOf(p.Namespace, p.Name)
		if _, done := verdicts.Providers[key]; done {
			continue
		}
		entry, err := resolveAndCheck(p, secrets, providerDup[key], opts.Checks)
		verdicts.Providers[key] = err
		current[key] = p
		switch {
		case err == nil:
			b.Providers = append(b.Providers, *entry)
			validProviders[key] = true
		case prevProviders[key] != nil:
			b.Providers = append(b.Providers, *prevProviders[key])
		}
	}
	for i := range b.Providers {
		inForce[keyOf(b.Providers[i].Namespace, b.Providers[i].Name)] = &b.Providers[i]
	}
	admitted := func(k types.NamespacedName, ns string) bool {
		bp := inForce[k]
		if bp == nil || !Admits(bp.Namespace, &bp.Spec, ns, opts.NamespaceLabels[ns]) {
			return false
		}
		now := current[k]
		return validProviders[k] || now != nil && checkSelector(now) == nil && Admits(now.Namespace, &now.Spec, ns, opts.NamespaceLabels[ns])
	}

	opts.Cache.begin(opts)
	defer opts.Cache.end()
	policyDup := duplicates(len(policies), func(i int) types.NamespacedName { return keyOf(policies[i].Namespace, policies[i].Name) })
	tenancy := Tenancy{
		IdentityHeaders: opts.IdentityHeaders,
		GeoIP:           opts.GeoIP,
		Provider: func(k types.NamespacedName, ns string) ProviderState {
			switch {
			case validProviders[k] && admitted(k, ns):
				return ProviderReady
			case validProviders[k]:
				return ProviderNotAdmitted
			case hasVerdict(verdicts.Providers, k):
				return ProviderNotReady
			}
			return ProviderMissing
		},
	}
	for i := range policies {
		p := &policies[i]
		key := keyOf(p.Namespace, p.Name)
		if _, done := verdicts.Policies[key]; done {
			continue
		}
		var entry *BundlePolicy
		var err error
		if policyDup[key] {
			err = duplicateError("MFAPolicy", key)
		} else {
			entry, err = opts.Cache.checkPolicy(p, tenancy, secrets)
		}
		verdicts.Policies[key] = err
		switch {
		case err == nil:
			b.Policies = append(b.Policies, *entry)
		case prevPolicies[key] != nil && providersInForce(prevPolicies[key], admitted) &&
			CheckIdentityHeaders(&prevPolicies[key].Spec, opts.IdentityHeaders) == nil:
			// The last good version stays, unless the providers' owners or
			// the operator have taken away what it relied on.
			b.Policies = append(b.Policies, *prevPolicies[key])
		}
	}
	recordSelected(b)
	return b, verdicts
}

// CheckPolicy compiles a policy (CompilePolicy) and checks what the
// challenge server relies on: that its rules read only what its identity
// sets (user.claims needs a JWT), that request.geo is read only when the
// operator has a GeoIP database, that each rememberFor is within its
// bounds, that every host it lists is a host name or a wildcard in the
// sense of host-based lookup (internal/hostname), its identity headers
// against the operator's list, and every provider its rules name. Errors
// are *FieldError naming the rule and the field.
//
// These are checked here rather than in CompilePolicy, which the challenge
// server runs on the bundle: a bundle written before one of them was
// refused still loads (the server leaving such a host out of lookup).
func CheckPolicy(p *v1alpha1.MFAPolicy, t Tenancy) (*CompiledPolicy, error) {
	cp, err := CompilePolicy(p.Namespace, p.Name, &p.Spec)
	if err != nil {
		return nil, err
	}
	if err := checkIdentityFields(&p.Spec, cp); err != nil {
		return nil, err
	}
	if err := checkRememberFor(&p.Spec); err != nil {
		return nil, err
	}
	if err := checkForwardAuth(&p.Spec); err != nil {
		return nil, err
	}
	if err := checkGeo(&p.Spec, cp, t.GeoIP); err != nil {
		return nil, err
	}
	if _, errs := hostname.ClaimsOf(p.Namespace, p.Name, p.Spec.Hosts); len(errs) > 0 {
		var he *hostname.InvalidHostError
		if errors.As(errs[0], &he) {
			return nil, &FieldError{Field: fmt.Sprintf("spec.hosts[%d]", he.Index), Reason: v1alpha1.ReasonInvalidSpec,
				Message: fmt.Sprintf("%q is not a host name or a wildcard (*.example.com): %v", he.Host, he.Err)}
		}
		return nil, errs[0]
	}
	if err := CheckIdentityHeaders(&p.Spec, t.IdentityHeaders); err != nil {
		return nil, err
	}
	for i := range p.Spec.Rules {
		r := &p.Spec.Rules[i]
		if r.Multifactor == nil {
			continue
		}
		for j, ref := range r.Multifactor.Providers {
			field := fmt.Sprintf("spec.rules[%d].multifactor.providers[%d]", i, j)
			k, _ := ProviderRef(p.Namespace, ref) // CompilePolicy checked it
			switch t.Provider(k, p.Namespace) {
			case ProviderMissing:
				return nil, &FieldError{Field: field, Rule: r.Name, Reason: v1alpha1.ReasonProviderNotFound,
					Message: fmt.Sprintf("MFAProvider %q not found in namespace %q; create it or fix the name", k.Name, k.Namespace)}
			case ProviderNotReady:
				return nil, &FieldError{Field: field, Rule: r.Name, Reason: v1alpha1.ReasonProviderNotReady,
					Message: fmt.Sprintf("MFAProvider %q is not Ready; see kubectl describe mfaprovider %s -n %s", k.Name, k.Name, k.Namespace)}
			case ProviderNotAdmitted:
				return nil, &FieldError{Field: field, Rule: r.Name, Reason: v1alpha1.ReasonProviderNotAdmitted,
					Message: fmt.Sprintf("MFAProvider %s does not admit policies of namespace %q; its owner adds %q to its spec.allowedNamespaces "+
						"(or labels the namespace to match spec.allowedNamespaceSelector)", k, p.Namespace, p.Namespace)}
			}
		}
	}
	return cp, nil
}

// ResolveProvider checks a provider's settings and reads its credentials
// from secrets (keyed by namespace/name; Secrets are looked up in the
// provider's namespace). Errors are *FieldError naming the field.
func ResolveProvider(p *v1alpha1.MFAProvider, secrets map[types.NamespacedName]*corev1.Secret) (*BundleProvider, error) {
	entry := &BundleProvider{Namespace: p.Namespace, Name: p.Name, Spec: *p.Spec.DeepCopy(), Created: p.CreationTimestamp.UTC()}
	if p.Spec.WebAuthn != nil && p.Spec.Type != v1alpha1.ProviderWebAuthn {
		return nil, &FieldError{Field: "spec.webauthn", Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.webauthn is only allowed when type is webauthn; remove it"}
	}
	switch p.Spec.Type {
	case v1alpha1.ProviderTOTP:
		if p.Spec.Duo != nil {
			return nil, &FieldError{Field: "spec.duo", Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.duo is only allowed when type is duo; remove it"}
		}
		if err := checkTOTPPeriod(p.Spec.TOTP); err != nil {
			return nil, err
		}
	case v1alpha1.ProviderDuo:
		d := p.Spec.Duo
		if d == nil {
			return nil, &FieldError{Field: "spec.duo", Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.duo is required when type is duo"}
		}
		if p.Spec.TOTP != nil {
			return nil, &FieldError{Field: "spec.totp", Reason: v1alpha1.ReasonInvalidSpec, Message: "spec.totp is only allowed when type is totp; remove it"}
		}
		ikey, err := secretValue(p.Namespace, "spec.duo.integrationKeyRef", d.IntegrationKeyRef, secrets)
		if err != nil {
			return nil, err
		}
		skey, err := secretValue(p.Namespace, "spec.duo.secretKeyRef", d.SecretKeyRef, secrets)
		if err != nil {
			return nil, err
		}
		creds := &DuoCredentials{IntegrationKey: strings.TrimSpace(ikey), SecretKey: strings.TrimSpace(skey)}
		if d.CABundleRef != nil {
			ca, err := secretValue(p.Namespace, "spec.duo.caBundleRef", *d.CABundleRef, secrets)
			if err != nil {
				return nil, err
			}
			if !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
				return nil, &FieldError{Field: "spec.duo.caBundleRef", Reason: v1alpha1.ReasonInvalidSpec,
					Message: fmt.Sprintf("key %q of Secret %q holds no PEM certificate", d.CABundleRef.Key, d.CABundleRef.Name)}
			}
			creds.CABundle = ca
		}
		entry.Duo = creds
	case v1alpha1.ProviderWebAuthn:
		if err := checkWebAuthn(&p.Spec); err != nil {
			return nil, err
		}
	default:
		return nil, &FieldError{Field: "spec.type", Reason: v1alpha1.ReasonInvalidSpec, Message: fmt.Sprintf("unknown provider type %q; use totp, duo or webauthn", p.Spec.Type)}
	}
	return entry, nil
}

// SecretNames returns the names of the Secrets a provider reads, in its own
// namespace.
func SecretNames(spec *v1alpha1.MFAProviderSpec) []string {
	d := spec.Duo
	if d == nil {
		return nil
	}
	names := []string{d.IntegrationKeyRef.Name}
	if d.SecretKeyRef.Name != d.IntegrationKeyRef.Name {
		names = append(names, d.SecretKeyRef.Name)
	}
	if d.CABundleRef != nil && d.CABundleRef.Name != d.IntegrationKeyRef.Name && d.CABundleRef.Name != d.SecretKeyRef.Name {
		names = append(names, d.CABundleRef.Name)
	}
	return names
}

// ProviderNames returns the MFAProvider names a policy's rules name, once
// each, in the policy's namespace.
func ProviderNames(spec *v1alpha1.MFAPolicySpec) []string {
	var names []string
	seen := map[string]bool{}
	for i := range spec.Rules {
		if mf := spec.Rules[i].Multifactor; mf != nil {
			for _, n := range mf.Providers {
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	return names
}

func resolveAndCheck(p *v1alpha1.MFAProvider, secrets map[types.NamespacedName]*corev1.Secret, duplicate bool, checks []ProviderCheck) (*BundleProvider, error) {
	if duplicate {
		return nil, duplicateError("MFAProvider", keyOf(p.Namespace, p.Name))
	}
	if err := checkSelector(p); err != nil {
		return nil, err
	}
	entry, err := ResolveProvider(p, secrets)
	if err != nil {
		return nil, err
	}
	for _, check := range checks {
		if err := check(p, entry); err != nil {
			return nil, err
		}
	}
	return entry, nil
}

// secretValue reads one key of a Secret of namespace ns. Data wins over
// StringData; StringData is read too because Secrets given as files (the
// standalone server) are not normalised by an API server.
func secretValue(ns, field string, ref v1alpha1.SecretKeySelector, secrets map[types.NamespacedName]*corev1.Secret) (string, error) {
	s := secrets[keyOf(ns, ref.Name)]
	if s == nil {
		return "", &FieldError{Field: field + ".name", Reason: v1alpha1.ReasonSecretNotFound,
			Message: fmt.Sprintf("Secret %q not found in namespace %q; create it or fix the name", ref.Name, ns)}
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		var sv string
		if sv, ok = s.StringData[ref.Key]; ok {
			v = []byte(sv)
		}
	}
	if !ok {
		return "", &FieldError{Field: field + ".key", Reason: v1alpha1.ReasonSecretKeyNotFound,
			Message: fmt.Sprintf("Secret %q in namespace %q has no key %q; add it or fix the key", ref.Name, ns, ref.Key)}
	}
	if strings.TrimSpace(string(v)) == "" {
		return "", &FieldError{Field: field + ".key", Reason: v1alpha1.ReasonSecretKeyNotFound,
			Message: fmt.Sprintf("key %q of Secret %q in namespace %q is empty; put the value in it", ref.Key, ref.Name, ns)}
	}
	return string(v), nil
}

func keyOf(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func indexBundle(b *Bundle) (map[types.NamespacedName]*BundlePolicy, map[types.NamespacedName]*BundleProvider) {
	pols := map[types.NamespacedName]*BundlePolicy{}
	provs := map[types.NamespacedName]*BundleProvider{}
	if b == nil {
		return pols, provs
	}
	for i := range b.Policies {
		pols[keyOf(b.Policies[i].Namespace, b.Policies[i].Name)] = &b.Policies[i]
	}
	for i := range b.Providers {
		provs[keyOf(b.Providers[i].Namespace, b.Providers[i].Name)] = &b.Providers[i]
	}
	return pols, provs
}

// duplicates reports the keys listed more than once. The API server never
// lists an object twice; a directory of files can, and then neither copy
// is trusted.
func duplicates(n int, key func(int) types.NamespacedName) map[types.NamespacedName]bool {
	count := make(map[types.NamespacedName]int, n)
	for i := 0; i < n; i++ {
		count[key(i)]++
	}
	dup := map[types.NamespacedName]bool{}
	for k, c := range count {
		if c > 1 {
			dup[k] = true
		}
	}
	return dup
}

func duplicateError(kind string, key types.NamespacedName) error {
	return &FieldError{Field: "metadata.name", Reason: v1alpha1.ReasonInvalidSpec,
		Message: fmt.Sprintf("%s %s is defined more than once; keep one definition", kind, key)}
}

func hasVerdict(m map[types.NamespacedName]error, k types.NamespacedName) bool {
	_, ok := m[k]
	return ok
}

func providersInForce(p *BundlePolicy, admitted func(types.NamespacedName, string) bool) bool {
	for _, k := range ProviderKeys(p.Namespace, &p.Spec) {
		if !admitted(k, p.Namespace) {
			return false
		}
	}
	return true
}
