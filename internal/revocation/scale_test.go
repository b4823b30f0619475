package revocation

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/store"
)

// scaleN reads a count from the environment, else def.
func scaleN(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkScale measures the revocation design against the local API
// server: MFA_SCALE_ENROLLED enrolment Secrets written through the store
// (default 10,000), MFA_SCALE_REVOKED users revoked within MaxAge
// (default 100,000, the worst case of every user revoked), then what one
// replica holds in memory, the bytes one more revocation sends to every
// replica's watch, and how long until a replica has it. It runs once,
// whatever b.N.
//
//	go test ./internal/revocation -run XXX -bench Scale -benchtime 1x
func BenchmarkScale(b *testing.B) {
	enrolled, revoked := scaleN("MFA_SCALE_ENROLLED", 10000), scaleN("MFA_SCALE_REVOKED", 100000)
	ctx := context.Background()
	c, err := client.NewWithWatch(rest.CopyConfig(cfg), client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("scale-%d", time.Now().UnixNano())
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	for range b.N {
	}

	// Enrolled users, through the store code (8 writers).
	st := store.NewSecretStore(c, ns)
	started := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < enrolled; i += 8 {
				_, err := st.Update(ctx, store.Key{Provider: "apps/totp", User: fmt.Sprintf("user-%06d@example.com", i)}, func(e *store.Enrollment) error {
					e.TOTP = &store.TOTPEnrollment{SealedSecret: make([]byte, 60), Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1", Created: time.Now()}
					e.RecoveryCodeHashes = make([]string, 10)
					for j := range e.RecoveryCodeHashes {
						e.RecoveryCodeHashes[j] = fmt.Sprintf("%064d", j)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	b.Logf("%d enrolment Secrets written through the store in %s", enrolled, time.Since(started).Round(time.Millisecond))

	// Revoked users: the shards written whole, as Revoke leaves them.
	now := time.Now()
	shards := map[string]*corev1.ConfigMap{}
	for i := range revoked {
		user := fmt.Sprintf("user-%06d@example.com", i)
		name := ShardName(user)
		cm := shards[name]
		if cm == nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
				Labels: map[string]string{KindLabel: KindRevocations, ManagedByLabel: ManagedByValue}}, Data: map[string]string{}}
			shards[name] = cm
		}
		cm.Data[entryKey(user)] = encodeEntry(user, now.UnixNano())
	}
	total, largest := 0, 0
	for _, cm := range shards {
		size := 0
		for k, v := range cm.Data {
			size += len(k) + len(v)
		}
		total += size
		largest = max(largest, size)
		if err := c.Create(ctx, cm); err != nil {
			b.Fatalf("creating %s (%d bytes): %v", cm.Name, size, err)
		}
	}
	b.Logf("%d revoked users in %d shards: %d bytes of data, the largest shard %d bytes (the limit is 1 MiB)", revoked, len(shards), total, largest)

	// One replica: memory held once it has listed them.
	before := heapAlloc()
	l := NewList(nil)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started = time.Now()
	go (&ClusterStore{Client: c, Namespace: ns, Log: quiet}).Run(rctx, l)
	for l.Len() < revoked {
		if time.Since(started) > 2*time.Minute {
			b.Fatalf("the replica has %d of %d revocations after 2 minutes", l.Len(), revoked)
		}
		time.Sleep(10 * time.Millisecond) // a benchmark's wait, not a test's synchronisation
	}
	b.Logf("a replica listed %d revocations in %s", l.Len(), time.Since(started).Round(time.Millisecond))
	held := int64(heapAlloc()) - int64(before)
	b.ReportMetric(float64(held)/float64(revoked), "heap-bytes/revoked-user")
	b.Logf("replica heap for %d revoked users: %.1f MiB (%d bytes per user)", revoked, float64(held)/(1<<20), held/int64(revoked))

	// One more revocation: the watch event is its shard, whole.
	user := "one-more@example.com"
	w := &ClusterStore{Client: c, Namespace: ns, Log: quiet}
	started = time.Now()
	if err := w.Revoke(ctx, user, time.Now()); err != nil {
		b.Fatal(err)
	}
	returned := time.Now()
	for l.NotBefore(user) == 0 {
		if time.Since(returned) > 10*time.Second {
			b.Fatal("the replica did not see the revocation within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ShardName(user)}, &cm); err != nil {
		b.Fatal(err)
	}
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	b.ReportMetric(float64(size), "watch-bytes/revocation")
	b.Logf("one revocation: Revoke took %s, seen by the replica %s after it returned; its watch event carries the shard, %d bytes of data, to every replica",
		returned.Sub(started).Round(time.Millisecond), time.Since(returned).Round(time.Millisecond), size)
}
