package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mfa-operator/mfa-operator/internal/store"
	"github.com/mfa-operator/mfa-operator/internal/store/storetest"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
)

func TestMain(m *testing.M) {
	var err error
	testEnv, cfg, err = storetest.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := testEnv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

func newClient(t *testing.T, c *rest.Config) client.Client {
	t.Helper()
	cl, err := client.New(rest.CopyConfig(c), client.Options{})
	if err != nil {
		t.Fatalf("creating a client: %v", err)
	}
	return cl
}

var namespaces atomic.Int64

// newNamespace creates an empty namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("store-test-%d", namespaces.Add(1))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := newClient(t, cfg).Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return name
}

func openFileStore(t *testing.T, n int) []store.Store {
	t.Helper()
	s, err := store.NewFileStore(filepath.Join(t.TempDir(), "enrollments.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	stores := make([]store.Store, n)
	for i := range stores {
		stores[i] = s // one process holds the file; its goroutines share it
	}
	return stores
}

// openSecretStores gives each store its own client, as separate replicas.
func openSecretStores(t *testing.T, n int) []store.Store {
	t.Helper()
	ns := newNamespace(t)
	stores := make([]store.Store, n)
	for i := range stores {
		stores[i] = store.NewSecretStore(newClient(t, cfg), ns)
	}
	return stores
}

func TestFileStoreConformance(t *testing.T) {
	storetest.RunConformance(t, storetest.Backend{Name: "file", Open: openFileStore, WriteLegacy: writeLegacy})
}

func TestSecretStoreConformance(t *testing.T) {
	storetest.RunConformance(t, storetest.Backend{Name: "secret", Open: openSecretStores, WriteLegacy: writeLegacy})
}

func writeLegacy(t *testing.T, s store.Store, user string, raw []byte) {
	t.Helper()
	if err := store.WriteLegacy(s, user, raw); err != nil {
		t.Fatal(err)
	}
}

func TestFileStoreKeepsEnrollmentsAcrossReopen(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "enrollments.db")
	s, err := store.NewFileStore(path)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.Update(context.Background(), storetest.Key("ana"), storetest.AcceptStep(42))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Close()).To(Succeed())

	s, err = store.NewFileStore(path)
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	e, err := s.Get(context.Background(), storetest.Key("ana"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.TOTP.LastStep).To(BeEquivalentTo(42))
}

func TestFileStoreClosedIsUnavailable(t *testing.T) {
	g := NewWithT(t)
	s, err := store.NewFileStore(filepath.Join(t.TempDir(), "enrollments.db"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Close()).To(Succeed())
	_, err = s.Get(context.Background(), storetest.Key("ana"))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
	_, err = s.Update(context.Background(), storetest.Key("ana"), storetest.AcceptStep(1))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
}

func TestSecretStoreWritesOneLabelledSecretPerUser(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := newClient(t, cfg)
	s := store.NewSecretStore(c, ns)
	user := "Ana Example <ana@example.com>"
	_, err := s.Update(context.Background(), storetest.Key(user), storetest.AcceptStep(7))
	g.Expect(err).NotTo(HaveOccurred())

	var list corev1.SecretList
	g.Expect(c.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	secret := list.Items[0]
	g.Expect(secret.Name).To(MatchRegexp(`^mfa-user-[0-9a-f]{40}$`))
	g.Expect(secret.Name).To(Equal(store.SecretName(storetest.Key(user))))
	g.Expect(secret.Labels).To(Equal(map[string]string{
		"app.kubernetes.io/managed-by":        "mfa-operator",
		"mfa.operator.dev/kind":               "enrollment",
		"mfa.operator.dev/provider-namespace": "apps",
		"mfa.operator.dev/provider-name":      "google-authenticator",
	}))
	g.Expect(secret.Annotations).To(HaveKeyWithValue("mfa.operator.dev/user", user))
	g.Expect(secret.Annotations).To(HaveKeyWithValue("mfa.operator.dev/provider", storetest.Provider))
	g.Expect(secret.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(secret.Data).To(HaveKey("enrollment.json"))
	g.Expect(string(secret.Data["enrollment.json"])).To(ContainSubstring(`"lastStep":7`))
}

func TestSecretStoreUnchangedUpdateCreatesNoSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := newClient(t, cfg)
	s := store.NewSecretStore(c, ns)
	_, err := s.Update(context.Background(), storetest.Key("ana"), func(*store.Enrollment) error { return nil })
	g.Expect(err).NotTo(HaveOccurred())
	var list corev1.SecretList
	g.Expect(c.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(BeEmpty())
}

func TestSecretStoreRefusesASecretOfAnotherUser(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	c := newClient(t, cfg)
	s := store.NewSecretStore(c, ns)
	_, err := s.Update(context.Background(), storetest.Key("ana"), storetest.AcceptStep(7))
	g.Expect(err).NotTo(HaveOccurred())

	secret := &corev1.Secret{}
	g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: store.SecretName(storetest.Key("ana"))}, secret)).To(Succeed())
	secret.Annotations["mfa.operator.dev/user"] = "mallory"
	g.Expect(c.Update(context.Background(), secret)).To(Succeed())

	_, err = s.Get(context.Background(), storetest.Key("ana"))
	g.Expect(err).To(MatchError(store.ErrCorrupt))
	_, err = s.Update(context.Background(), storetest.Key("ana"), storetest.AcceptStep(8))
	g.Expect(err).To(MatchError(store.ErrCorrupt))
}

func TestSecretStoreUnreachableAPIServerIsUnavailable(t *testing.T) {
	g := NewWithT(t)
	dead := rest.CopyConfig(cfg)
	dead.Host = "https://127.0.0.1:1" // nothing listens on port 1
	dead.Timeout = 5 * time.Second
	// client.New asks the server for its API groups only lazily, for types
	// outside its scheme; Secrets are in it.
	s := store.NewSecretStore(newClient(t, dead), "default")
	_, err := s.Get(context.Background(), storetest.Key("ana"))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
	_, err = s.Update(context.Background(), storetest.Key("ana"), storetest.AcceptStep(1))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
}

func TestSecretStoreExpiredContextIsUnavailable(t *testing.T) {
	g := NewWithT(t)
	s := store.NewSecretStore(newClient(t, cfg), newNamespace(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Get(ctx, storetest.Key("ana"))
	g.Expect(err).To(MatchError(store.ErrUnavailable))
}

func TestSecretStoreForbiddenIsNotUnavailable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	nobody, err := testEnv.AddUser(envtest.User{Name: "nobody"}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	s := store.NewSecretStore(newClient(t, nobody.Config()), ns)
	_, err = s.Get(context.Background(), storetest.Key("ana"))
	g.Expect(err).To(HaveOccurred())
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "the API server's answer is kept: %v", err)
	g.Expect(err).NotTo(MatchError(store.ErrUnavailable), "RBAC needs an operator, not a retry")
	g.Expect(err.Error()).To(ContainSubstring(ns), "the error names the Secret")
}

// TestSecretStoreLosersOfARaceReadAgain holds every writer's first read until
// all ten have read the same state, so all ten write against it: exactly one
// write lands (Create or Update with the read resourceVersion), the nine
// others get AlreadyExists or Conflict from the API server, read again and
// see the step already accepted.
func TestSecretStoreLosersOfARaceReadAgain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing bool
		refusal  func(error) bool
	}{
		{name: "create race", existing: false, refusal: apierrors.IsAlreadyExists},
		{name: "update race", existing: true, refusal: apierrors.IsConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			const writers = 10
			const step = 59_000_000
			ns := newNamespace(t)
			ctx := context.Background()
			if tc.existing {
				_, err := store.NewSecretStore(newClient(t, cfg), ns).Update(ctx, storetest.Key("eve"), storetest.AcceptStep(step-1))
				g.Expect(err).NotTo(HaveOccurred())
			}

			var gets, refused atomic.Int64
			allRead := make(chan struct{})
			funcs := interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					err := c.Get(ctx, key, obj, opts...)
					n := gets.Add(1)
					if n == writers {
						close(allRead)
					}
					if n <= writers {
						select {
						case <-allRead:
						case <-time.After(time.Minute):
							return fmt.Errorf("the %d writers never all read", writers)
						}
					}
					return err
				},
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					err := c.Create(ctx, obj, opts...)
					if tc.refusal(err) {
						refused.Add(1)
					}
					return err
				},
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					err := c.Update(ctx, obj, opts...)
					if tc.refusal(err) {
						refused.Add(1)
					}
					return err
				},
			}
			stores := make([]store.Store, 3)
			for i := range stores {
				c, err := client.NewWithWatch(rest.CopyConfig(cfg), client.Options{})
				g.Expect(err).NotTo(HaveOccurred())
				stores[i] = store.NewSecretStore(interceptor.NewClient(c, funcs), ns)
			}

			errs := make(chan error, writers)
			for i := range writers {
				go func() {
					_, err := stores[i%len(stores)].Update(ctx, storetest.Key("eve"), storetest.AcceptStep(step))
					errs <- err
				}()
			}
			accepted := 0
			for range writers {
				err := <-errs
				if err == nil {
					accepted++
					continue
				}
				g.Expect(err).To(MatchError(storetest.ErrReused))
			}
			g.Expect(accepted).To(Equal(1))
			g.Expect(refused.Load()).To(BeEquivalentTo(writers-1), "every loser was refused by the API server")
		})
	}
}
