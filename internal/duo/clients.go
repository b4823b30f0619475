package duo

import (
	"fmt"
	"sync"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Clients holds one client per Duo provider, for as long as its host and
// credentials stay the same: a reload that leaves a provider alone keeps
// its connections, one that changes its host or keys builds a new client.
type Clients struct {
	opts []Option

	mu sync.Mutex
	m  map[string]*clientEntry
}

type clientEntry struct {
	apiHost string
	creds   policy.DuoCredentials
	client  Client
}

// NewClients returns an empty cache whose clients are built with opts.
func NewClients(opts ...Option) *Clients {
	return &Clients{opts: opts, m: map[string]*clientEntry{}}
}

// Get returns the client of a Duo provider. A provider this server cannot
// build a client for is a configuration error, never an unreachable Duo:
// it fails closed. A host that is not a Duo API host is refused unless the
// provider trusts its own CA for it, as the controller requires.
func (cs *Clients) Get(bp *policy.BundleProvider) (Client, error) {
	spec := bp.Spec.Duo
	if spec == nil || bp.Duo == nil {
		return nil, fmt.Errorf("MFAProvider %s has no Duo settings or credentials in the bundle", bp.Key())
	}
	if !ValidAPIHost(spec.APIHost) && bp.Duo.CABundle == "" {
		return nil, fmt.Errorf("MFAProvider %s: spec.duo.apiHost %q is not a Duo API host and no caBundleRef is set", bp.Key(), spec.APIHost)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if e := cs.m[bp.Key()]; e != nil && e.apiHost == spec.APIHost && e.creds == *bp.Duo {
		return e.client, nil
	}
	c, err := New(spec.APIHost, *bp.Duo, cs.opts...)
	if err != nil {
		return nil, fmt.Errorf("MFAProvider %s: %w", bp.Key(), err)
	}
	cs.m[bp.Key()] = &clientEntry{apiHost: spec.APIHost, creds: *bp.Duo, client: c}
	return c, nil
}
