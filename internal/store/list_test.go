package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
)

func TestSecretStoreEachReadsEveryEnrolmentPageByPage(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	base := newClient(t, cfg)
	var mu sync.Mutex
	var limits []int64
	c, err := client.NewWithWatch(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	counting := interceptor.NewClient(c, interceptor.Funcs{
		List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			o := &client.ListOptions{}
			o.ApplyOptions(opts)
			mu.Lock()
			limits = append(limits, o.Limit)
			mu.Unlock()
			return cl.List(ctx, list, opts...)
		},
	})
	s := store.NewSecretStore(counting, ns)
	want := map[string]bool{}
	for i := range 7 {
		user := fmt.Sprintf("user-%d@example.com", i)
		want[user] = true
		_, err := s.Update(context.Background(), storetest.Key(user), storetest.AcceptStep(int64(i+1)))
		g.Expect(err).NotTo(HaveOccurred())
	}
	// Neither a Secret of another kind nor a record from before
	// enrolments had a provider is listed.
	g.Expect(base.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other", Labels: map[string]string{store.ManagedByLabel: store.ManagedByValue}},
	})).To(Succeed())
	g.Expect(store.WriteLegacy(s, "old@example.com", []byte(`{"user":"old@example.com"}`))).To(Succeed())

	seen := map[string]bool{}
	err = store.EachPage(s, context.Background(), 3, func(e *store.Enrollment) error {
		g.Expect(seen).NotTo(HaveKey(e.User), "listed twice")
		seen[e.User] = true
		g.Expect(e.Provider).To(Equal(storetest.Provider))
		return nil
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(seen).To(Equal(want))
	// 8 labelled Secrets (7 and the legacy one) in pages of 3.
	g.Expect(limits).To(Equal([]int64{3, 3, 3}))
}

func TestSecretStoreEachAsksForPagesOfListPageSize(t *testing.T) {
	g := NewWithT(t)
	c, err := client.NewWithWatch(cfg, client.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	var limits []int64
	counting := interceptor.NewClient(c, interceptor.Funcs{
		List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			o := &client.ListOptions{}
			o.ApplyOptions(opts)
			limits = append(limits, o.Limit)
			return cl.List(ctx, list, opts...)
		},
	})
	s := store.NewSecretStore(counting, newNamespace(t))
	g.Expect(s.Each(context.Background(), func(*store.Enrollment) error { return nil })).To(Succeed())
	g.Expect(limits).To(Equal([]int64{store.ListPageSize}))
}

func TestEachStopsAtTheCallbacksError(t *testing.T) {
	stop := errors.New("enough")
	fileStore, err := store.NewFileStore(filepath.Join(t.TempDir(), "enrollments.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fileStore.Close()
	stores := map[string]interface {
		store.Store
		store.Lister
	}{
		"secrets": store.NewSecretStore(newClient(t, cfg), newNamespace(t)),
		"file":    fileStore,
	}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			for _, user := range []string{"ana", "bo", "cy"} {
				_, err := s.Update(context.Background(), storetest.Key(user), storetest.AcceptStep(1))
				g.Expect(err).NotTo(HaveOccurred())
			}
			calls := 0
			err := s.Each(context.Background(), func(*store.Enrollment) error {
				calls++
				return stop
			})
			g.Expect(err).To(MatchError(stop))
			g.Expect(calls).To(Equal(1))
		})
	}
}
