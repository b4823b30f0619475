package controllers_test

import (
	"maps"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/policy/policytest"
)

// storedIn is what the API server holds of the bundle in ns: the bundle
// Secret, the bundle read through it, and the shard Secrets by name.
type storedIn struct {
	manifest *corev1.Secret
	bundle   *policy.Bundle
	hash     string
	shards   map[string]*corev1.Secret
}

func readStored(t *testing.T, ns string) storedIn {
	t.Helper()
	g := NewWithT(t)
	s := storedIn{manifest: &corev1.Secret{}, shards: map[string]*corev1.Secret{}}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: policy.BundleSecretName}, s.manifest)).To(Succeed())
	var err error
	s.bundle, _, s.hash, err = policy.ReadStored(s.manifest.Data, fetchShard(ns), nil)
	g.Expect(err).NotTo(HaveOccurred())
	var list corev1.SecretList
	g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{policy.ShardLabel: "true"})).To(Succeed())
	for i := range list.Items {
		s.shards[list.Items[i].Name] = &list.Items[i]
	}
	return s
}

func manifestOf(t *testing.T, s storedIn) *policy.Manifest {
	t.Helper()
	m, err := policy.ParseManifest(s.manifest.Data[policy.ManifestKey])
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return m
}

func shardNames(m *policy.Manifest) []string {
	var out []string
	for _, r := range m.Shards {
		out = append(out, r.Name)
	}
	return out
}

// TestBundleOverTheOldCeilingIsStoredInShards: 3,000 policies (their
// bundle as one JSON is over the 1 MiB a Secret may hold) are stored as a
// manifest and immutable shards, and read back whole.
func TestBundleOverTheOldCeilingIsStoredInShards(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	r := newBundleReconciler(ns, false)
	b := policytest.Bundle(3000)
	whole, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(whole)).To(BeNumerically(">", 1<<20), "the bundle as one JSON is over the limit of a Secret")

	g.Expect(r.StoreBundle(ctx, b)).To(Succeed())
	s := readStored(t, ns)
	g.Expect(s.hash).To(Equal(hash))
	g.Expect(s.manifest.Data).NotTo(HaveKey(policy.BundleKey))
	again, _, err := s.bundle.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(again)).To(Equal(string(whole)), "the bundle read is the bundle written")
	m := manifestOf(t, s)
	g.Expect(len(m.Shards)).To(BeNumerically(">", 1))
	g.Expect(slices.Sorted(maps.Keys(s.shards))).To(Equal(slices.Sorted(slices.Values(shardNames(m)))))
	for name, sh := range s.shards {
		g.Expect(sh.Immutable).To(HaveValue(BeTrue()), name)
		g.Expect(len(sh.Data[policy.ShardKey])).To(BeNumerically("<", policy.ShardTargetBytes), name)
	}

	// A controller that reads it takes it as the bundle in force.
	read, err := newBundleReconciler(ns, false).BundleRead(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(read.Policies).To(HaveLen(3000))
}

// TestOnePolicyEditWritesOneShard: an edit of one policy among 3,000
// creates one shard and updates the manifest; the shard it replaces is
// kept until the next switch, then deleted.
func TestOnePolicyEditWritesOneShard(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	r := newBundleReconciler(ns, false)
	b := policytest.Bundle(3000)
	g.Expect(r.StoreBundle(ctx, b)).To(Succeed())
	first := readStored(t, ns)

	b.Policies[42].Generation = 2
	g.Expect(r.StoreBundle(ctx, b)).To(Succeed())
	second := readStored(t, ns)
	g.Expect(second.hash).NotTo(Equal(first.hash))
	added := slices.DeleteFunc(slices.Collect(maps.Keys(second.shards)), func(n string) bool { return first.shards[n] != nil })
	g.Expect(added).To(HaveLen(1), "one shard written")
	m := manifestOf(t, second)
	g.Expect(m.Retain).To(HaveLen(1), "the shard replaced is kept for readers of the manifest before")
	g.Expect(second.shards).To(HaveKey(m.Retain[0]))
	g.Expect(second.shards).To(HaveLen(len(first.shards) + 1))

	b.Policies[2042].Generation = 2
	g.Expect(r.StoreBundle(ctx, b)).To(Succeed())
	third := readStored(t, ns)
	g.Expect(third.shards).NotTo(HaveKey(m.Retain[0]), "deleted at the next switch")
	g.Expect(third.shards).To(HaveLen(len(manifestOf(t, third).Shards) + len(manifestOf(t, third).Retain)))
}

// TestMissingCorruptOrStrayShards: a deleted shard is written back, one
// replaced by other content is replaced again, and one no manifest names
// (a write cut off before its switch) is deleted; the manifest in force
// is not touched.
func TestMissingCorruptOrStrayShards(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	r := newBundleReconciler(ns, false)
	b := policytest.Bundle(1500)
	g.Expect(r.StoreBundle(ctx, b)).To(Succeed())
	before := readStored(t, ns)
	m := manifestOf(t, before)
	g.Expect(len(m.Shards)).To(BeNumerically(">=", 2))
	missing, corrupt := m.Shards[0].Name, m.Shards[1].Name

	g.Expect(k8sClient.Delete(ctx, before.shards[missing])).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, before.shards[corrupt])).To(Succeed())
	create(t, controllers.ShardSecret(ns, corrupt, before.shards[missing].Data[policy.ShardKey]))
	stray := policy.ShardSecretName("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	create(t, controllers.ShardSecret(ns, stray, []byte("left by a write cut off")))
	_, err := newBundleReconciler(ns, false).BundleRead(ctx)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(r.StoreBundle(ctx, b)).To(Succeed())
	after := readStored(t, ns)
	g.Expect(after.manifest.ResourceVersion).To(Equal(before.manifest.ResourceVersion), "the manifest is not rewritten")
	g.Expect(after.hash).To(Equal(before.hash))
	g.Expect(after.shards).To(HaveKey(missing))
	g.Expect(after.shards[corrupt].UID).NotTo(Equal(before.shards[corrupt].UID))
	g.Expect(after.shards).NotTo(HaveKey(stray))
}

// TestSingleKeyBundleIsReadAndRewrittenAsShards: a bundle Secret written
// by an earlier version (the whole bundle under one key) is the bundle in
// force, then rewritten as a manifest and shards.
func TestSingleKeyBundleIsReadAndRewrittenAsShards(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	b := policytest.Bundle(20)
	data, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.BundleSecretName},
		Data: map[string][]byte{policy.BundleKey: data, policy.BundleHashKey: []byte(hash)}})
	r := newBundleReconciler(ns, false)
	read, err := r.BundleRead(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(read.Policies).To(HaveLen(20))

	g.Expect(r.StoreBundle(ctx, read)).To(Succeed())
	s := readStored(t, ns)
	g.Expect(s.manifest.Data).NotTo(HaveKey(policy.BundleKey))
	g.Expect(s.hash).To(Equal(hash), "the same content, the same hash")
	g.Expect(s.bundle.Policies).To(HaveLen(20))
}
