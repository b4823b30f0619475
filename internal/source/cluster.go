package source

import (
	"context"
	"errors"
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
// server's namespace: listed, then watched (by name), and listed again
// after any watch error. Each change is loaded without a restart. The
// bundle Secret is a manifest: the shard Secrets it names are read by
// name (nothing else in the namespace is read), verified, and the bundle
// is put in force only when all of them are; otherwise it is refused, the
// bundle in force stays, and it is read again after a delay.
type Cluster struct {
	// Client reads the Secrets; one that can watch is watched, any other
	// is polled.
	Client client.Client
	// Namespace holds the bundle and keyring Secrets.
	Namespace string
	// Log receives failed reads.
	Log *slog.Logger

	// shards are the shards of the last manifests read: a new manifest
	// reads only its new shards.
	shards policy.ShardMemo
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
		if err := c.apply(ctx, sink, &list.Items[i]); err != nil {
			return err
		}
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
					if err := c.apply(ctx, sink, sec); err != nil {
						return err
					}
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
	return c.apply(ctx, sink, &sec)
}

// apply hands a Secret read to sink. A manifest whose shards cannot all
// be read and verified is refused (the bundle in force stays) and returned
// as an error, so that it is read again after a delay: its shards may be
// written back without the manifest changing.
func (c *Cluster) apply(ctx context.Context, sink Sink, sec *corev1.Secret) error {
	if sec.Name != policy.BundleSecretName {
		ApplySecret(sink, sec)
		return nil
	}
	err := applyBundle(sink, sec, c.fetchShard(ctx), &c.shards)
	if _, sharded := sec.Data[policy.ManifestKey]; sharded {
		return err
	}
	return nil
}

func (c *Cluster) fetchShard(ctx context.Context) policy.ShardFetcher {
	return func(name string) ([]byte, error) {
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: c.Namespace, Name: name}, &sec); err != nil {
			return nil, err
		}
		return sec.Data[policy.ShardKey], nil
	}
}

// ApplySecret hands the bundle or keyring Secret to sink; other Secrets
// are ignored. It reads no shards: a bundle Secret holding a manifest is
// refused here (Cluster reads its shards).
func ApplySecret(sink Sink, sec *corev1.Secret) {
	origin := "Secret " + sec.Namespace + "/" + sec.Name
	switch sec.Name {
	case policy.BundleSecretName:
		_ = applyBundle(sink, sec, nil, nil)
	case policy.KeyringSecretName:
		raw, ok := sec.Data[policy.KeyringKey]
		if !ok {
			sink.RefuseKeyring(fmt.Errorf("%s has no key %q", origin, policy.KeyringKey))
			return
		}
		_ = sink.ApplyKeyring(raw, origin)
	}
}

// applyBundle puts the bundle of a bundle Secret in force when all of it
// reads and verifies, and refuses it otherwise.
func applyBundle(sink Sink, sec *corev1.Secret, fetch policy.ShardFetcher, memo *policy.ShardMemo) error {
	origin := "Secret " + sec.Namespace + "/" + sec.Name
	b, _, hash, err := policy.ReadStored(sec.Data, fetch, memo)
	switch {
	case errors.Is(err, policy.ErrNotSharded):
		err = fmt.Errorf("%s has no key %q (nor %q, the single-key form)", origin, policy.ManifestKey, policy.BundleKey)
	case err != nil:
		err = fmt.Errorf("%s refused: %w", origin, err)
	}
	if err != nil {
		sink.RefuseBundle(err)
		return err
	}
	_ = sink.ApplyBundle(b, hash, origin)
	return nil
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
