package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
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

// Cluster follows the bundle and keyring Secrets in the challenge
// server's namespace: listed, then watched (by name, nothing else in the
// namespace is read), and listed again after any watch error. Each change
// is loaded without a restart.
type Cluster struct {
	// Client reads the Secrets; one that can watch is watched, any other
	// is polled.
	Client client.Client
	// Namespace holds the bundle and keyring Secrets.
	Namespace string
	// Log receives failed reads.
	Log *slog.Logger
}

// Run implements Source.
func (c *Cluster) Run(ctx context.Context, sink Sink) error {
	done := make(chan struct{}, 2)
	for _, name := range []string{policy.BundleSecretName, policy.KeyringSecretName} {
		go func() {
			defer func() { done <- struct{}{} }()
			c.follow(ctx, sink, name)
		}()
	}
	<-done
	<-done
	return nil
}

func (c *Cluster) follow(ctx context.Context, sink Sink, name string) {
	wc, canWatch := c.Client.(client.WithWatch)
	for attempt := 0; ctx.Err() == nil; {
		var err error
		if canWatch {
			err = c.listWatch(ctx, sink, wc, name)
		} else {
			err = c.get(ctx, sink, name)
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
			c.Log.Warn("reading Secret failed; retrying", "secret", c.Namespace+"/"+name, "error", err)
			attempt++
		} else {
			attempt = 0
		}
		if !sleepCtx(ctx, retryDelay(attempt)) {
			return
		}
	}
}

// listWatch lists the Secret, loads it, then watches it from that
// resourceVersion until the watch ends.
func (c *Cluster) listWatch(ctx context.Context, sink Sink, wc client.WithWatch, name string) error {
	sel := fields.OneTermEqualSelector("metadata.name", name)
	var list corev1.SecretList
	if err := wc.List(ctx, &list, &client.ListOptions{Namespace: c.Namespace, FieldSelector: sel}); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		c.missing(sink, name)
	}
	for i := range list.Items {
		ApplySecret(sink, &list.Items[i])
	}
	w, err := wc.Watch(ctx, &corev1.SecretList{}, &client.ListOptions{
		Namespace:     c.Namespace,
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
					ApplySecret(sink, sec)
				}
			case watch.Deleted:
				c.missing(sink, name)
			case watch.Error:
				return fmt.Errorf("watch: %v", apierrors.FromObject(ev.Object))
			}
		}
	}
}

func (c *Cluster) get(ctx context.Context, sink Sink, name string) error {
	var sec corev1.Secret
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, &sec)
	if apierrors.IsNotFound(err) {
		c.missing(sink, name)
		return nil
	}
	if err != nil {
		return err
	}
	ApplySecret(sink, &sec)
	return nil
}

// ApplySecret hands the bundle or keyring Secret to sink; other Secrets
// are ignored.
func ApplySecret(sink Sink, sec *corev1.Secret) {
	origin := "Secret " + sec.Namespace + "/" + sec.Name
	switch sec.Name {
	case policy.BundleSecretName:
		data, ok := sec.Data[policy.BundleKey]
		if !ok {
			sink.RefuseBundle(fmt.Errorf("%s has no key %q", origin, policy.BundleKey))
			return
		}
		b, err := policy.ParseBundle(data)
		if err != nil {
			sink.RefuseBundle(fmt.Errorf("%s refused: %w", origin, err))
			return
		}
		hash := string(sec.Data[policy.BundleHashKey])
		if hash == "" {
			sum := sha256.Sum256(data)
			hash = hex.EncodeToString(sum[:])
		}
		_ = sink.ApplyBundle(b, hash, origin)
	case policy.KeyringSecretName:
		raw, ok := sec.Data[policy.KeyringKey]
		if !ok {
			sink.RefuseKeyring(fmt.Errorf("%s has no key %q", origin, policy.KeyringKey))
			return
		}
		_ = sink.ApplyKeyring(raw, origin)
	}
}

// missing keeps what is in force; before anything was loaded it says
// what the server waits for.
func (c *Cluster) missing(sink Sink, name string) {
	err := &missingError{fmt.Sprintf("Secret %s/%s not found; the controller writes it (is it running with --namespace %s?)", c.Namespace, name, c.Namespace)}
	if name == policy.BundleSecretName {
		sink.RefuseBundle(err)
	} else {
		sink.RefuseKeyring(err)
	}
}
