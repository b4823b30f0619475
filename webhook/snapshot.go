package webhook

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

const defaultRememberFor = v1alpha1.DefaultRememberFor

// snapshot is the configuration in force: compiled policies, providers and
// the keyring. It is immutable; a reload builds a new one and swaps it
// atomically, so a request sees one consistent configuration.
type snapshot struct {
	// Policies by namespace/name.
	Policies map[string]*policy.CompiledPolicy
	// Providers by namespace/name.
	Providers map[string]*policy.BundleProvider
	// Keyring seals cookies and signs assertions; nil until one is loaded.
	Keyring *keyring.Keyring
	// BundleHash identifies the bundle the snapshot was built from.
	BundleHash string
	// LoadedAt is when the bundle was loaded.
	LoadedAt time.Time

	byName map[policyName]*policyEntry
	// hosts serves host-based lookup (/auth and /forward-auth without a
	// policy in the path).
	hosts hostRoutes
}

type policyName struct{ namespace, name string }

// policyEntry is a compiled policy and what the hot path derives from it
// once per snapshot.
type policyEntry struct {
	compiled *policy.CompiledPolicy
	key      string // namespace/name
	// header or verifier is the identity source.
	header      *headerSource
	verifier    *jwtVerifier
	firstFactor *firstFactor
	// needsURL / needsHeaders / needsQuery / needsInteractive: some rule
	// may read request.url / request.headers / request.query /
	// request.interactive (its text names it), so they are written for it
	// (and only then).
	needsURL, needsHeaders, needsQuery, needsInteractive bool
	// needsGeo: some rule may read request.geo, so the client address is
	// looked up in the GeoIP database for it (and only then).
	needsGeo bool
	// audit: the policy's mode is Audit; its decisions are recorded and
	// the request let through (see authHandler.audit).
	audit bool
	rules []ruleInfo
	// maxRemember is, per provider key, the longest rememberFor of the
	// rules accepting it: how long its cookies live.
	maxRemember   map[string]time.Duration
	challengeBase string
	counters      *decisionCounters
	// hosts are the policy's spec.hosts: it answers only for them.
	hosts policyHosts
	// created orders conflicting host claims (see yieldHosts).
	created time.Time
}

// ruleInfo is what the hot path needs of a rule beyond the compiled rule.
type ruleInfo struct {
	rule *policy.CompiledRule
	// accepts is what a session must show to satisfy the rule: a factor
	// of one of the rule's providers in force (namespace/name), answered
	// within its rememberFor.
	accepts session.Rule
}

func (e *policyEntry) ruleInfo(r *policy.CompiledRule) *ruleInfo {
	for i := range e.rules {
		if e.rules[i].rule == r {
			return &e.rules[i]
		}
	}
	return nil
}

func emptySnapshot() *snapshot {
	return &snapshot{
		Policies:  map[string]*policy.CompiledPolicy{},
		Providers: map[string]*policy.BundleProvider{},
		byName:    map[policyName]*policyEntry{},
		hosts:     newHostRoutes(),
	}
}

// Policy returns the policy namespace/name, or nil.
func (sn *snapshot) Policy(namespace, name string) *policy.CompiledPolicy {
	if e := sn.entry(namespace, name); e != nil {
		return e.compiled
	}
	return nil
}

// entry returns the entry of the policy namespace/name, or nil.
func (sn *snapshot) entry(namespace, name string) *policyEntry {
	return sn.byName[policyName{namespace, name}]
}

// Provider returns the provider namespace/name, or nil.
func (sn *snapshot) Provider(namespace, name string) *policy.BundleProvider {
	return sn.Providers[namespace+"/"+name]
}

// snapshotBuilder compiles bundles into snapshots, with what the hot path
// derives from each policy.
type snapshotBuilder struct {
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	// verifiers keep JWT verifiers (and their caches) across reloads.
	verifiers *verifierRegistry
	// firstFactors keep forwardAuth first factors (and their caches and
	// circuits) across reloads.
	firstFactors *firstFactorRegistry
	// publicURL prefixes the challenge URLs (nil: relative).
	publicURL *url.URL
	// identityHeaders are the only identity headers policies may name
	// (nil: any).
	identityHeaders []string
}

// buildSnapshot compiles every policy of a bundle. One policy that does not
// compile refuses the whole bundle, so that the last good one stays.
func (sb *snapshotBuilder) build(b *policy.Bundle, hash string, kr *keyring.Keyring) (*snapshot, error) {
	sn := emptySnapshot()
	sn.Keyring, sn.BundleHash, sn.LoadedAt = kr, hash, sb.now()
	for i := range b.Providers {
		p := &b.Providers[i]
		sn.Providers[p.Key()] = p
		// Expose the provider's challenge counters before the first one.
		sb.metrics.challenges.WithLabelValues(p.Key(), "success")
		sb.metrics.challenges.WithLabelValues(p.Key(), "failure")
	}
	compiled := compilePolicies(b.Policies)
	var claims []hostClaim
	for i := range b.Policies {
		bp := &b.Policies[i]
		cp, err := compiled[i].cp, compiled[i].err
		if err != nil {
			return nil, fmt.Errorf("MFAPolicy %s: %w", bp.Key(), err)
		}
		// The operator's restriction on identity headers: a policy naming
		// another header stays out (fail closed for its hosts), the others
		// load.
		if err := policy.CheckIdentityHeaders(&bp.Spec, sb.identityHeaders); err != nil {
			sb.log.Error("MFAPolicy left out: it names an identity header --identity-headers does not allow", "policy", bp.Key(), "error", err)
			continue
		}
		e, err := sb.newPolicyEntry(cp, sn.Providers, bp.ForwardAuthCA)
		if err != nil {
			return nil, fmt.Errorf("MFAPolicy %s: %w", bp.Key(), err)
		}
		sn.Policies[e.key] = cp
		sn.byName[policyName{cp.Namespace, cp.Name}] = e
		e.created = bp.Created
		claims = sb.appendHostClaims(claims, e)
	}
	sn.hosts = sb.routeHosts(claims)
	return sn, nil
}

// withKeyring is the snapshot with another keyring.
func (sn *snapshot) withKeyring(kr *keyring.Keyring) *snapshot {
	c := *sn
	c.Keyring = kr
	return &c
}

// newPolicyEntry derives what the hot path needs of a compiled policy,
// with the providers in force of its snapshot.
func (sb *snapshotBuilder) newPolicyEntry(cp *policy.CompiledPolicy, providers map[string]*policy.BundleProvider, forwardAuthCA string) (*policyEntry, error) {
	e := &policyEntry{
		compiled:    cp,
		key:         cp.Namespace + "/" + cp.Name,
		maxRemember: map[string]time.Duration{},
		counters:    sb.metrics.countersFor(cp.Namespace, cp.Name),
		hosts:       newPolicyHosts(cp.Spec.Hosts),
		needsGeo:    cp.ReadsGeo(),
		audit:       cp.Audit,
	}
	id := &cp.Spec.Identity
	switch {
	case id.Header != nil:
		e.header = newHeaderSource(id.Header)
	case id.JWT != nil:
		if _, err := url.Parse(id.JWT.JWKSURL); err != nil {
			return nil, fmt.Errorf("spec.identity.jwt.jwksURL: %w", err)
		}
		e.verifier = sb.verifiers.get(id.JWT)
	case id.ForwardAuth != nil:
		ff, err := sb.firstFactors.get(id.ForwardAuth, forwardAuthCA)
		if err != nil {
			return nil, err
		}
		e.firstFactor = ff
	default:
		return nil, fmt.Errorf("spec.identity: set one of header, jwt and forwardAuth")
	}
	for _, r := range cp.Spec.Rules {
		e.needsURL = e.needsURL || strings.Contains(r.When, "url")
		e.needsHeaders = e.needsHeaders || strings.Contains(r.When, "headers")
		e.needsQuery = e.needsQuery || strings.Contains(r.When, "query")
		e.needsInteractive = e.needsInteractive || strings.Contains(r.When, "interactive")
	}
	e.rules = make([]ruleInfo, len(cp.Rules))
	for i := range cp.Rules {
		r := &cp.Rules[i]
		ri := ruleInfo{rule: r, accepts: session.Rule{RememberFor: r.RememberFor, IgnoreCookie: r.IgnoreCookie}}
		for _, k := range r.Providers {
			bp := providers[k]
			if bp == nil {
				sb.log.Warn("rule names an MFAProvider that is not in force; it is skipped", "policy", e.key, "rule", r.Name, "provider", k)
				continue
			}
			if !bp.Admits(cp.Namespace) {
				sb.log.Warn("rule names an MFAProvider of another namespace that does not admit the policy's; it is skipped", "policy", e.key, "rule", r.Name, "provider", k)
				continue
			}
			ri.accepts.Providers = append(ri.accepts.Providers, k)
			e.maxRemember[k] = max(e.maxRemember[k], r.RememberFor)
		}
		e.rules[i] = ri
	}
	base := "/challenge/" + url.PathEscape(cp.Namespace) + "/" + url.PathEscape(cp.Name) + "?rd="
	if sb.publicURL != nil {
		base = strings.TrimSuffix(sb.publicURL.String(), "/") + base
	}
	e.challengeBase = base
	return e, nil
}
