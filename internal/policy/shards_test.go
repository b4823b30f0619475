package policy_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	. "github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/policy/policytest"
)

// storedData is what the controller writes: the manifest Secret's data
// and each shard Secret's data by name.
func storedData(t *testing.T, st *StoredBundle) (map[string][]byte, map[string][]byte) {
	t.Helper()
	manifest, err := st.Manifest.Encode()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	shards := map[string][]byte{}
	for i := range st.Shards {
		data, err := st.Shards[i].Compressed()
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		shards[st.Shards[i].Name] = data
	}
	return map[string][]byte{ManifestKey: manifest, BundleHashKey: []byte(st.Hash)}, shards
}

func fetchFrom(shards map[string][]byte) ShardFetcher {
	return func(name string) ([]byte, error) {
		d, ok := shards[name]
		if !ok {
			return nil, errors.New("not found")
		}
		return d, nil
	}
}

func TestSplitHashIsTheWholeBundlesHash(t *testing.T) {
	g := NewWithT(t)
	for _, n := range []int{0, 1, 40} {
		b := policytest.Bundle(n)
		_, want, err := b.Marshal()
		g.Expect(err).NotTo(HaveOccurred())
		st, err := b.Split(0)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(st.Hash).To(Equal(want), "%d policies", n)
	}
}

func TestSplitThreeThousandPoliciesRoundTripsInShardsUnderTheLimit(t *testing.T) {
	g := NewWithT(t)
	b := policytest.Bundle(3000)
	whole, hash, err := b.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	st, err := b.Split(0)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(st.Shards)).To(BeNumerically(">", 1))
	manifest, shards := storedData(t, st)
	g.Expect(len(manifest[ManifestKey])).To(BeNumerically("<", 64<<10))
	for name, d := range shards {
		g.Expect(len(d)).To(BeNumerically("<", ShardTargetBytes), name)
	}

	read, m, gotHash, err := ReadStored(manifest, fetchFrom(shards), &ShardMemo{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gotHash).To(Equal(hash))
	g.Expect(m.Shards).To(Equal(st.Manifest.Shards))
	again, _, err := read.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(again)).To(Equal(string(whole)), "the bundle read is the bundle written")
}

func TestOnePolicyEditChangesOneShard(t *testing.T) {
	g := NewWithT(t)
	b := policytest.Bundle(3000)
	before, err := b.Split(0)
	g.Expect(err).NotTo(HaveOccurred())
	b.Policies[1234].Spec.Rules[2].Multifactor.RememberFor = nil
	b.Policies[1234].Generation = 2
	after, err := b.Split(before.Manifest.Buckets)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.Manifest.Buckets).To(Equal(before.Manifest.Buckets))
	changed := 0
	for i := range after.Shards {
		if after.Shards[i].Name != before.Shards[i].Name {
			changed++
		}
	}
	g.Expect(changed).To(Equal(1))
	g.Expect(after.Hash).NotTo(Equal(before.Hash))
}

func TestBucketsKeepTheirCountUntilHalfWouldDo(t *testing.T) {
	g := NewWithT(t)
	st, err := policytest.Bundle(3000).Split(0)
	g.Expect(err).NotTo(HaveOccurred())
	n := st.Manifest.Buckets
	// A smaller bundle that would fit in fewer buckets but not in half of
	// the target keeps the count.
	smaller, err := policytest.Bundle(2000).Split(n)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(smaller.Manifest.Buckets).To(Equal(n))
	tiny, err := policytest.Bundle(10).Split(n)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tiny.Manifest.Buckets).To(Equal(1))
}

func TestReadStoredRefusesAMissingOrCorruptShard(t *testing.T) {
	st, err := policytest.Bundle(3000).Split(0)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	victim := st.Shards[1].Name
	for _, c := range []struct {
		name   string
		damage func(shards map[string][]byte)
		want   string
	}{
		{"missing", func(s map[string][]byte) { delete(s, victim) }, victim + " (" + fmt.Sprint(st.Shards[1].Policies) + " policies): not found"},
		{"other content", func(s map[string][]byte) { s[victim] = s[st.Shards[0].Name] }, victim + " is corrupt"},
		{"not gzip", func(s map[string][]byte) { s[victim] = []byte("{}") }, "not gzip data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			manifest, shards := storedData(t, st)
			c.damage(shards)
			_, _, _, err := ReadStored(manifest, fetchFrom(shards), &ShardMemo{})
			g.Expect(err).To(MatchError(ContainSubstring(c.want)))
		})
	}
}

func TestParseManifestRefusesAShardNotNamedAfterItsHash(t *testing.T) {
	g := NewWithT(t)
	_, err := ParseManifest([]byte(`{"buckets":1,"shards":[{"name":"mfa-keyring","sha256":"` + fmt.Sprintf("%064d", 0) + `","policies":1}]}`))
	g.Expect(err).To(MatchError(ContainSubstring(`shard "mfa-keyring" is not named after its hash`)))
}

func TestReadStoredReadsASingleKeyBundle(t *testing.T) {
	g := NewWithT(t)
	data, hash, err := policytest.Bundle(3).Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	b, m, got, err := ReadStored(map[string][]byte{BundleKey: data, BundleHashKey: []byte(hash)}, nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m).To(BeNil())
	g.Expect(got).To(Equal(hash))
	g.Expect(b.Policies).To(HaveLen(3))
	_, _, _, err = ReadStored(map[string][]byte{}, nil, nil)
	g.Expect(errors.Is(err, ErrNotSharded)).To(BeTrue())
}

func TestMemoFetchesOnlyNewShards(t *testing.T) {
	g := NewWithT(t)
	b := policytest.Bundle(3000)
	st, err := b.Split(0)
	g.Expect(err).NotTo(HaveOccurred())
	manifest, shards := storedData(t, st)
	memo := &ShardMemo{}
	// fetch may be called from several goroutines at once.
	var fetched atomic.Int64
	var mu sync.Mutex
	fetch := func(name string) ([]byte, error) {
		fetched.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return fetchFrom(shards)(name)
	}
	_, _, _, err = ReadStored(manifest, fetch, memo)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched.Load()).To(BeEquivalentTo(len(st.Shards)))

	b.Policies[7].Generation = 9
	st2, err := b.Split(st.Manifest.Buckets)
	g.Expect(err).NotTo(HaveOccurred())
	manifest2, shards2 := storedData(t, st2)
	fetched.Store(0)
	mu.Lock()
	shards = shards2
	mu.Unlock()
	read, _, _, err := ReadStored(manifest2, fetch, memo)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fetched.Load()).To(BeEquivalentTo(1))
	g.Expect(read.Policies).To(HaveLen(3000))
}
