package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels, annotation and data key of the per-user Secrets.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "mfa-operator"
	KindLabel      = "mfa.operator.dev/kind"
	KindEnrollment = "enrollment"
	UserAnnotation = "mfa.operator.dev/user"
	// ProviderAnnotation names the MFAProvider (namespace/name) of the
	// record; ProviderNamespaceLabel and ProviderNameLabel let kubectl
	// select a provider's records.
	ProviderAnnotation     = "mfa.operator.dev/provider"
	ProviderNamespaceLabel = "mfa.operator.dev/provider-namespace"
	ProviderNameLabel      = "mfa.operator.dev/provider-name"
	EnrollmentDataKey      = "enrollment.json"
	secretNamePrefix       = "mfa-user-"
)

// requestTimeout bounds one Get or Update, retries included. An API server
// that hangs (rather than refusing connections) must not hold a challenge
// page until the browser gives up: the caller answers "try again".
const requestTimeout = 10 * time.Second

// SecretName is the name of the Secret holding k's enrolment: a hash,
// because user ids (e-mail addresses, subjects) are not valid object names.
func SecretName(k Key) string {
	sum := sha256.Sum256([]byte(k.Provider + "\x00" + k.User))
	return secretNamePrefix + hex.EncodeToString(sum[:])[:40]
}

// LegacySecretName is the name of the Secret of a record written before
// enrolments had a provider: the hash of the user id alone.
func LegacySecretName(user string) string {
	sum := sha256.Sum256([]byte(user))
	return secretNamePrefix + hex.EncodeToString(sum[:])[:40]
}

// SecretStore keeps one Secret per user and provider in a namespace. Updates carry the
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
func (s *SecretStore) Get(ctx context.Context, k Key) (*Enrollment, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	secret, raw, legacy, err := s.read(ctx, k)
	if err != nil {
		return nil, err
	}
	e, err := current(k, raw, legacy)
	if err != nil {
		return nil, s.corrupt(secret, k, err)
	}
	return e, nil
}

// Update implements Store.
func (s *SecretStore) Update(ctx context.Context, k Key, fn func(e *Enrollment) error) (*Enrollment, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var seen *Enrollment
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return seen, s.apiError("updating", k, err)
			}
		}
		secret, raw, legacy, err := s.read(ctx, k)
		if err != nil {
			return seen, err
		}
		e, out, changed, err := apply(k, raw, legacy, fn)
		seen = e
		if errors.Is(err, ErrCorrupt) {
			return seen, s.corrupt(secret, k, err)
		}
		if err != nil || !changed {
			return seen, err
		}
		if secret == nil {
			err = s.c.Create(ctx, s.newSecret(k, out))
			if apierrors.IsAlreadyExists(err) {
				continue // another writer created it first: decide again on its record
			}
		} else {
			secret.Data[EnrollmentDataKey] = out
			s.setMeta(secret, k)
			err = s.c.Update(ctx, secret) // carries the resourceVersion read above
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				continue // written or deleted since the read: decide again
			}
		}
		if err != nil {
			return seen, s.apiError("writing", k, err)
		}
		return seen, nil
	}
	return seen, fmt.Errorf("%w: the enrollment of user %q of %s changed under %d consecutive updates", ErrUnavailable, k.User, k.Provider, maxAttempts)
}

// read returns k's Secret and record (nil, nil when there is none) and,
// when there is none, the user's legacy record (nil when there is none).
func (s *SecretStore) read(ctx context.Context, k Key) (secret *corev1.Secret, raw, legacy []byte, err error) {
	secret, raw, err = s.readSecret(ctx, SecretName(k), k)
	if err != nil || secret != nil {
		return secret, raw, nil, err
	}
	old, legacy, err := s.readSecret(ctx, LegacySecretName(k.User), Key{User: k.User})
	if err != nil {
		return nil, nil, nil, err
	}
	if old == nil {
		return nil, nil, nil, nil
	}
	return nil, nil, legacy, nil
}

// readSecret reads the Secret name, which must be annotated for k (a
// legacy one: for k.User and no provider), and its record.
func (s *SecretStore) readSecret(ctx context.Context, name string, k Key) (*corev1.Secret, []byte, error) {
	secret := &corev1.Secret{}
	err := s.c.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, s.apiError("reading", k, err)
	}
	if u, p := secret.Annotations[UserAnnotation], secret.Annotations[ProviderAnnotation]; u != k.User || p != k.Provider {
		return nil, nil, fmt.Errorf("%w: Secret %s/%s is annotated for user %q of %q, not user %q of %q; refusing it",
			ErrCorrupt, s.namespace, name, u, p, k.User, k.Provider)
	}
	raw, ok := secret.Data[EnrollmentDataKey]
	if !ok {
		return nil, nil, fmt.Errorf("%w: Secret %s/%s of user %q has no %s", ErrCorrupt, s.namespace, name, k.User, EnrollmentDataKey)
	}
	return secret, raw, nil
}

// corrupt names the Secret of a record that does not decode.
func (s *SecretStore) corrupt(secret *corev1.Secret, k Key, err error) error {
	name := LegacySecretName(k.User)
	if secret != nil {
		name = secret.Name
	}
	return fmt.Errorf("Secret %s/%s: %w", s.namespace, name, err)
}

func (s *SecretStore) newSecret(k Key, data []byte) *corev1.Secret {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: SecretName(k)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{EnrollmentDataKey: data},
	}
	s.setMeta(secret, k)
	return secret
}

func (s *SecretStore) setMeta(secret *corev1.Secret, k Key) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[ManagedByLabel] = ManagedByValue
	secret.Labels[KindLabel] = KindEnrollment
	ns, name, _ := strings.Cut(k.Provider, "/")
	secret.Labels[ProviderNamespaceLabel] = ns
	secret.Labels[ProviderNameLabel] = name
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[UserAnnotation] = k.User
	secret.Annotations[ProviderAnnotation] = k.Provider
}

// apiError names what failed and marks the errors worth retrying later
// (connection, timeouts, overload, server errors, the caller's deadline) as
// ErrUnavailable. Errors that need an operator (RBAC, admission) are not.
func (s *SecretStore) apiError(verb string, k Key, err error) error {
	wrapped := fmt.Errorf("%s the enrolment Secret of user %q of %q in %s: %w", verb, k.User, k.Provider, s.namespace, err)
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
