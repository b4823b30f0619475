package admin

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// More enrolments than one LIST page holds: every one is listed once,
// sorted, with --policy's providers only.
func TestUsersListsEveryEnrolmentAcrossPages(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := adminClient(t)
	const many = "mfa-many"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: many}})).To(Succeed())
	st := store.NewSecretStore(c, many)
	n := store.ListPageSize + 1
	users := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 16 {
		wg.Go(func() {
			for i := range users {
				p := provider
				if i%100 == 0 {
					p = "other/totp" // not one of the policy's providers
				}
				_, err := st.Update(ctx, store.Key{Provider: p, User: fmt.Sprintf("u%04d@example.com", i)}, func(e *store.Enrollment) error {
					e.TOTP = &store.TOTPEnrollment{SealedSecret: []byte("sealed"), Digits: 6, PeriodSeconds: 30, Algorithm: "SHA1", Created: time.Now().UTC()}
					return nil
				})
				errs <- err
			}
		})
	}
	for i := range n {
		users <- i
	}
	close(users)
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}

	a, _, err := Cluster(ctx, cfg, many, audit.New(nil, nil), time.Now)
	g.Expect(err).NotTo(HaveOccurred())
	rows, err := a.Users(ctx, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(HaveLen(n))
	for i, r := range rows {
		g.Expect(r.User).To(Equal(fmt.Sprintf("u%04d@example.com", i)))
	}
	rows, err = a.Users(ctx, []string{provider})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rows).To(HaveLen(n - (n+99)/100))
	for _, r := range rows {
		g.Expect(r.Provider).To(Equal(provider))
	}
}
