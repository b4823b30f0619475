package webhook

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// The Duo clients.

// duoClients holds one client per Duo provider, for as long as its host
// and credentials stay the same.
type duoClients struct {
	mu sync.Mutex
	m  map[string]*duoClientEntry
}

type duoClientEntry struct {
	apiHost string
	creds   policy.DuoCredentials
	client  duo.Client
}

// get returns the client of a Duo provider. A provider this server cannot
// build a client for is a configuration error, never an unreachable Duo:
// it fails closed. A host that is not a Duo API host is refused unless the
// provider trusts its own CA for it, as the controller requires.
func (dc *duoClients) get(bp *policy.BundleProvider) (duo.Client, error) {
	spec := bp.Spec.Duo
	if spec == nil || bp.Duo == nil {
		return nil, fmt.Errorf("MFAProvider %s has no Duo settings or credentials in the bundle", bp.Key())
	}
	if !duo.ValidAPIHost(spec.APIHost) && bp.Duo.CABundle == "" {
		return nil, fmt.Errorf("MFAProvider %s: spec.duo.apiHost %q is not a Duo API host and no caBundleRef is set", bp.Key(), spec.APIHost)
	}
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if e := dc.m[bp.Key()]; e != nil && e.apiHost == spec.APIHost && e.creds == *bp.Duo {
		return e.client, nil
	}
	c, err := duo.New(spec.APIHost, *bp.Duo, duo.WithUserAgent("mfa-operator-webhook"))
	if err != nil {
		return nil, fmt.Errorf("MFAProvider %s: %w", bp.Key(), err)
	}
	dc.m[bp.Key()] = &duoClientEntry{apiHost: spec.APIHost, creds: *bp.Duo, client: c}
	return c, nil
}

// client returns the provider's client or answers with a page: a
// configuration this server cannot use fails closed.
func (d *duoPages) client(w http.ResponseWriter, cr *challengeRequest) (duo.Client, bool) {
	c, err := d.clients.get(cr.provider)
	if err == nil {
		return c, true
	}
	d.c.s.countChallenge(cr.providerKey(), challengeUnavailable)
	d.c.s.log.Error("Duo provider unusable; failing closed", "policy", cr.policy.Namespace+"/"+cr.policy.Name,
		"provider", cr.providerKey(), "user", cr.user(), "error", err.Error())
	d.c.renderMessage(w, cr, message{
		status: http.StatusServiceUnavailable, title: "Duo is not available", alert: true,
		text:       "Duo verification is not set up correctly, so your second step cannot be checked.",
		details:    []string{"Tell the administrator (MFAProvider " + cr.providerKey() + ")."},
		retryAfter: 30 * time.Second,
	})
	return nil, false
}
