package store

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	bolt "go.etcd.io/bbolt"
)

// Lister lists every enrolment of a store, for administrators (`kubectl
// mfa users`). It reads the whole store: never on a request path.
type Lister interface {
	List(ctx context.Context) ([]*Enrollment, error)
}

var (
	_ Lister = (*SecretStore)(nil)
	_ Lister = (*FileStore)(nil)
)

// List implements Lister: the enrolment Secrets of the namespace (by
// label), decoded. Records written before enrolments had a provider are
// left out.
func (s *SecretStore) List(ctx context.Context) ([]*Enrollment, error) {
	var list corev1.SecretList
	if err := s.c.List(ctx, &list, client.InNamespace(s.namespace), client.MatchingLabels{KindLabel: KindEnrollment}); err != nil {
		return nil, fmt.Errorf("listing the enrolment Secrets in %s: %w", s.namespace, err)
	}
	out := make([]*Enrollment, 0, len(list.Items))
	for i := range list.Items {
		sec := &list.Items[i]
		k := Key{User: sec.Annotations[UserAnnotation], Provider: sec.Annotations[ProviderAnnotation]}
		if k.Provider == "" {
			continue
		}
		raw, ok := sec.Data[EnrollmentDataKey]
		if !ok {
			return nil, fmt.Errorf("%w: Secret %s/%s has no %s", ErrCorrupt, s.namespace, sec.Name, EnrollmentDataKey)
		}
		e, err := decode(k, raw)
		if err != nil {
			return nil, fmt.Errorf("Secret %s/%s: %w", s.namespace, sec.Name, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// List implements Lister.
func (s *FileStore) List(ctx context.Context) ([]*Enrollment, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var out []*Enrollment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(enrollmentsBucket).ForEach(func(key, raw []byte) error {
			e := &Enrollment{}
			if err := json.Unmarshal(raw, e); err != nil {
				return fmt.Errorf("%w: record %q: %w", ErrCorrupt, key, err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fileError(err)
	}
	return out, nil
}
