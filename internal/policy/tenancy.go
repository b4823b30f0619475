package policy

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// DefaultIdentityHeaders are the identity headers policies may name when
// the operator does not say otherwise (--identity-headers): the ones the
// common first-factor proxies set and overwrite (oauth2-proxy, Pomerium,
// Authelia, Authentik, Vouch, nginx basic auth through a map). A header no
// front door overwrites could be sent by the client itself.
var DefaultIdentityHeaders = []string{
	"X-Auth-Request-Email", "X-Auth-Request-User", "X-Auth-Request-Groups", "X-Auth-Request-Preferred-Username",
	"X-Forwarded-Email", "X-Forwarded-User", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username",
	"Remote-User", "Remote-Email", "Remote-Groups", "Remote-Name",
	"X-Pomerium-Claim-Email", "X-Pomerium-Claim-User", "X-Pomerium-Claim-Groups",
	"X-Authentik-Username", "X-Authentik-Email", "X-Authentik-Groups", "X-Authentik-Name",
	"X-Vouch-User",
}

// Tenancy is what checking a policy against other objects needs: the state
// of the providers it names and the operator's limits.
type Tenancy struct {
	// Provider reports the state of the provider key (namespace/name) for a
	// policy of policyNamespace, admission included.
	Provider func(key types.NamespacedName, policyNamespace string) ProviderState
	// IdentityHeaders are the only header names an identity may name
	// (compared case-insensitively); empty allows any.
	IdentityHeaders []string
	// GeoIP: the challenge server has a GeoIP database, so rules may read
	// request.geo.
	GeoIP bool
}

// ProviderRef resolves a name of multifactor.providers for a policy of
// namespace ns: "name" is a provider of ns, "namespace/name" one of another
// namespace.
func ProviderRef(ns, ref string) (types.NamespacedName, error) {
	pns, name, cross := strings.Cut(ref, "/")
	if !cross {
		pns, name = ns, ref
	}
	if errs := validation.IsDNS1123Label(pns); cross && len(errs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("%q: the namespace %q is not a namespace name (%s)", ref, pns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("%q is not an MFAProvider name or namespace/name (%s)", ref, strings.Join(errs, "; "))
	}
	return types.NamespacedName{Namespace: pns, Name: name}, nil
}

// ProviderKeys returns the keys (namespace/name) of the providers a
// policy's rules name, once each. Names that do not resolve are left out:
// CompilePolicy refuses them.
func ProviderKeys(ns string, spec *v1alpha1.MFAPolicySpec) []types.NamespacedName {
	var keys []types.NamespacedName
	for _, ref := range ProviderNames(spec) {
		if k, err := ProviderRef(ns, ref); err == nil && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// Admits says whether the provider providerNS/spec admits the policies of
// namespace ns: always its own namespace, then spec.allowedNamespaces, then
// spec.allowedNamespaceSelector against the namespace's labels (nil when it
// has none).
func Admits(providerNS string, spec *v1alpha1.MFAProviderSpec, ns string, nsLabels map[string]string) bool {
	return ns == providerNS || slices.Contains(spec.AllowedNamespaces, ns) || admitsBySelector(spec, nsLabels)
}

func admitsBySelector(spec *v1alpha1.MFAProviderSpec, nsLabels map[string]string) bool {
	if spec.AllowedNamespaceSelector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(spec.AllowedNamespaceSelector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(nsLabels))
}

// admitsByName is Admits without the selector.
func (p *BundleProvider) admitsByName(ns string) bool {
	return ns == p.Namespace || slices.Contains(p.Spec.AllowedNamespaces, ns)
}

// Admits says whether the provider in force admits the policies of
// namespace ns, the selector as resolved when the bundle was built.
func (p *BundleProvider) Admits(ns string) bool {
	return p.admitsByName(ns) || slices.Contains(p.SelectedNamespaces, ns)
}

// recordSelected writes, on every provider of b, the namespaces of b's
// policies that use it through its allowedNamespaceSelector (admitted, but
// not by name), so that the challenge server can check admission without
// namespace labels.
func recordSelected(b *Bundle) {
	byKey := make(map[types.NamespacedName]*BundleProvider, len(b.Providers))
	for i := range b.Providers {
		bp := &b.Providers[i]
		bp.SelectedNamespaces = nil
		byKey[keyOf(bp.Namespace, bp.Name)] = bp
	}
	for i := range b.Policies {
		ns := b.Policies[i].Namespace
		for _, k := range ProviderKeys(ns, &b.Policies[i].Spec) {
			if bp := byKey[k]; bp != nil && !bp.admitsByName(ns) && !slices.Contains(bp.SelectedNamespaces, ns) {
				bp.SelectedNamespaces = append(bp.SelectedNamespaces, ns)
			}
		}
	}
	for i := range b.Providers {
		slices.Sort(b.Providers[i].SelectedNamespaces)
	}
}

// checkSelector refuses a provider whose selector does not parse.
func checkSelector(p *v1alpha1.MFAProvider) error {
	if p.Spec.AllowedNamespaceSelector == nil {
		return nil
	}
	if _, err := metav1.LabelSelectorAsSelector(p.Spec.AllowedNamespaceSelector); err != nil {
		return &FieldError{Field: "spec.allowedNamespaceSelector", Reason: v1alpha1.ReasonInvalidSpec,
			Message: fmt.Sprintf("not a valid label selector: %v", err)}
	}
	return nil
}

// CheckIdentityHeaders refuses a header identity naming a header outside
// allowed. (A JWT identity is not limited: its token is verified.)
func CheckIdentityHeaders(spec *v1alpha1.MFAPolicySpec, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	check := func(field, name string) error {
		if name == "" || slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, name) }) {
			return nil
		}
		return &FieldError{Field: field, Reason: v1alpha1.ReasonIdentityHeaderNotAllowed,
			Message: fmt.Sprintf("header %q is not one the operator allows identities from (--identity-headers: %s); "+
				"name a header your first-factor proxy sets and overwrites, or ask the operator to allow it",
				name, strings.Join(allowed, ", "))}
	}
	if h := spec.Identity.Header; h != nil {
		for _, f := range []struct{ field, name string }{
			{"spec.identity.header.user", h.GetUserHeader()},
			{"spec.identity.header.groups", h.Groups},
			{"spec.identity.header.name", h.Name},
		} {
			if err := check(f.field, http.CanonicalHeaderKey(f.name)); err != nil {
				return err
			}
		}
	}
	return nil
}
