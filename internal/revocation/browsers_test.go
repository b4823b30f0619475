package revocation

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	browserA = "0123456789abcdef0123456789abcdef"
	browserB = "fedcba9876543210fedcba9876543210"
)

func TestListRevokesABrowserForItsUserOnlyUntilItExpires(t *testing.T) {
	g := NewWithT(t)
	now := t0
	l := NewList(func() time.Time { return now })
	g.Expect(l.BrowserRevoked("ana", browserA)).To(BeFalse(), "nothing listed before the first fill (NotBefore refuses all then)")
	l.ReplaceBrowsers("a", map[string]Browser{
		browserA: {User: "ana", Until: t0.Add(time.Hour).UnixNano()},
		browserB: {User: "ana", Until: t0.Add(-time.Second).UnixNano()},
	})
	g.Expect(l.BrowserRevoked("ana", browserA)).To(BeTrue())
	g.Expect(l.BrowserRevoked("bob", browserA)).To(BeFalse(), "the id counts for its user only")
	g.Expect(l.BrowserRevoked("ana", browserB)).To(BeFalse(), "its cookies expired: pruned")
	g.Expect(l.BrowsersLen()).To(Equal(1))
	l.ReplaceBrowsers("a", nil)
	g.Expect(l.BrowserRevoked("ana", browserA)).To(BeFalse())
}

func TestListBrowserLookupAllocatesNothing(t *testing.T) {
	l := NewList(func() time.Time { return t0 })
	l.ReplaceAllBrowsers(map[string]map[string]Browser{"a": {browserA: {User: "ana", Until: t0.Add(time.Hour).UnixNano()}}})
	user, id := "ana", browserA
	if n := testing.AllocsPerRun(100, func() { l.BrowserRevoked(user, id) }); n != 0 {
		t.Fatalf("BrowserRevoked allocates %v times", n)
	}
}

func TestRevokeBrowserRefusesAnIdThatIsNotHex(t *testing.T) {
	g := NewWithT(t)
	s := NewFileStore(t.TempDir(), quiet)
	for _, id := range []string{"", "../x", "ABCDEF", string(make([]byte, MaxBrowserIDLength+1))} {
		g.Expect(s.RevokeBrowser(context.Background(), "ana", id, t0)).To(MatchError(ContainSubstring("browser id")), "%q", id)
	}
	g.Expect(s.RevokeBrowser(context.Background(), "", browserA, t0)).To(HaveOccurred())
}

func TestFileStoreBrowserRevocationReachesARunningReader(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	writer := NewFileStore(dir, quiet)
	writer.Now = func() time.Time { return t0 }
	g.Expect(writer.RevokeBrowser(context.Background(), "ana", browserB, t0.Add(-time.Minute))).To(Succeed())

	reader := NewFileStore(dir, quiet)
	l := NewList(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reader.Run(ctx, l)
	g.Eventually(l.Synced).Should(BeTrue())

	until := time.Now().Add(time.Hour)
	g.Expect(writer.RevokeBrowser(context.Background(), "ana", browserA, until)).To(Succeed())
	g.Eventually(func() bool { return l.BrowserRevoked("ana", browserA) }, 5*time.Second, 50*time.Millisecond).Should(BeTrue())
	g.Expect(l.NotBefore("ana")).To(BeZero(), "the user's other browsers are not revoked")
	entries, err := writer.readBrowsers()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).NotTo(HaveKey(browserB), "the writer prunes browsers whose cookies expired")
	g.Expect(entries[browserA]).To(Equal(Browser{User: "ana", Until: until.UnixNano()}))
}

func TestClusterStoreBrowserRevocationReachesEveryReplica(t *testing.T) {
	g := NewWithT(t)
	writerClient, ns, lists := startReplicas(t, 2)
	now := time.Now()
	w := &ClusterStore{Client: writerClient, Namespace: ns, Log: quiet, Now: func() time.Time { return now }}
	g.Expect(w.RevokeBrowser(context.Background(), "ana@example.com", browserB, now.Add(-time.Second))).To(Succeed())
	g.Expect(w.Revoke(context.Background(), "ana@example.com", t0)).To(Succeed())
	g.Expect(w.RevokeBrowser(context.Background(), "ana@example.com", browserA, now.Add(time.Hour))).To(Succeed())
	for _, l := range lists {
		g.Eventually(func() bool { return l.BrowserRevoked("ana@example.com", browserA) }, 5*time.Second, 20*time.Millisecond).Should(BeTrue())
		g.Expect(l.NotBefore("ana@example.com")).To(Equal(t0.UnixNano()), "the user's entry is read beside its browsers")
		g.Expect(l.BrowserRevoked("ana@example.com", browserB)).To(BeFalse())
	}
	cm := &corev1.ConfigMap{}
	g.Expect(writerClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: ShardName("ana@example.com")}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKey(browserKeyPrefix + browserA))
	g.Expect(cm.Data).NotTo(HaveKey(browserKeyPrefix+browserB), "pruned past its expiry by the next write")
}
