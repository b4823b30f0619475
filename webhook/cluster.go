package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// secretPollInterval is how often the Secrets are read when the client
// cannot watch.
const secretPollInterval = 10 * time.Second

// watchCluster follows the bundle and keyring Secrets in the server's
// namespace: listed, then watched (by name, nothing else in the namespace
// is read), and listed again after any watch error. Each change is loaded
// without a restart.
func (s *Server) watchCluster(ctx context.Context) error {
	done := make(chan struct{}, 2)
	for _, name := range []string{policy.BundleSecretName, policy.KeyringSecretName} {
		go func() {
			defer func() { done <- struct{}{} }()
			s.followSecret(ctx, name)
		}()
	}
	<-done
	<-done
	return nil
}

func (s *Server) followSecret(ctx context.Context, name string) {
	wc, canWatch := s.opts.Client.(client.WithWatch)
	for attempt := 0; ctx.Err() == nil; {
		var err error
		if canWatch {
			err = s.listWatchSecret(ctx, wc, name)
		} else {
			err = s.getSecret(ctx, name)
			if err == nil {
				attempt = 0
				if !sleepCtx(ctx, secretPollInterval) {
					return
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Warn("reading Secret failed; retrying", "secret", s.opts.Namespace+"/"+name, "error", err)
			attempt++
		} else {
			attempt = 0
		}
		if !sleepCtx(ctx, retryDelay(attempt)) {
			return
		}
	}
}

// listWatchSecret lists the Secret, loads it, then watches it from that
// resourceVersion until the watch ends.
func (s *Server) listWatchSecret(ctx context.Context, c client.WithWatch, name string) error {
	sel := fields.OneTermEqualSelector("metadata.name", name)
	var list corev1.SecretList
	if err := c.List(ctx, &list, &client.ListOptions{Namespace: s.opts.Namespace, FieldSelector: sel}); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		s.secretMissing(name)
	}
	for i := range list.Items {
		s.applySecret(&list.Items[i])
	}
	w, err := c.Watch(ctx, &corev1.SecretList{}, &client.ListOptions{
		Namespace:     s.opts.Namespace,
		FieldSelector: sel,
		Raw:           &metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true},
	})
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil // the server closed the watch: list again
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if sec, ok := ev.Object.(*corev1.Secret); ok {
					s.applySecret(sec)
				}
			case watch.Deleted:
				s.secretMissing(name)
			case watch.Error:
				return fmt.Errorf("watch: %v", apierrors.FromObject(ev.Object))
			}
		}
	}
}

func (s *Server) getSecret(ctx context.Context, name string) error {
	var sec corev1.Secret
	err := s.opts.Client.Get(ctx, client.ObjectKey{Namespace: s.opts.Namespace, Name: name}, &sec)
	if apierrors.IsNotFound(err) {
		s.secretMissing(name)
		return nil
	}
	if err != nil {
		return err
	}
	s.applySecret(&sec)
	return nil
}

// applySecret loads the bundle or keyring Secret.
func (s *Server) applySecret(sec *corev1.Secret) {
	origin := "Secret " + sec.Namespace + "/" + sec.Name
	switch sec.Name {
	case policy.BundleSecretName:
		data, ok := sec.Data[policy.BundleKey]
		if !ok {
			s.refuseBundle(fmt.Errorf("%s has no key %q", origin, policy.BundleKey))
			return
		}
		b, err := policy.ParseBundle(data)
		if err != nil {
			s.refuseBundle(fmt.Errorf("%s refused: %w", origin, err))
			return
		}
		hash := string(sec.Data[policy.BundleHashKey])
		if hash == "" {
			sum := sha256.Sum256(data)
			hash = hex.EncodeToString(sum[:])
		}
		_ = s.applyBundle(b, hash, origin)
	case policy.KeyringSecretName:
		raw, ok := sec.Data[policy.KeyringKey]
		if !ok {
			s.refuseKeyring(fmt.Errorf("%s has no key %q", origin, policy.KeyringKey))
			return
		}
		_ = s.applyKeyring(raw, origin)
	}
}

// secretMissing keeps what is in force; before anything was loaded it
// says what the server waits for.
func (s *Server) secretMissing(name string) {
	err := fmt.Errorf("Secret %s/%s not found; the controller writes it (is it running with --namespace %s?)", s.opts.Namespace, name, s.opts.Namespace)
	if name == policy.BundleSecretName {
		s.refuseBundle(err)
	} else {
		s.refuseKeyring(err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
