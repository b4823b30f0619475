package source

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/policy/policytest"
	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
)

// shardStore writes stored bundles to a real API server the way the
// controller lays them out, one step at a time, so that a test can stop
// between the steps.
type shardStore struct {
	t  *testing.T
	c  client.Client
	ns string
}

func (s shardStore) createShard(name string, data []byte) {
	s.t.Helper()
	immutable := true
	NewWithT(s.t).Expect(s.c.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name, Labels: map[string]string{policy.ShardLabel: "true"}},
		Immutable:  &immutable, Data: map[string][]byte{policy.ShardKey: data},
	})).To(Succeed())
}

// shards creates the shards of st that do not exist; skip names one not
// to create.
func (s shardStore) shards(st *policy.StoredBundle, skip string) {
	s.t.Helper()
	for i := range st.Shards {
		sh := &st.Shards[i]
		if sh.Name == skip || s.c.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: sh.Name}, &corev1.Secret{}) == nil {
			continue
		}
		data, err := sh.Compressed()
		NewWithT(s.t).Expect(err).NotTo(HaveOccurred())
		s.createShard(sh.Name, data)
	}
}

// manifest switches the bundle Secret to st.
func (s shardStore) manifest(st *policy.StoredBundle) {
	s.t.Helper()
	g := NewWithT(s.t)
	data, err := st.Manifest.Encode()
	g.Expect(err).NotTo(HaveOccurred())
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: policy.BundleSecretName}}
	err = s.c.Get(context.Background(), client.ObjectKeyFromObject(sec), sec)
	sec.Data = map[string][]byte{policy.ManifestKey: data, policy.BundleHashKey: []byte(st.Hash)}
	if err == nil {
		g.Expect(s.c.Update(context.Background(), sec)).To(Succeed())
	} else {
		g.Expect(s.c.Create(context.Background(), sec)).To(Succeed())
	}
}

// applied returns the hashes the sink put in force, checking that each
// bundle it was given is the whole bundle of its hash.
func (r *recorder) applied(t *testing.T) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, b := range r.bundles {
		_, h, err := b.Marshal()
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		NewWithT(t).Expect(h).To(Equal(r.hashes[i]), "bundle %d put in force is whole", i)
	}
	return append([]string(nil), r.hashes...)
}

func (r *recorder) refusedWith(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.refused {
		if strings.Contains(err.Error(), substr) {
			return true
		}
	}
	return false
}

// TestClusterPutsInForceOnlyWholeShardedBundles runs against a real API
// server: a bundle of 1,500 policies in shards is loaded; a manifest that
// names a shard not written yet, or a shard whose content is not its
// hash's, is refused while the bundle before stays in force, and is put
// in force once its shard is right, without the manifest changing.
func TestClusterPutsInForceOnlyWholeShardedBundles(t *testing.T) {
	g := NewWithT(t)
	ns := "mfa-system"
	c := storetest.CoreClient(t, ns)
	store := shardStore{t: t, c: c, ns: ns}

	b := policytest.Bundle(1500)
	v1, err := b.Split(0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(v1.Shards)).To(BeNumerically(">=", 2))
	store.shards(v1, "")
	store.manifest(v1)

	sink := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	src := &Cluster{Client: c, Namespace: ns, Log: slog.New(slog.DiscardHandler)}
	done := make(chan error)
	go func() { done <- src.Run(ctx, sink) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := 30 * time.Second
	g.Eventually(func() []string { return sink.applied(t) }, wait, 50*time.Millisecond).Should(Equal([]string{v1.Hash}))

	t.Run("a shard not written yet", func(t *testing.T) {
		g := NewWithT(t)
		b.Policies[10].Generation = 2
		v2, err := b.Split(v1.Manifest.Buckets)
		g.Expect(err).NotTo(HaveOccurred())
		var missing string
		for _, sh := range v2.Shards {
			if !strings.Contains(strings.Join(shardNames(v1), ","), sh.Name) {
				missing = sh.Name
			}
		}
		g.Expect(missing).NotTo(BeEmpty())
		store.manifest(v2)
		g.Eventually(func() bool { return sink.refusedWith("bundle shard " + missing) }, wait, 50*time.Millisecond).Should(BeTrue())
		g.Expect(sink.refusedWith("not found")).To(BeTrue())
		g.Expect(sink.applied(t)).To(Equal([]string{v1.Hash}), "the bundle before stays in force")

		store.shards(v2, "")
		g.Eventually(func() []string { return sink.applied(t) }, wait, 50*time.Millisecond).Should(Equal([]string{v1.Hash, v2.Hash}))
		v1 = v2
	})

	t.Run("a shard whose content is not its hash's", func(t *testing.T) {
		g := NewWithT(t)
		b.Policies[700].Generation = 2
		v3, err := b.Split(v1.Manifest.Buckets)
		g.Expect(err).NotTo(HaveOccurred())
		var corrupt *policy.Shard
		for i := range v3.Shards {
			if !strings.Contains(strings.Join(shardNames(v1), ","), v3.Shards[i].Name) {
				corrupt = &v3.Shards[i]
			}
		}
		g.Expect(corrupt).NotTo(BeNil())
		other, err := v3.Shards[0].Compressed()
		if v3.Shards[0].Name == corrupt.Name {
			other, err = v3.Shards[1].Compressed()
		}
		g.Expect(err).NotTo(HaveOccurred())
		store.createShard(corrupt.Name, other)
		store.shards(v3, corrupt.Name)
		store.manifest(v3)
		g.Eventually(func() bool { return sink.refusedWith("bundle shard " + corrupt.Name + " is corrupt") }, wait, 50*time.Millisecond).Should(BeTrue())
		g.Expect(sink.applied(t)[len(sink.applied(t))-1]).To(Equal(v1.Hash), "the bundle before stays in force")

		g.Expect(c.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: corrupt.Name}})).To(Succeed())
		store.shards(v3, "")
		g.Eventually(func() string { h := sink.applied(t); return h[len(h)-1] }, wait, 50*time.Millisecond).Should(Equal(v3.Hash))
	})
}

func shardNames(st *policy.StoredBundle) []string {
	var out []string
	for _, sh := range st.Shards {
		out = append(out, sh.Name)
	}
	return out
}
