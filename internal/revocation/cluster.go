package revocation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Labels and names of the revocation ConfigMaps.
const (
	KindLabel       = "mfa.operator.dev/kind"
	KindRevocations = "revocations"
	ManagedByLabel  = "app.kubernetes.io/managed-by"
	ManagedByValue  = "mfa-operator"
	// ShardPrefix begins the name of every shard: mfa-revocations-0 to -f.
	ShardPrefix = "mfa-revocations-"
	// Shards is how many ConfigMaps hold the revocations: a user's is
	// chosen by the first hex digit of the SHA-256 of the user id. With
	// about 90 bytes an entry, 16 shards of at most 1 MiB hold some
	// 180,000 users revoked within MaxAge.
	Shards = 16
)

// maxAttempts bounds the compare-and-swap rounds of one Revoke.
const maxAttempts = 10

func userHash(user string) string {
	sum := sha256.Sum256([]byte(user))
	return hex.EncodeToString(sum[:])
}

// ShardName is the ConfigMap that holds user's revocation.
func ShardName(user string) string { return ShardPrefix + userHash(user)[:1] }

// entryKey is user's key in its shard (a valid ConfigMap key).
func entryKey(user string) string { return userHash(user)[:40] }

func encodeEntry(user string, at int64) string { return strconv.FormatInt(at, 10) + " " + user }

func decodeEntry(v string) (user string, at int64, ok bool) {
	ts, user, ok := strings.Cut(v, " ")
	if !ok || user == "" {
		return "", 0, false
	}
	at, err := strconv.ParseInt(ts, 10, 64)
	return user, at, err == nil
}

// decodeShard reads a shard's entries by user; entries that do not parse
// are skipped (and named in the log by the caller's count).
func decodeShard(data map[string]string) (map[string]int64, int) {
	out := make(map[string]int64, len(data))
	bad := 0
	for k, v := range data {
		if isBrowserKey(k) {
			continue // decodeBrowsers
		}
		user, at, ok := decodeEntry(v)
		if !ok {
			bad++
			continue
		}
		out[user] = max(out[user], at)
	}
	return out, bad
}

// ClusterStore keeps revocations in Shards ConfigMaps of one namespace,
// written with compare-and-swap, watched by every replica.
type ClusterStore struct {
	Client    client.Client
	Namespace string
	Log       *slog.Logger
	Now       func() time.Time
}

func (s *ClusterStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Revoke records that user's cookies issued before at no longer count,
// pruning the shard's entries older than MaxAge on the way.
func (s *ClusterStore) Revoke(ctx context.Context, user string, at time.Time) error {
	if user == "" {
		return errors.New("revoking: empty user id")
	}
	key := entryKey(user)
	return s.updateShard(ctx, ShardName(user), func(cm *corev1.ConfigMap) {
		if old, ok := cm.Data[key]; ok {
			if u, prev, ok := decodeEntry(old); ok && u == user && prev > at.UnixNano() {
				at = time.Unix(0, prev)
			}
		}
		cm.Data[key] = encodeEntry(user, at.UnixNano())
	})
}

// updateShard sets entries of the shard name with put, prunes it and
// writes it with compare-and-swap (creating it when missing).
func (s *ClusterStore) updateShard(ctx context.Context, name string, put func(cm *corev1.ConfigMap)) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		cm := &corev1.ConfigMap{}
		err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: name}, cm)
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: name}}
			s.put(cm, put)
			err = s.Client.Create(ctx, cm)
			if apierrors.IsAlreadyExists(err) {
				continue
			}
		case err != nil:
			return fmt.Errorf("reading ConfigMap %s/%s: %w", s.Namespace, name, err)
		default:
			s.put(cm, put)
			err = s.Client.Update(ctx, cm) // carries the resourceVersion read
			if apierrors.IsConflict(err) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("writing ConfigMap %s/%s: %w", s.Namespace, name, err)
		}
		return nil
	}
	return fmt.Errorf("ConfigMap %s/%s changed under %d consecutive updates; try again", s.Namespace, name, maxAttempts)
}

// put sets entries with set and prunes the shard: user entries older than
// MaxAge, browser entries past their expiry.
func (s *ClusterStore) put(cm *corev1.ConfigMap, set func(cm *corev1.ConfigMap)) {
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	set(cm)
	now := s.now()
	oldest := now.Add(-MaxAge).UnixNano()
	for k, v := range cm.Data {
		limit := oldest
		if isBrowserKey(k) {
			limit = now.UnixNano()
		}
		if _, t, ok := decodeEntry(v); ok && t < limit {
			delete(cm.Data, k)
		}
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[KindLabel] = KindRevocations
	cm.Labels[ManagedByLabel] = ManagedByValue
}

// Run fills l from the shards and keeps it current: list, then watch from
// that resourceVersion, and list again after the watch ends or fails.
func (s *ClusterStore) Run(ctx context.Context, l *List) {
	wc, ok := s.Client.(client.WithWatch)
	if !ok {
		s.Log.Error("the revocation store's client cannot watch; revocations are not followed")
		return
	}
	for attempt := 0; ctx.Err() == nil; {
		err := s.listWatch(ctx, wc, l)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.Log.Warn("following the revocation ConfigMaps failed; retrying", "namespace", s.Namespace, "error", err)
			attempt++
		} else {
			attempt = 0
		}
		d := min(time.Duration(1<<min(attempt, 5))*100*time.Millisecond, 3*time.Second)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *ClusterStore) listWatch(ctx context.Context, wc client.WithWatch, l *List) error {
	sel := labels.SelectorFromSet(labels.Set{KindLabel: KindRevocations})
	var list corev1.ConfigMapList
	if err := wc.List(ctx, &list, &client.ListOptions{Namespace: s.Namespace, LabelSelector: sel}); err != nil {
		return err
	}
	all := map[string]map[string]int64{}
	browsers := map[string]map[string]Browser{}
	for i := range list.Items {
		all[list.Items[i].Name] = s.decode(&list.Items[i])
		browsers[list.Items[i].Name] = decodeBrowsers(list.Items[i].Data)
	}
	l.ReplaceAllBrowsers(browsers)
	l.ReplaceAll(all)
	w, err := wc.Watch(ctx, &corev1.ConfigMapList{}, &client.ListOptions{
		Namespace:     s.Namespace,
		LabelSelector: sel,
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
				return nil
			}
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			switch {
			case ev.Type == watch.Error:
				return fmt.Errorf("watch: %v", apierrors.FromObject(ev.Object))
			case !isCM:
			case ev.Type == watch.Added || ev.Type == watch.Modified:
				l.ReplaceBrowsers(cm.Name, decodeBrowsers(cm.Data))
				l.Replace(cm.Name, s.decode(cm))
			case ev.Type == watch.Deleted:
				l.ReplaceBrowsers(cm.Name, nil)
				l.Replace(cm.Name, nil)
			}
		}
	}
}

func (s *ClusterStore) decode(cm *corev1.ConfigMap) map[string]int64 {
	entries, bad := decodeShard(cm.Data)
	if bad > 0 {
		s.Log.Warn("revocation entries that do not parse were skipped", "configMap", cm.Namespace+"/"+cm.Name, "count", bad)
	}
	return entries
}
