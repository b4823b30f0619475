package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/hostname"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Host conflicts are judged on what the challenge server judges them on:
// the policies in the bundle (valid now, or kept at their last valid
// version), with the hosts of the version in force, through the same
// functions (hostname.Claims). A policy that lists a host but is in no
// bundle (never valid) conflicts with nobody, on either side. The policy
// being checked counts with its current hosts: when it is valid, those are
// the ones the bundle is about to hold. When the bundle changes, the
// policies whose conflicts changed are checked again.

// bundleClaims keeps the host claims of the bundle in force, parsed once
// per version of the bundle Secret.
type bundleClaims struct {
	// indexed indexes indexedOf, the claims get returned last: every
	// policy check looks its hosts up in it, so a check costs a lookup per
	// host, not a pass over every policy (see hosts_index.go).
	indexed   *hostname.Claims
	indexedOf []hostname.Claim

	mu      sync.Mutex
	version string
	claims  []hostname.Claim
	shards  shardClaims
}

// get returns the claims of the bundle Secret key (none while there is no
// bundle).
func (b *bundleClaims) get(ctx context.Context, c client.Reader, key types.NamespacedName) ([]hostname.Claim, error) {
	s := &corev1.Secret{}
	// Read only, and parsed only when its version is new: no copy of a
	// bundle of up to a megabyte for every policy checked.
	if err := c.Get(ctx, key, s, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading the bundle Secret %s: %w", key, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.ResourceVersion != b.version || b.version == "" {
		claims, ok := b.shards.of(ctx, c, s)
		b.claims = claims
		if b.version = ""; ok {
			b.version = s.ResourceVersion
		}
	}
	return b.claims, nil
}

// shardClaims keeps the host claims of each bundle shard read, by content
// hash, for the last two manifests: a new manifest reads its new shards
// only.
type shardClaims struct {
	mu       sync.Mutex
	bySHA    map[string][]hostname.Claim
	previous map[string]bool
}

// of returns the host claims of every policy of a bundle Secret (a
// manifest and its shards, read through c, or a single-key bundle), and
// whether it could be read whole; a bundle that cannot claims nothing (the
// challenge server does not load it either).
func (sc *shardClaims) of(ctx context.Context, c client.Reader, s *corev1.Secret) ([]hostname.Claim, bool) {
	if raw, ok := s.Data[policy.BundleKey]; ok {
		b, err := policy.ParseBundle(raw)
		if err != nil {
			return nil, false
		}
		return claimsOf(b.Policies), true
	}
	m, err := policy.ParseManifest(s.Data[policy.ManifestKey])
	if err != nil {
		return nil, false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var claims []hostname.Claim
	keep := map[string]bool{}
	for _, ref := range m.Shards {
		cs, ok := sc.bySHA[ref.SHA256]
		if !ok {
			shard := &corev1.Secret{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: ref.Name}, shard); err != nil {
				return nil, false
			}
			policies, err := policy.DecodeShard(ref, shard.Data[policy.ShardKey])
			if err != nil {
				return nil, false
			}
			cs = claimsOf(policies)
		}
		keep[ref.SHA256] = true
		claims = append(claims, cs...)
		if sc.bySHA == nil {
			sc.bySHA = map[string][]hostname.Claim{}
		}
		sc.bySHA[ref.SHA256] = cs
	}
	for sha := range sc.bySHA {
		if !keep[sha] && !sc.previous[sha] {
			delete(sc.bySHA, sha)
		}
	}
	sc.previous = keep
	return claims, true
}

func claimsOf(policies []policy.BundlePolicy) []hostname.Claim {
	var claims []hostname.Claim
	for i := range policies {
		p := &policies[i]
		cs, _ := hostname.ClaimsOf(p.Namespace, p.Name, p.Spec.Hosts)
		claims = append(claims, cs...)
	}
	return claims
}

// hostConflicts says, for a valid policy, which of its hosts the challenge
// server refuses on host-based lookup because of other policies in force,
// or "" when none.
func (r *MFAPolicyReconciler) hostConflicts(ctx context.Context, obj *v1alpha1.MFAPolicy) (string, error) {
	own, _ := hostname.ClaimsOf(obj.Namespace, obj.Name, obj.Spec.Hosts)
	if len(own) == 0 {
		return "", nil
	}
	// The bundle's claims of this policy (its hosts in force) need not be
	// taken out: claims of one policy never conflict (hostname.Conflict).
	index, err := r.claims.index(ctx, r.Client, types.NamespacedName{Namespace: r.Options.Namespace, Name: policy.BundleSecretName})
	if err != nil {
		return "", err
	}
	var parts []string
	for _, c := range own {
		for _, other := range index.Conflicts(c) {
			parts = append(parts, hostname.ConflictText(obj.Spec.Hosts, c, other))
		}
	}
	if len(parts) == 0 {
		return "", nil
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(". Host-based lookup (/auth, /forward-auth) refuses those hosts (403) until the conflict is resolved; "+
		"by name, where the other policy is of another namespace, the policy created first keeps answering for the hosts both name and the later one refuses them; "+
		"this policy stays in force at %s", r.Options.AuthURL(obj.Namespace, obj.Name)), nil
}

// requestsForHostConflicts maps the bundle Secret to the policies that are
// in a host conflict in it. An update maps the old and the new bundle, so
// a conflict that appears or clears is checked again on both sides. The
// shards are read through c (the cache, which has seen a manifest's
// shards before the manifest: they are written first, and one informer
// delivers the Secrets' events in order).
func requestsForHostConflicts(namespace string, c client.Reader) handler.MapFunc {
	var shards shardClaims
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		s, ok := o.(*corev1.Secret)
		if !ok || s.Namespace != namespace || s.Name != policy.BundleSecretName {
			return nil
		}
		claims, _ := shards.of(ctx, c, s)
		index := hostname.NewClaims(claims)
		seen := map[string]bool{}
		var reqs []reconcile.Request
		add := func(key string) {
			if seen[key] {
				return
			}
			seen[key] = true
			ns, name, _ := strings.Cut(key, "/")
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
		}
		for _, c := range claims {
			if others := index.Conflicts(c); len(others) > 0 {
				add(c.Policy)
			}
		}
		if len(reqs) > 0 {
			log.FromContext(ctx).V(1).Info("checking policies in a host conflict", "policies", len(reqs))
		}
		return reqs
	}
}
