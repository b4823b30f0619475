package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WriteLegacy writes raw as user's record the way stores did before
// enrolments had a provider: keyed by the user alone.
func WriteLegacy(s Store, user string, raw []byte) error {
	switch s := s.(type) {
	case *FileStore:
		return s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(legacyBucket).Put([]byte(user), raw)
		})
	case *SecretStore:
		return s.c.Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: s.namespace, Name: LegacySecretName(user),
				Labels:      map[string]string{ManagedByLabel: ManagedByValue, KindLabel: KindEnrollment},
				Annotations: map[string]string{UserAnnotation: user},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{EnrollmentDataKey: raw},
		})
	}
	return fmt.Errorf("no legacy form for %T", s)
}

// EachPage is SecretStore.Each with pages of size n.
func EachPage(s *SecretStore, ctx context.Context, n int64, fn func(e *Enrollment) error) error {
	return s.eachPage(ctx, n, fn)
}
