package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels, annotation and data key of the per-user Secrets.
const (
	ManagedByLabel    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "mfa-operator"
	KindLabel         = "mfa.operator.dev/kind"
	KindEnrollment    = "enrollment"
	UserAnnotation    = "mfa.operator.dev/user"
	EnrollmentDataKey = "enrollment.json"
	secretNamePrefix  = "mfa-user-"
)

// requestTimeout bounds one Get or Update, retries included. An API server
// that hangs (rather than refusing connections) must not hold a challenge
// page until the browser gives up: the caller answers "try again".
const requestTimeout = 10 * time.Second

// SecretName is the name of the Secret holding user's enrolment: a hash,
// because user ids (e-mail addresses, subjects) are not valid object names.
func SecretName(user string) string {
	sum := sha256.Sum256([]byte(user))
	return secretNamePrefix + hex.EncodeToString(sum[:])[:40]
}

// SecretStore keeps one Secret per user in a namespace. Updates carry the
// resourceVersion that was read, so the API server refuses a write based on
// a stale read (409 Conflict) and the loser reads again: two replicas can
// never both accept the same code. A first write is a Create, which only one
// writer wins.
//
// The client should read from the API server (client.New), not from a
// manager's cache: a cache would hold every Secret of the namespace, and its
// stale reads would only cost conflicts. It needs get, create and update on
// secrets in the namespace.
type SecretStore struct {
	c         client.Client
	namespace string
}

var _ Store = (*SecretStore)(nil)

// NewSecretStore returns a store of Secrets in namespace.
func NewSecretStore(c client.Client, namespace string) *SecretStore {
	return &SecretStore{c: c, namespace: namespace}
}

// Get implements Store.
func (s *SecretStore) Get(ctx context.Context, user string) (*Enrollment, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, e, err := s.read(ctx, user)
	return e, err
}

// Update implements Store.
func (s *SecretStore) Update(ctx context.Context, user string, fn func(e *Enrollment) error) (*Enrollment, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var seen *Enrollment
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return seen, s.apiError("updating", user, err)
			}
		}
		secret, _, err := s.read(ctx, user)
		if err != nil {
			return seen, err
		}
		var raw []byte
		if secret != nil {
			raw = secret.Data[EnrollmentDataKey] // read checked it is there
		}
		e, out, changed, err := apply(user, raw, fn)
		seen = e
		if err != nil || !changed {
			return seen, err
		}
		if secret == nil {
			err = s.c.Create(ctx, s.newSecret(user, out))
			if apierrors.IsAlreadyExists(err) {
				continue // another writer created it first: decide again on its record
			}
		} else {
			secret.Data[EnrollmentDataKey] = out
			s.setMeta(secret, user)
			err = s.c.Update(ctx, secret) // carries the resourceVersion read above
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // written or deleted since the read: decide again
			}
		}
		if err != nil {
			return seen, s.apiError("writing", user, err)
		}
		return seen, nil
	}
	return seen, fmt.Errorf("%w: the enrollment of user %q changed under %d consecutive updates", ErrUnavailable, user, maxAttempts)
}

// read returns the user's Secret (nil when there is none) and its record.
func (s *SecretStore) read(ctx context.Context, user string) (*corev1.Secret, *Enrollment, error) {
	secret := &corev1.Secret{}
	err := s.c.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: SecretName(user)}, secret)
	if apierrors.IsNotFound(err) {
		return nil, &Enrollment{User: user}, nil
	}
	if err != nil {
		return nil, nil, s.apiError("reading", user, err)
	}
	if got := secret.Annotations[UserAnnotation]; got != user {
		return nil, nil, fmt.Errorf("%w: Secret %s/%s is annotated %s=%q, not user %q; refusing it", ErrCorrupt, s.namespace, secret.Name, UserAnnotation, got, user)
	}
	raw, ok := secret.Data[EnrollmentDataKey]
	if !ok {
		return nil, nil, fmt.Errorf("%w: Secret %s/%s of user %q has no %s", ErrCorrupt, s.namespace, secret.Name, user, EnrollmentDataKey)
	}
	e, err := decode(user, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("Secret %s/%s: %w", s.namespace, secret.Name, err)
	}
	return secret, e, nil
}

func (s *SecretStore) newSecret(user string, data []byte) *corev1.Secret {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: SecretName(user)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{EnrollmentDataKey: data},
	}
	s.setMeta(secret, user)
	return secret
}

func (s *SecretStore) setMeta(secret *corev1.Secret, user string) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[ManagedByLabel] = ManagedByValue
	secret.Labels[KindLabel] = KindEnrollment
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[UserAnnotation] = user
}

// apiError names what failed and marks the errors worth retrying later
// (connection, timeouts, overload, server errors, the caller's deadline) as
// ErrUnavailable. Errors that need an operator (RBAC, admission) are not.
func (s *SecretStore) apiError(verb, user string, err error) error {
	wrapped := fmt.Errorf("%s Secret %s/%s of user %q: %w", verb, s.namespace, SecretName(user), user, err)
	if isUnavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, wrapped)
	}
	return wrapped
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		// Not an answer of the API server: dial, TLS, reset, EOF.
		return true
	}
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err) ||
		apierrors.IsInternalError(err) || apierrors.IsUnexpectedServerError(err) ||
		status.Status().Code >= 500
}

// backoff waits a little, with jitter, before another compare-and-swap
// round, so racing writers spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(attempt) * 5 * time.Millisecond
	d += rand.N(d + time.Millisecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
