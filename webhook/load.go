package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mfa-operator/mfa-operator/internal/jwks"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
)

// loadStatus is what /readyz reports: whether a bundle and a keyring are
// in force, and why the last attempt to replace either was refused.
type loadStatus struct {
	bundleLoaded, keyringLoaded bool
	bundleErr, keyringErr       error
	// bundleHash is the hash of the bundle in force.
	bundleHash string
}

func (st *loadStatus) ready() bool { return st.bundleLoaded && st.keyringLoaded }

// loader state, guarded by Server.loadMu.
type loaderState struct {
	status loadStatus
	// bundle is the last good bundle (the "previous" of the next build in
	// standalone mode).
	bundle *policy.Bundle
	// keyringRaw is the stored form of the keyring in force, to skip
	// reloading an unchanged one.
	keyringRaw []byte
	// dir is the standalone source, once built (see configDir).
	dir *source.Dir
}

// applyBundle builds a snapshot from a bundle and swaps it in. A bundle that
// does not compile is refused whole: the last good one stays in force.
func (s *Server) applyBundle(b *policy.Bundle, hash, origin string) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	st := &s.loader.status
	if st.bundleLoaded && st.bundleHash == hash && st.bundleErr == nil {
		return nil
	}
	sn, err := s.buildSnapshot(b, hash, s.snapshot().Keyring)
	if err != nil {
		err = fmt.Errorf("bundle from %s refused: %w", origin, err)
		s.refusedLocked("bundle", err)
		return err
	}
	s.snap.Store(sn)
	s.loader.bundle = b
	st.bundleLoaded, st.bundleErr, st.bundleHash = true, nil, hash
	s.publishStatus()
	s.metrics.reloads.WithLabelValues("bundle", "success").Inc()
	s.log.Info("bundle loaded", "origin", origin, "hash", shortHash(hash), "policies", len(sn.Policies), "providers", len(sn.Providers))
	s.prefetchKeys(sn)
	return nil
}

// refuseBundle records a bundle that could not even be read.
func (s *Server) refuseBundle(err error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	s.refusedLocked("bundle", err)
}

// refuseKeyring records a keyring that could not even be read.
func (s *Server) refuseKeyring(err error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	s.refusedLocked("keyring", err)
}

// refusedLocked records a refused bundle or keyring for /readyz, the
// metrics and the log; whatever is in force stays. loadMu is held.
func (s *Server) refusedLocked(kind string, err error) {
	st := &s.loader.status
	loaded, inForce := st.keyringLoaded, ""
	if kind == "bundle" {
		st.bundleErr = err
		loaded, inForce = st.bundleLoaded, shortHash(st.bundleHash)
	} else {
		st.keyringErr = err
	}
	s.publishStatus()
	s.metrics.reloads.WithLabelValues(kind, "refused").Inc()
	if loaded {
		s.log.Error(kind+" refused; the last good "+kind+" stays in force", "error", err, "inForce", inForce)
	} else {
		s.log.Error(kind+" refused; no "+kind+" is in force yet", "error", err)
	}
}

// applyKeyring parses a stored keyring and swaps it in; a keyring that does
// not parse is refused and the last good one stays.
func (s *Server) applyKeyring(raw []byte, origin string) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	st := &s.loader.status
	if st.keyringLoaded && st.keyringErr == nil && string(raw) == string(s.loader.keyringRaw) {
		return nil
	}
	kr, err := keyring.Parse(raw)
	if err != nil {
		err = fmt.Errorf("keyring from %s refused: %w", origin, err)
		s.refusedLocked("keyring", err)
		return err
	}
	s.snap.Store(s.snapshot().withKeyring(kr))
	s.loader.keyringRaw = raw
	st.keyringLoaded, st.keyringErr = true, nil
	s.publishStatus()
	s.metrics.reloads.WithLabelValues("keyring", "success").Inc()
	s.log.Info("keyring loaded", "origin", origin, "signingKeys", len(kr.Signers()))
	return nil
}

// publishStatus makes a copy of the status for /readyz; loadMu is held.
func (s *Server) publishStatus() {
	st := s.loader.status
	s.status.Store(&st)
}

// prefetchKeys fetches, in the background, the keys of JWT issuers not
// fetched lately, so that the first request does not wait for them.
func (s *Server) prefetchKeys(sn *Snapshot) {
	seen := map[*jwks.KeySet]bool{}
	for _, e := range sn.byName {
		if e.verifier != nil && !seen[e.verifier.keys] {
			seen[e.verifier.keys] = true
			go e.verifier.keys.RefreshIfOld(context.Background())
		}
	}
}

// watch loads the configuration and keeps it up to date until ctx ends:
// the config directory in standalone mode, the bundle and keyring Secrets
// in a cluster.
func (s *Server) watch(ctx context.Context) error {
	switch {
	case s.opts.ConfigDir != "":
		return s.configDir().Run(ctx, (*sink)(s))
	case s.opts.Client != nil:
		return (&source.Cluster{Client: s.opts.Client, Namespace: s.opts.Namespace, Log: s.log}).Run(ctx, (*sink)(s))
	}
	return errors.New("no configuration source: set --config-dir (standalone) or run in a cluster")
}

// configDir is the standalone source of Options.ConfigDir.
func (s *Server) configDir() *source.Dir {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loader.dir == nil {
		s.loader.dir = &source.Dir{ConfigDir: s.opts.ConfigDir, DataDir: s.opts.DataDir, IdentityHeaders: s.opts.IdentityHeaders, Now: s.now, Log: s.log}
	}
	return s.loader.dir
}

// reloadConfigDir loads the config directory once.
func (s *Server) reloadConfigDir() { s.configDir().Reload((*sink)(s)) }

// sink is the server as the sources see it.
type sink Server

func (k *sink) ApplyBundle(b *policy.Bundle, hash, origin string) error {
	return (*Server)(k).applyBundle(b, hash, origin)
}
func (k *sink) ApplyKeyring(raw []byte, origin string) error {
	return (*Server)(k).applyKeyring(raw, origin)
}
func (k *sink) RefuseBundle(err error)  { (*Server)(k).refuseBundle(err) }
func (k *sink) RefuseKeyring(err error) { (*Server)(k).refuseKeyring(err) }

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// handleReadyz is 200 once a bundle and a keyring are in force (with a
// warning when a newer one was refused), 503 before.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	st := s.status.Load()
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
	case st.bundleErr != nil || st.keyringErr != nil:
		b.WriteString("ok, with warnings: serving the last good configuration (bundle " + shortHash(st.bundleHash) + ")\n")
	default:
		b.WriteString("ok: bundle " + shortHash(st.bundleHash) + "\n")
	}
	if st != nil {
		if st.bundleErr != nil {
			b.WriteString("warning: " + st.bundleErr.Error() + "\n")
		}
		if st.keyringErr != nil {
			b.WriteString("warning: " + st.keyringErr.Error() + "\n")
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
