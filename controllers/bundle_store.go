package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// The bundle is stored as a manifest in the bundle Secret and its
// policies in content-addressed shard Secrets (policy/shards.go). A write
// creates the shards missing first, then switches the manifest in one
// update (with the resourceVersion read), then deletes the shards that
// neither the new manifest nor the one it replaced names: a challenge
// server that read the replaced manifest a moment ago still finds its
// shards, and one that comes later reads the new manifest. A controller
// killed between the two steps leaves unreferenced shards and the old
// manifest in force; the next reconcile finishes the write and deletes
// what no manifest names.

// storedState is the bundle Secret as read at the start of a reconcile.
type storedState struct {
	secret   *corev1.Secret   // nil: there is none
	manifest *policy.Manifest // nil: none that parses (or a single-key bundle)
	hash     string
	// whole: the bundle read and every shard of the manifest is present
	// and verified.
	whole bool
}

// shardsSeen is what the controller knows of the shard Secrets: the
// decoded shards of the last manifests (by content hash), and the
// resourceVersion of each shard Secret whose data it verified.
type shardsSeen struct {
	memo     policy.ShardMemo
	mu       sync.Mutex
	verified map[string]string
	// manifest is the last manifest read or written, to write a deleted
	// bundle Secret back as it was.
	manifest *policy.Manifest
}

func (s *shardsSeen) lastManifest() *policy.Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.manifest
}

func (s *shardsSeen) setManifest(m *policy.Manifest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manifest = m
}

func (s *shardsSeen) verifiedAt(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.verified[name]
}

func (s *shardsSeen) setVerified(name, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verified == nil {
		s.verified = map[string]string{}
	}
	s.verified[name] = version
}

func (s *shardsSeen) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.verified, name)
}

// isShard says whether o is a bundle shard Secret.
func isShard(o client.Object) bool {
	return o.GetLabels()[policy.ShardLabel] == "true" && strings.HasPrefix(o.GetName(), policy.BundleSecretName+"-")
}

// readBundle reads the bundle Secret and the bundle in force. When the
// Secret is missing or its bundle cannot be read whole, the last bundle
// this controller read or wrote stands in as "last good", so that a
// deleted bundle Secret is written back as it was, policies kept in force
// by their last good entry included. Only a controller started since then
// builds afresh.
func (r *BundleReconciler) readBundle(ctx context.Context) (*storedState, *policy.Bundle, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, r.request().NamespacedName, s); err != nil {
		if apierrors.IsNotFound(err) {
			return &storedState{}, r.known.lastBundle(), nil
		}
		return nil, nil, fmt.Errorf("reading the bundle Secret: %w", err)
	}
	st := &storedState{secret: s}
	if raw, ok := s.Data[policy.ManifestKey]; ok {
		st.manifest, _ = policy.ParseManifest(raw) // one that does not parse is replaced
	}
	b, _, hash, err := policy.ReadStored(s.Data, r.fetchShard(ctx), &r.shards.memo)
	if err != nil {
		log.FromContext(ctx).Error(err, "ignoring the bundle in force: it cannot be read whole", "secret", client.ObjectKeyFromObject(s))
		return st, r.known.lastBundle(), nil
	}
	st.hash = hash
	if st.manifest != nil {
		r.shards.setManifest(st.manifest)
		st.whole = true
		for _, ref := range st.manifest.Shards {
			if ok, err := r.shardState(ctx, ref); !ok || err != nil {
				log.FromContext(ctx).Info("a bundle shard is missing or corrupt; writing it back", "shard", ref.Name, "error", err)
				st.whole = false
			}
		}
	}
	r.known.setBundle(b)
	return st, b, nil
}

// getShard reads a shard Secret from the cache, or from the API server
// when the cache has not seen it yet.
func (r *BundleReconciler) getShard(ctx context.Context, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: r.Options.Namespace, Name: name}
	err := r.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, s)
	}
	return s, err
}

func (r *BundleReconciler) fetchShard(ctx context.Context) policy.ShardFetcher {
	return func(name string) ([]byte, error) {
		s, err := r.getShard(ctx, name)
		if err != nil {
			return nil, err
		}
		return s.Data[policy.ShardKey], nil
	}
}

// shardState says whether the shard Secret of ref exists and, when it
// does, whether its data is not what ref says (err).
func (r *BundleReconciler) shardState(ctx context.Context, ref policy.ShardRef) (exists bool, err error) {
	s, err := r.getShard(ctx, ref.Name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the bundle shard Secret %s: %w", ref.Name, err)
	}
	if s.ResourceVersion != "" && r.shards.verifiedAt(ref.Name) == s.ResourceVersion {
		return true, nil
	}
	if _, err := policy.DecodeShard(ref, s.Data[policy.ShardKey]); err != nil {
		return true, err
	}
	r.shards.setVerified(ref.Name, s.ResourceVersion)
	return true, nil
}

// writeBundle stores the bundle when its content changed, or when a shard
// of the manifest in force went missing. The hash goes into the Secret
// and the log; nothing else depends on it.
func (r *BundleReconciler) writeBundle(ctx context.Context, cur *storedState, b *policy.Bundle) error {
	// The manifest replaced: the one in force, or the last one known when
	// the bundle Secret was deleted.
	base := cur.manifest
	if cur.secret == nil {
		base = r.shards.lastManifest()
	}
	previousBuckets := 0
	if base != nil {
		previousBuckets = base.Buckets
	}
	st, err := b.Split(previousBuckets)
	if err != nil {
		return fmt.Errorf("encoding the bundle: %w", err)
	}
	same := cur.manifest != nil && cur.hash == st.Hash && slices.Equal(cur.manifest.Shards, st.Manifest.Shards)
	if same && cur.whole {
		r.known.setBundle(b)
		return r.collectShards(ctx, cur.manifest)
	}
	written, size, err := r.writeShards(ctx, st)
	if err != nil {
		return err
	}
	if same {
		log.FromContext(ctx).Info("bundle shards written back", "hash", st.Hash, "shards", written)
		r.known.setBundle(b)
		return r.collectShards(ctx, cur.manifest)
	}
	switch {
	case base != nil && slices.Equal(base.Shards, st.Manifest.Shards):
		st.Manifest.Retain = base.Retain // written back as it was
	case base != nil:
		st.Manifest.Retain = retained(base, st.Manifest)
	}
	data, err := st.Manifest.Encode()
	if err != nil {
		return fmt.Errorf("encoding the bundle manifest: %w", err)
	}
	desired := BundleSecret(r.Options.Namespace, data, st.Hash)
	if cur.secret == nil {
		if err := r.Create(ctx, desired); err != nil {
			return fmt.Errorf("creating the bundle Secret: %w", err)
		}
	} else {
		current := cur.secret
		current.Labels = mergeMaps(current.Labels, desired.Labels)
		current.Data = desired.Data
		// Update carries the resourceVersion read: a concurrent writer makes
		// it fail and the reconcile starts over from what is really there.
		// It is the one switch from the old set of shards to the new.
		if err := r.Update(ctx, current); err != nil {
			return fmt.Errorf("updating the bundle Secret: %w", err)
		}
	}
	r.shards.memo.Remember(st)
	r.shards.setManifest(st.Manifest)
	r.known.setBundle(b)
	log.FromContext(ctx).Info("bundle written", "hash", st.Hash, "policies", len(b.Policies), "providers", len(b.Providers),
		"shards", len(st.Shards), "shardsWritten", written, "shardBytesWritten", size, "manifestBytes", len(data), "created", cur.secret == nil)
	return r.collectShards(ctx, st.Manifest)
}

// writeShards creates the shard Secrets of st that do not exist, and
// replaces those whose data is not what their name says.
func (r *BundleReconciler) writeShards(ctx context.Context, st *policy.StoredBundle) (written, size int, err error) {
	for i := range st.Shards {
		sh := &st.Shards[i]
		exists, err := r.shardState(ctx, sh.ShardRef)
		switch {
		case exists && err == nil:
			continue
		case exists:
			log.FromContext(ctx).Error(err, "replacing a corrupt bundle shard", "shard", sh.Name)
			if err := r.Delete(ctx, &corev1.Secret{ObjectMeta: ShardSecret(r.Options.Namespace, sh.Name, nil).ObjectMeta}); err != nil && !apierrors.IsNotFound(err) {
				return written, size, fmt.Errorf("deleting the corrupt bundle shard Secret %s: %w", sh.Name, err)
			}
			r.shards.forget(sh.Name)
		case err != nil:
			return written, size, err
		}
		data, err := sh.Compressed()
		if err != nil {
			return written, size, err
		}
		s := ShardSecret(r.Options.Namespace, sh.Name, data)
		if err := r.Create(ctx, s); err != nil {
			return written, size, fmt.Errorf("creating the bundle shard Secret %s: %w", sh.Name, err)
		}
		r.shards.setVerified(sh.Name, s.ResourceVersion)
		written, size = written+1, size+len(data)
	}
	return written, size, nil
}

// retained names the shards of the manifest replaced that the new one
// does not name: they are kept until the next switch.
func retained(old, next *policy.Manifest) []string {
	in := map[string]bool{}
	for _, r := range next.Shards {
		in[r.Name] = true
	}
	var out []string
	for _, r := range old.Shards {
		if !in[r.Name] {
			out = append(out, r.Name)
		}
	}
	return out
}

// collectShards deletes the shard Secrets the manifest in force neither
// names nor retains: those of older manifests, and those of a write that
// was cut off before its manifest switch.
func (r *BundleReconciler) collectShards(ctx context.Context, m *policy.Manifest) error {
	keep := map[string]bool{}
	for _, ref := range m.Shards {
		keep[ref.Name] = true
	}
	for _, name := range m.Retain {
		keep[name] = true
	}
	var list corev1.SecretList
	if err := r.List(ctx, &list, client.InNamespace(r.Options.Namespace), client.MatchingLabels{policy.ShardLabel: "true"}); err != nil {
		return fmt.Errorf("listing the bundle shard Secrets: %w", err)
	}
	deleted := 0
	for i := range list.Items {
		s := &list.Items[i]
		if keep[s.Name] || !isShard(s) {
			continue
		}
		if err := r.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting the bundle shard Secret %s: %w", s.Name, err)
		}
		r.shards.forget(s.Name)
		deleted++
	}
	if deleted > 0 {
		log.FromContext(ctx).Info("bundle shards no manifest names deleted", "count", deleted)
	}
	return nil
}
