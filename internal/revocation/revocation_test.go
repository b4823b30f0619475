package revocation

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	env, c, err := storetest.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg = c
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestListFailsClosedUntilFilled(t *testing.T) {
	g := NewWithT(t)
	l := NewList(func() time.Time { return t0 })
	g.Expect(l.NotBefore("ana")).To(Equal(int64(math.MaxInt64)))
	g.Expect(l.Synced()).To(BeFalse())
	l.ReplaceAll(map[string]map[string]int64{})
	g.Expect(l.NotBefore("ana")).To(BeZero())
	g.Expect(l.Synced()).To(BeTrue())
}

func TestListKeepsTheLatestAndDropsThoseOlderThanMaxAge(t *testing.T) {
	g := NewWithT(t)
	l := NewList(func() time.Time { return t0 })
	l.Replace("a", map[string]int64{"ana": t0.UnixNano(), "old": t0.Add(-MaxAge - time.Second).UnixNano()})
	l.Replace("b", map[string]int64{"ana": t0.Add(time.Second).UnixNano()})
	g.Expect(l.NotBefore("ana")).To(Equal(t0.Add(time.Second).UnixNano()))
	g.Expect(l.NotBefore("old")).To(BeZero(), "pruned past MaxAge")
	g.Expect(l.Len()).To(Equal(1))
	l.Replace("b", nil)
	g.Expect(l.NotBefore("ana")).To(Equal(t0.UnixNano()))
}

func TestFileStoreRevocationReachesARunningReader(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writer := NewFileStore(dir, quiet)
	writer.Now = func() time.Time { return t0 }
	g.Expect(writer.Revoke(context.Background(), "gone", t0.Add(-MaxAge-time.Hour))).To(Succeed())

	reader := NewFileStore(dir, quiet)
	l := NewList(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reader.Run(ctx, l)
	g.Eventually(l.Synced).Should(BeTrue())

	g.Expect(writer.Revoke(context.Background(), "ana", t0)).To(Succeed())
	g.Eventually(func() int64 { return l.NotBefore("ana") }, 5*time.Second, 50*time.Millisecond).Should(Equal(t0.UnixNano()))
	entries, err := writer.read()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).NotTo(HaveKey("gone"), "the writer prunes entries older than MaxAge")
	// An earlier instant never moves a revocation back.
	g.Expect(writer.Revoke(context.Background(), "ana", t0.Add(-time.Hour))).To(Succeed())
	entries, _ = writer.read()
	g.Expect(entries["ana"]).To(Equal(t0.UnixNano()))
}

func TestFileStoreRefusesAFileThatIsNotJSON(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, FileName), []byte("nope"), 0o600)).To(Succeed())
	s := NewFileStore(dir, quiet)
	l := NewList(nil)
	g.Expect(s.Load(l)).To(MatchError(ContainSubstring("not a JSON object")))
	g.Expect(l.NotBefore("ana")).To(Equal(int64(math.MaxInt64)), "still closed")
	g.Expect(s.Revoke(context.Background(), "ana", t0)).To(MatchError(ContainSubstring("not a JSON object")))
}

var namespaces atomic.Int64

func newNamespace(t *testing.T, c client.Client) string {
	name := fmt.Sprintf("revocation-test-%d", namespaces.Add(1))
	NewWithT(t).Expect(c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// startReplicas makes a namespace and n replicas' Lists, each kept by its
// own ClusterStore watching it until the test ends, and waits until all
// have read it; it returns a client for writing and the namespace.
func startReplicas(t *testing.T, n int) (client.Client, string, []*List) {
	g := NewWithT(t)
	writerClient, err := client.New(rest.CopyConfig(cfg), client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	ns := newNamespace(t, writerClient)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lists := make([]*List, 0, n)
	for range n {
		c, err := client.NewWithWatch(rest.CopyConfig(cfg), client.Options{})
		g.Expect(err).NotTo(HaveOccurred())
		l := NewList(nil)
		go (&ClusterStore{Client: c, Namespace: ns, Log: quiet}).Run(ctx, l)
		lists = append(lists, l)
	}
	for _, l := range lists {
		g.Eventually(l.Synced, 10*time.Second).Should(BeTrue())
	}
	return writerClient, ns, lists
}

func TestClusterStoreRevocationReachesEveryReplica(t *testing.T) {
	g := NewWithT(t)
	writerClient, ns, lists := startReplicas(t, 3)
	w := &ClusterStore{Client: writerClient, Namespace: ns, Log: quiet}
	users := []string{"ana@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}
	// Concurrent writers on possibly one shard: compare-and-swap keeps all.
	errs := make(chan error, len(users))
	for _, u := range users {
		go func() { errs <- w.Revoke(context.Background(), u, t0) }()
	}
	for range users {
		g.Expect(<-errs).To(Succeed())
	}
	for _, l := range lists {
		for _, u := range users {
			g.Eventually(func() int64 { return l.NotBefore(u) }, 5*time.Second, 20*time.Millisecond).Should(Equal(t0.UnixNano()))
		}
		g.Expect(l.NotBefore("eve@example.com")).To(BeZero())
	}
	var cms corev1.ConfigMapList
	g.Expect(writerClient.List(context.Background(), &cms, client.InNamespace(ns))).To(Succeed())
	for _, cm := range cms.Items {
		g.Expect(cm.Name).To(HavePrefix(ShardPrefix))
		g.Expect(cm.Labels).To(HaveKeyWithValue(KindLabel, KindRevocations))
	}
	// A shard deleted by hand drops its revocations everywhere.
	g.Expect(writerClient.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ShardName(users[0])}})).To(Succeed())
	for _, l := range lists {
		g.Eventually(func() int64 { return l.NotBefore(users[0]) }, 5*time.Second, 20*time.Millisecond).Should(BeZero())
	}
}
