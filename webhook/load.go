package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
)

// config is the configuration in force and its loading: a source hands it
// bundles and keyrings (it is a source.Sink), it builds snapshots and
// swaps them in, and /readyz reports what it holds.
type config struct {
	builder *snapshotBuilder
	metrics *metrics
	log     *slog.Logger

	snap atomic.Pointer[snapshot]
	// mu serialises loads; state is what they share; status is the copy
	// /readyz reads.
	mu     sync.Mutex
	state  loaderState
	status atomic.Pointer[loadStatus]
	// onReady, when set, is told whether a bundle and a keyring are in
	// force each time the status changes (the gRPC health service).
	onReady func(ready bool)
}

func newConfig(b *snapshotBuilder, m *metrics, log *slog.Logger) *config {
	c := &config{builder: b, metrics: m, log: log}
	c.snap.Store(emptySnapshot())
	return c
}

// A config directory tells the configuration which of its objects it refused.
var _ source.ObjectSink = (*config)(nil)

// snapshot returns the configuration in force; never nil (empty, with a
// nil Keyring, before the first load). A request reads it once.
func (c *config) snapshot() *snapshot { return c.snap.Load() }

// loadStatus is what /readyz reports: whether a bundle and a keyring are
// in force, and why the last attempt to replace either was refused.
type loadStatus struct {
	bundleLoaded, keyringLoaded bool
	bundleErr, keyringErr       error
	// bundleHash is the hash of the bundle in force.
	bundleHash string
	// refusedObjects are the objects of a config directory that are not
	// valid (standalone mode), as source.RefusedObject says them.
	refusedObjects []string
}

// warnings are what /readyz adds after its first line.
func (st *loadStatus) warnings() []string {
	var w []string
	for _, err := range []error{st.bundleErr, st.keyringErr} {
		if err != nil {
			w = append(w, err.Error())
		}
	}
	return append(w, st.refusedObjects...)
}

func (st *loadStatus) ready() bool { return st.bundleLoaded && st.keyringLoaded }

// loaderState is guarded by config.mu.
type loaderState struct {
	status loadStatus
	// keyringRaw is the stored form of the keyring in force, to skip
	// reloading an unchanged one.
	keyringRaw []byte
}

// ApplyBundle builds a snapshot from a bundle and swaps it in. A bundle
// that does not compile is refused whole: the last good one stays in
// force.
func (c *config) ApplyBundle(b *policy.Bundle, hash, origin string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.state.status
	if st.bundleLoaded && st.bundleHash == hash && st.bundleErr == nil {
		return nil
	}
	sn, err := c.builder.build(b, hash, c.snapshot().Keyring)
	if err != nil {
		err = fmt.Errorf("bundle from %s refused: %w", origin, err)
		c.refusedLocked("bundle", err)
		return err
	}
	c.snap.Store(sn)
	st.bundleLoaded, st.bundleErr, st.bundleHash = true, nil, hash
	c.publishStatus()
	c.metrics.reloads.WithLabelValues("bundle", "success").Inc()
	c.log.Info("bundle loaded", "origin", origin, "hash", shortHash(hash), "policies", len(sn.Policies), "providers", len(sn.Providers))
	prefetchKeys(sn)
	return nil
}

// RefuseBundle records a bundle that could not even be read.
func (c *config) RefuseBundle(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refusedLocked("bundle", err)
}

// RefuseObjects records the objects of a config directory found not valid
// on its last read, for /readyz (a source.ObjectSink).
func (c *config) RefuseObjects(refused []source.RefusedObject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state.status.refusedObjects = nil
	for _, o := range refused {
		c.state.status.refusedObjects = append(c.state.status.refusedObjects, o.String())
	}
	c.publishStatus()
}

// RefuseKeyring records a keyring that could not even be read.
func (c *config) RefuseKeyring(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refusedLocked("keyring", err)
}

// refusedLocked records a refused bundle or keyring for /readyz, the
// metrics and the log; whatever is in force stays. mu is held.
//
// Before anything was loaded, a bundle or keyring that is not there yet
// (source.ErrMissing) is not a fault: the controller has not written it
// yet. That wait is logged at INFO, once while it lasts, and is not
// counted as a refusal; /readyz still says what is missing.
func (c *config) refusedLocked(kind string, err error) {
	st := &c.state.status
	loaded, inForce, last := st.keyringLoaded, "", &st.keyringErr
	if kind == "bundle" {
		loaded, inForce, last = st.bundleLoaded, shortHash(st.bundleHash), &st.bundleErr
	}
	previous := *last
	*last = err
	c.publishStatus()
	if !loaded && errors.Is(err, source.ErrMissing) {
		level := slog.LevelInfo
		if previous != nil && errors.Is(previous, source.ErrMissing) && previous.Error() == err.Error() {
			level = slog.LevelDebug // still waiting, nothing new
		}
		c.log.Log(context.Background(), level, "waiting for the "+kind+"; nothing is in force yet", "reason", err)
		return
	}
	c.metrics.reloads.WithLabelValues(kind, "refused").Inc()
	if loaded {
		c.log.Error(kind+" refused; the last good "+kind+" stays in force", "error", err, "inForce", inForce)
	} else {
		c.log.Error(kind+" refused; no "+kind+" is in force yet", "error", err)
	}
}

// ApplyKeyring parses a stored keyring and swaps it in; a keyring that
// does not parse is refused and the last good one stays.
func (c *config) ApplyKeyring(raw []byte, origin string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.state.status
	if st.keyringLoaded && st.keyringErr == nil && string(raw) == string(c.state.keyringRaw) {
		return nil
	}
	kr, err := keyring.Parse(raw)
	if err != nil {
		err = fmt.Errorf("keyring from %s refused: %w", origin, err)
		c.refusedLocked("keyring", err)
		return err
	}
	c.snap.Store(c.snapshot().withKeyring(kr))
	c.state.keyringRaw = raw
	st.keyringLoaded, st.keyringErr = true, nil
	c.publishStatus()
	c.metrics.reloads.WithLabelValues("keyring", "success").Inc()
	c.log.Info("keyring loaded", "origin", origin, "signingKeys", len(kr.Signers()))
	return nil
}

// publishStatus makes a copy of the status for /readyz; mu is held.
func (c *config) publishStatus() {
	st := c.state.status
	c.status.Store(&st)
	if c.onReady != nil {
		c.onReady(st.ready())
	}
}

// prefetchKeys fetches, in the background, the keys of JWT issuers not
// fetched lately, so that the first request does not wait for them.
func prefetchKeys(sn *snapshot) {
	seen := map[*jwks.KeySet]bool{}
	for _, e := range sn.byName {
		if e.verifier != nil && !seen[e.verifier.keys] {
			seen[e.verifier.keys] = true
			go e.verifier.keys.RefreshIfOld(context.Background())
		}
	}
}

// handleReadyz is 200 once a bundle and a keyring are in force (with a
// warning when a newer one was refused), 503 before.
func (c *config) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	st := c.status.Load()
	var b strings.Builder
	code := http.StatusOK
	switch {
	case st == nil || !st.ready():
		code = http.StatusServiceUnavailable
		b.WriteString("not ready:")
		if st == nil || !st.bundleLoaded {
			b.WriteString(" no bundle loaded yet;")
		}
		if st == nil || !st.keyringLoaded {
			b.WriteString(" no keyring loaded yet;")
		}
		b.WriteString("\n")
	case len(st.warnings()) > 0:
		b.WriteString("ok, with warnings: serving the last good configuration (bundle " + shortHash(st.bundleHash) + ")\n")
	default:
		b.WriteString("ok: bundle " + shortHash(st.bundleHash) + "\n")
	}
	if st != nil {
		for _, w := range st.warnings() {
			b.WriteString("warning: " + w + "\n")
		}
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
