package policy

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"hash/fnv"
	"sort"
)

// The bundle as it is stored in the API server: a manifest in the bundle
// Secret (providers, the list of shards, the bundle's hash) and the
// policies in shard Secrets next to it. A shard holds the policies whose
// namespace/name hashes to one of the manifest's buckets, as gzip'd JSON,
// and is named after the SHA-256 of that JSON: content-addressed, never
// changed (immutable), so that one policy edit writes one new shard and
// one manifest, and the manifest update is the single atomic switch from
// one complete set of policies to the next. See docs/bundle.md.
const (
	// ManifestKey is the bundle Secret's key holding the manifest.
	ManifestKey = "manifest.json"
	// ShardKey is a shard Secret's key holding its gzip'd policies.
	ShardKey = "policies.json.gz"
	// ShardLabel marks the shard Secrets (value "true").
	ShardLabel = "mfa.operator.dev/bundle-shard"

	// ShardTargetBytes is the most uncompressed JSON a shard holds when
	// its policies allow it: buckets double until every shard is under
	// it, and halve only when each would stay under half of it.
	ShardTargetBytes = 256 << 10
	// MaxShardBytes is the most a shard may hold compressed, well under
	// the API server's 1 MiB limit on a Secret's data.
	MaxShardBytes = 768 << 10
	// maxBuckets bounds the buckets (a policy larger than the target
	// alone cannot be split further).
	maxBuckets = 1 << 14
	// maxShardJSON bounds what a shard may decompress to.
	maxShardJSON = 64 << 20
)

// Manifest is the bundle Secret's index of a sharded bundle.
type Manifest struct {
	// Buckets is the number of buckets policies are hashed into (a power
	// of two); empty buckets have no shard.
	Buckets int `json:"buckets"`
	// Shards are the shards holding every policy of the bundle, by bucket.
	Shards []ShardRef `json:"shards"`
	// Providers are the bundle's providers (they carry Duo keys, so they
	// stay in a Secret too).
	Providers []BundleProvider `json:"providers"`
	// Retain names the shards of the manifest this one replaced: they are
	// kept until the next switch, for readers that fetch them still.
	Retain []string `json:"retain,omitempty"`
}

// ShardRef names one shard and what it must hold.
type ShardRef struct {
	Name   string `json:"name"`
	Bucket int    `json:"bucket"`
	// SHA256 is the hex SHA-256 of the shard's uncompressed JSON.
	SHA256   string `json:"sha256"`
	Policies int    `json:"policies"`
}

// Shard is one shard of a bundle being written.
type Shard struct {
	ShardRef
	raw      []byte // the canonical JSON array of the shard's policies
	policies []BundlePolicy
}

// RawSize is the size of the shard's uncompressed JSON.
func (s *Shard) RawSize() int { return len(s.raw) }

// Compressed returns the shard's data as stored (gzip). A shard the
// controller finds already written is never compressed.
func (s *Shard) Compressed() ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(s.raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxShardBytes {
		return nil, fmt.Errorf("bundle shard %s is %d bytes compressed, over the limit of %d: a single policy of its bucket is too large", s.Name, buf.Len(), MaxShardBytes)
	}
	return buf.Bytes(), nil
}

// StoredBundle is a bundle split for storage.
type StoredBundle struct {
	Manifest *Manifest
	Shards   []Shard
	// Hash is the bundle's content hash, the same as Bundle.Marshal's.
	Hash string
}

// ShardSecretName is the name of the shard Secret of a content hash.
func ShardSecretName(sha string) string {
	if len(sha) > 16 {
		sha = sha[:16]
	}
	return BundleSecretName + "-" + sha
}

// bucketOf is the bucket of a policy key among n (a power of two): a
// stable assignment, so that buckets keep their policies across edits.
func bucketOf(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() & uint32(n-1))
}

// Split encodes the bundle as a manifest and shards. previousBuckets is
// the bucket count of the manifest in force (0 when none): it is kept
// while it fits, so that shards are not all rewritten back and forth
// around a boundary.
func (b *Bundle) Split(previousBuckets int) (*StoredBundle, error) {
	sortBundle(b)
	raws := make([][]byte, len(b.Policies))
	keys := make([]string, len(b.Policies))
	h := sha256.New()
	h.Write([]byte(`{"policies":[`))
	for i := range b.Policies {
		raw, err := json.Marshal(&b.Policies[i])
		if err != nil {
			return nil, fmt.Errorf("encoding MFAPolicy %s: %w", b.Policies[i].Key(), err)
		}
		if i > 0 {
			h.Write([]byte{','})
		}
		h.Write(raw)
		raws[i], keys[i] = raw, b.Policies[i].Key()
	}
	providers, err := json.Marshal(b.Providers)
	if err != nil {
		return nil, fmt.Errorf("encoding the providers: %w", err)
	}
	writeAll(h, []byte(`],"providers":`), providers, []byte{'}'})

	n := chooseBuckets(raws, keys, previousBuckets)
	members := make([][]int, n)
	for i, k := range keys {
		members[bucketOf(k, n)] = append(members[bucketOf(k, n)], i)
	}
	st := &StoredBundle{Manifest: &Manifest{Buckets: n, Providers: b.Providers}, Hash: hex.EncodeToString(h.Sum(nil))}
	for bucket, idx := range members {
		if len(idx) == 0 {
			continue
		}
		var raw bytes.Buffer
		policies := make([]BundlePolicy, len(idx))
		raw.WriteByte('[')
		for j, i := range idx {
			if j > 0 {
				raw.WriteByte(',')
			}
			raw.Write(raws[i])
			policies[j] = b.Policies[i]
		}
		raw.WriteByte(']')
		sum := sha256.Sum256(raw.Bytes())
		sha := hex.EncodeToString(sum[:])
		ref := ShardRef{Name: ShardSecretName(sha), Bucket: bucket, SHA256: sha, Policies: len(idx)}
		st.Shards = append(st.Shards, Shard{ShardRef: ref, raw: raw.Bytes(), policies: policies})
		st.Manifest.Shards = append(st.Manifest.Shards, ref)
	}
	if st.Manifest.Shards == nil {
		st.Manifest.Shards = []ShardRef{}
	}
	return st, nil
}

func writeAll(h hash.Hash, parts ...[]byte) {
	for _, p := range parts {
		h.Write(p)
	}
}

// chooseBuckets keeps the previous bucket count while every shard stays
// under the target and does not fit in half as many; otherwise it doubles
// or halves it.
func chooseBuckets(raws [][]byte, keys []string, previous int) int {
	n := 1
	for n < previous && n < maxBuckets {
		n <<= 1
	}
	largest := func(n int) int {
		sizes := make([]int, n)
		for i, k := range keys {
			sizes[bucketOf(k, n)] += len(raws[i]) + 1
		}
		return maxOf(sizes) + 1 // each policy's comma or closing bracket, and the opening one
	}
	for n < maxBuckets && largest(n) > ShardTargetBytes {
		n <<= 1
	}
	for n > 1 && largest(n/2) <= ShardTargetBytes/2 {
		n >>= 1
	}
	return n
}

func maxOf(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// Encode returns the manifest's JSON.
func (m *Manifest) Encode() ([]byte, error) { return json.Marshal(m) }

// ParseManifest decodes the bundle Secret's manifest and checks that each
// shard it names is a shard Secret's name, so that a manifest can only
// make a reader fetch shards.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding the bundle manifest: %w", err)
	}
	for _, r := range m.Shards {
		if len(r.SHA256) != 64 || r.Name != ShardSecretName(r.SHA256) {
			return nil, fmt.Errorf("bundle manifest: shard %q is not named after its hash %q", r.Name, r.SHA256)
		}
	}
	return &m, nil
}

// DecodeShard decompresses a shard's data and checks it against ref: the
// SHA-256 of its JSON and its number of policies.
func DecodeShard(ref ShardRef, data []byte) ([]BundlePolicy, error) {
	raw, err := gunzip(data, maxShardJSON)
	if err != nil {
		return nil, fmt.Errorf("bundle shard %s: %w", ref.Name, err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != ref.SHA256 {
		return nil, fmt.Errorf("bundle shard %s is corrupt: its content hashes to %s, the manifest says %s", ref.Name, got[:16], ref.SHA256[:16])
	}
	var policies []BundlePolicy
	if err := json.Unmarshal(raw, &policies); err != nil {
		return nil, fmt.Errorf("bundle shard %s: decoding: %w", ref.Name, err)
	}
	if len(policies) != ref.Policies {
		return nil, fmt.Errorf("bundle shard %s holds %d policies, the manifest says %d", ref.Name, len(policies), ref.Policies)
	}
	return policies, nil
}

func sortBundle(b *Bundle) {
	sort.Slice(b.Policies, func(i, j int) bool { return b.Policies[i].Key() < b.Policies[j].Key() })
	sort.Slice(b.Providers, func(i, j int) bool { return b.Providers[i].Key() < b.Providers[j].Key() })
	if b.Policies == nil {
		b.Policies = []BundlePolicy{}
	}
	if b.Providers == nil {
		b.Providers = []BundleProvider{}
	}
}
