package policy

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// ShardFetcher returns the data (ShardKey) of the shard Secret of that
// name.
type ShardFetcher func(name string) ([]byte, error)

// ErrNotSharded is returned by ReadStored for a bundle Secret that has
// neither a manifest nor a single-key bundle.
var ErrNotSharded = errors.New("no bundle")

// ReadStored reads a bundle from the bundle Secret's data: a manifest and
// the shards it names (fetched unless memo holds them), or a bundle of an
// earlier version held whole under BundleKey. It returns the bundle and
// its hash only when every part is present and verified: a reader never
// takes half of one update.
func ReadStored(data map[string][]byte, fetch ShardFetcher, memo *ShardMemo) (*Bundle, *Manifest, string, error) {
	if raw, ok := data[BundleKey]; ok {
		b, err := ParseBundle(raw)
		if err != nil {
			return nil, nil, "", err
		}
		hash := string(data[BundleHashKey])
		if hash == "" {
			sum := sha256.Sum256(raw)
			hash = hex.EncodeToString(sum[:])
		}
		return b, nil, hash, nil
	}
	raw, ok := data[ManifestKey]
	if !ok {
		return nil, nil, "", fmt.Errorf("%w: neither key %q nor %q", ErrNotSharded, ManifestKey, BundleKey)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, nil, "", err
	}
	hash := string(data[BundleHashKey])
	if hash == "" {
		return nil, nil, "", fmt.Errorf("the bundle manifest has no %q", BundleHashKey)
	}
	b, err := m.Assemble(fetch, memo)
	if err != nil {
		return nil, nil, "", err
	}
	return b, m, hash, nil
}

// fetchWorkers is how many shards Assemble reads and decodes at once.
const fetchWorkers = 4

// Assemble reads every shard of the manifest (those memo does not hold,
// a few at a time; fetch must allow that) and returns the bundle they
// make, or the first shard missing or not verified.
func (m *Manifest) Assemble(fetch ShardFetcher, memo *ShardMemo) (*Bundle, error) {
	decoded := make([][]BundlePolicy, len(m.Shards))
	var todo []int
	for i, r := range m.Shards {
		if p, ok := memo.get(r.SHA256); ok {
			decoded[i] = p
		} else {
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 && fetch == nil {
		return nil, fmt.Errorf("bundle shard %s: no way to read shards here", m.Shards[todo[0]].Name)
	}
	errs := make([]error, len(m.Shards))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(fetchWorkers, len(todo)) {
		wg.Go(func() {
			for k := int(next.Add(1)) - 1; k < len(todo); k = int(next.Add(1)) - 1 {
				i := todo[k]
				r := m.Shards[i]
				data, err := fetch(r.Name)
				if err != nil {
					errs[i] = fmt.Errorf("bundle shard %s (%d policies): %w", r.Name, r.Policies, err)
					continue
				}
				decoded[i], errs[i] = DecodeShard(r, data)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	total := 0
	for _, r := range m.Shards {
		total += r.Policies
	}
	b := &Bundle{Policies: make([]BundlePolicy, 0, total), Providers: m.Providers}
	seen := make(map[string]bool, total)
	keep := make(map[string]bool, len(m.Shards))
	for i, r := range m.Shards {
		for k := range decoded[i] {
			key := decoded[i][k].Key()
			if seen[key] {
				return nil, fmt.Errorf("bundle shard %s: MFAPolicy %s is in two shards", r.Name, key)
			}
			seen[key] = true
		}
		b.Policies = append(b.Policies, decoded[i]...)
		keep[r.SHA256] = true
		memo.put(r.SHA256, decoded[i])
	}
	memo.keepOnly(keep)
	sortBundle(b)
	return b, nil
}

// ShardMemo keeps the decoded shards of the last two manifests read, by
// content hash, so that a new manifest fetches only its new shards. What
// it holds is verified content and is never modified. A nil memo keeps
// nothing.
type ShardMemo struct {
	mu     sync.Mutex
	shards map[string][]BundlePolicy
	last   map[string]bool
}

func (m *ShardMemo) get(sha string) ([]BundlePolicy, bool) {
	if m == nil {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.shards[sha]
	return p, ok
}

func (m *ShardMemo) put(sha string, p []BundlePolicy) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shards == nil {
		m.shards = map[string][]BundlePolicy{}
	}
	m.shards[sha] = p
}

// Remember records the shards of a bundle just written, as if read.
func (m *ShardMemo) Remember(st *StoredBundle) {
	if m == nil {
		return
	}
	keep := map[string]bool{}
	for _, s := range st.Shards {
		keep[s.SHA256] = true
		m.put(s.SHA256, s.policies)
	}
	m.keepOnly(keep)
}

func (m *ShardMemo) keepOnly(keep map[string]bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for sha := range m.shards {
		if !keep[sha] && !m.last[sha] {
			delete(m.shards, sha)
		}
	}
	m.last = keep
}

// gunzip decompresses data, refusing more than limit bytes.
func gunzip(data []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not gzip data: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("decompresses to more than %d bytes", limit)
	}
	return raw, nil
}
