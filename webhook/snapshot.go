package webhook

import (
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Snapshot is the configuration in force: compiled policies, providers and
// the keyring. It is immutable; a reload builds a new one and swaps it
// atomically, so a request sees one consistent configuration.
type Snapshot struct {
	// Policies by namespace/name.
	Policies map[string]*policy.CompiledPolicy
	// Providers by namespace/name.
	Providers map[string]*policy.BundleProvider
	// Keyring seals cookies and signs assertions; nil until one is loaded.
	Keyring *keyring.Keyring
	// BundleHash identifies the bundle the snapshot was built from.
	BundleHash string
	// LoadedAt is when the snapshot was built.
	LoadedAt time.Time

	byName     map[policyName]*policyEntry
	byPolicy   map[*policy.CompiledPolicy]*policyEntry
	exactHosts map[string]*policyEntry
	// wildcardHosts maps a suffix (".example.com" for "*.example.com") to
	// its policy.
	wildcardHosts map[string]*policyEntry
}

type policyName struct{ namespace, name string }

// policyEntry is a compiled policy and what the hot path derives from it
// once per snapshot.
type policyEntry struct {
	compiled *policy.CompiledPolicy
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		Policies:      map[string]*policy.CompiledPolicy{},
		Providers:     map[string]*policy.BundleProvider{},
		byName:        map[policyName]*policyEntry{},
		byPolicy:      map[*policy.CompiledPolicy]*policyEntry{},
		exactHosts:    map[string]*policyEntry{},
		wildcardHosts: map[string]*policyEntry{},
	}
}

// Policy returns the policy namespace/name, or nil.
func (sn *Snapshot) Policy(namespace, name string) *policy.CompiledPolicy {
	if e := sn.byName[policyName{namespace, name}]; e != nil {
		return e.compiled
	}
	return nil
}

// PolicyForHost returns the policy serving host (exact match first, then
// the longest wildcard), or nil.
func (sn *Snapshot) PolicyForHost(host string) *policy.CompiledPolicy {
	if e := sn.entryForHost(host); e != nil {
		return e.compiled
	}
	return nil
}

func (sn *Snapshot) entryForHost(host string) *policyEntry {
	host = strings.ToLower(host)
	if e := sn.exactHosts[host]; e != nil {
		return e
	}
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			if e := sn.wildcardHosts[host[i:]]; e != nil {
				return e
			}
		}
	}
	return nil
}

// Provider returns the provider namespace/name, or nil.
func (sn *Snapshot) Provider(namespace, name string) *policy.BundleProvider {
	return sn.Providers[namespace+"/"+name]
}

// snapshot returns the configuration in force; never nil (empty, with a
// nil Keyring, before the first load).
func (s *Server) snapshot() *Snapshot { return s.snap.Load() }

// keyring returns the keyring in force, nil before the first load.
func (s *Server) keyring() *keyring.Keyring { return s.snap.Load().Keyring }
