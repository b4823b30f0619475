package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// Reasons of the events about the keyring Secret.
const (
	// ReasonKeyringRestored: the keyring Secret was deleted and written
	// back with the keys in force.
	ReasonKeyringRestored = "KeyringRestored"
	// ReasonKeyringMissing: the keyring Secret is missing, keys are in use
	// and this controller does not know them; no keyring is made.
	ReasonKeyringMissing = "KeyringMissing"
)

// errKeyringRefused marks the error of a keyring the controller refuses to
// generate.
var errKeyringRefused = errors.New("no new keyring generated")

// knownSecrets is what the controller last read or wrote of its own
// Secrets: the copy a deleted Secret is written back from. It lives as
// long as the process (a restarted controller, or a new leader, starts
// without it).
type knownSecrets struct {
	mu      sync.Mutex
	bundle  *policy.Bundle
	keyring []byte
}

func (k *knownSecrets) lastBundle() *policy.Bundle {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bundle
}

func (k *knownSecrets) setBundle(b *policy.Bundle) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.bundle = b
}

func (k *knownSecrets) lastKeyring() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keyring
}

// setKeyring keeps raw when it is a usable keyring: one that does not
// parse (a broken edit) is no copy worth writing back.
func (k *knownSecrets) setKeyring(raw []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if bytes.Equal(k.keyring, raw) {
		return
	}
	if _, err := keyring.Parse(raw); err != nil {
		return
	}
	k.keyring = bytes.Clone(raw)
}

// ensureKeyring makes sure the keyring Secret exists, and never with keys
// other than the ones in use. An existing keyring is never written: its
// keys protect every stored secret and cookie, and rotation adds keys in
// front rather than replacing them.
//
// A missing keyring Secret is
//   - written back from the copy this controller keeps of the last keyring
//     it read or wrote, with a Warning event: the same keys, so nothing
//     the challenge servers sealed becomes unreadable;
//   - refused when there is no copy (the controller started after the
//     deletion) but keys are evidently in use: enrolment Secrets exist
//     (their TOTP secrets are sealed with the lost keys) or the challenge
//     Deployment does (its pods loaded the keys, and would switch to new
//     ones and drop every cookie). Nothing is generated; a Warning event
//     and errKeyringRefused say what to do. The running challenge servers
//     keep serving with the keys they loaded;
//   - generated only when nothing uses keys yet: the first start.
//
// A finalizer on the Secret would keep it readable during a delete even
// while the controller is down, but it would also hold the namespace's
// deletion (the uninstall) for ever once the controller is gone first.
func (r *BundleReconciler) ensureKeyring(ctx context.Context) error {
	key := types.NamespacedName{Namespace: r.Options.Namespace, Name: policy.KeyringSecretName}
	current := &corev1.Secret{}
	err := r.APIReader.Get(ctx, key, current)
	switch {
	case err == nil:
		r.known.setKeyring(current.Data[policy.KeyringKey])
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading the keyring Secret: %w", err)
	}
	if raw := r.known.lastKeyring(); raw != nil {
		return r.restoreKeyring(ctx, raw)
	}
	inUse, err := r.keysInUse(ctx)
	if err != nil {
		return err
	}
	if inUse != "" {
		return r.refuseKeyring(inUse)
	}
	return r.generateKeyring(ctx)
}

// restoreKeyring writes the known keyring back.
func (r *BundleReconciler) restoreKeyring(ctx context.Context, raw []byte) error {
	s := KeyringSecret(r.Options.Namespace, raw)
	if err := r.Create(ctx, s); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil // written back by someone else: read at the next reconcile
		}
		return fmt.Errorf("writing the keyring Secret back: %w", err)
	}
	log.FromContext(ctx).Info("keyring Secret was deleted; written back with the keys in force", "secret", client.ObjectKeyFromObject(s))
	r.event(s, corev1.EventTypeWarning, ReasonKeyringRestored, "Restore",
		"The keyring Secret was deleted; it was written back with the keys in force, so no cookie or stored secret is lost. Delete it only to uninstall.")
	return nil
}

// keysInUse says what shows that a keyring is in use, or "" when nothing
// does. Enrolment Secrets are not in the controller's cache: they are
// listed from the API server, one at most.
func (r *BundleReconciler) keysInUse(ctx context.Context) (string, error) {
	var enrolments corev1.SecretList
	if err := r.APIReader.List(ctx, &enrolments, client.InNamespace(r.Options.Namespace),
		client.MatchingLabels{store.KindLabel: store.KindEnrollment}, client.Limit(1)); err != nil {
		return "", fmt.Errorf("listing enrolment Secrets: %w", err)
	}
	if len(enrolments.Items) > 0 {
		return fmt.Sprintf("enrolment Secrets (%s=%s) hold TOTP secrets sealed with its keys", store.KindLabel, store.KindEnrollment), nil
	}
	if !r.Options.ManageDeployment {
		return "", nil
	}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: r.Options.Namespace, Name: ChallengeName}, &appsv1.Deployment{})
	switch {
	case err == nil:
		return "the challenge Deployment " + ChallengeName + " runs with its keys", nil
	case apierrors.IsNotFound(err):
		return "", nil
	default:
		return "", fmt.Errorf("reading the challenge Deployment: %w", err)
	}
}

// refuseKeyring reports a missing keyring that must not be replaced.
func (r *BundleReconciler) refuseKeyring(inUse string) error {
	ns := r.Options.Namespace
	msg := fmt.Sprintf("Secret %s/%s is missing and %s: a new keyring would make every stored TOTP secret and every cookie unreadable, so none is generated. "+
		"Restore the Secret from a backup (the running challenge servers keep the keys they loaded); "+
		"to start over with new keys, every user enrolling again, delete the enrolment Secrets (kubectl -n %s delete secret -l %s=%s) and the Deployment %s.",
		ns, policy.KeyringSecretName, inUse, ns, store.KindLabel, store.KindEnrollment, ChallengeName)
	ref := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: policy.KeyringSecretName}}
	r.event(ref, corev1.EventTypeWarning, ReasonKeyringMissing, "Refuse", msg)
	// The error is logged with the reconcile's, and retried with a backoff.
	return fmt.Errorf("%w: %s", errKeyringRefused, msg)
}

// generateKeyring makes the first keyring.
func (r *BundleReconciler) generateKeyring(ctx context.Context) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	data, err := keyring.Generate(now())
	if err != nil {
		return fmt.Errorf("generating a keyring: %w", err)
	}
	raw, err := data.Marshal()
	if err != nil {
		return fmt.Errorf("encoding the keyring: %w", err)
	}
	s := KeyringSecret(r.Options.Namespace, raw)
	if err := r.Create(ctx, s); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("creating the keyring Secret: %w", err)
	}
	r.known.setKeyring(raw)
	log.FromContext(ctx).Info("keyring created", "secret", client.ObjectKeyFromObject(s))
	return nil
}

func (r *BundleReconciler) event(regarding *corev1.Secret, typ, reason, action, note string) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(regarding, nil, typ, reason, action, "%s", note)
}
