package admin

import (
	"context"
	"fmt"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/revocation"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// EventSource is the component named in the Events of admin actions.
const EventSource = "kubectl-mfa"

// Cluster builds the Admin of a cluster installation whose challenge
// server runs in namespace, and the resolver of --policy.
func Cluster(ctx context.Context, cfg *rest.Config, namespace string, a *audit.Logger, now func() time.Time) (*Admin, PolicyProviders, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, authnv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, nil, err
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, fmt.Errorf("building the cluster client: %w", err)
	}
	secrets := store.NewSecretStore(c, namespace)
	ad := &Admin{
		Store:   secrets,
		Lister:  secrets,
		Keys:    func(ctx context.Context, user string) ([]store.Key, error) { return providerKeys(ctx, c, user) },
		Revoker: &revocation.ClusterStore{Client: c, Namespace: namespace, Now: now},
		Events:  &kubeEvents{c: c, now: now},
		Audit:   a,
		Actor:   whoAmI(ctx, c),
		Now:     now,
	}
	resolve := func(ctx context.Context, ref string) ([]string, error) {
		ns, name, err := splitRef(ref, "--policy")
		if err != nil {
			return nil, err
		}
		var p v1alpha1.MFAPolicy
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return nil, fmt.Errorf("reading MFAPolicy %s/%s: %w", ns, name, err)
		}
		return policyProviders(&p), nil
	}
	return ad, resolve, nil
}

// providerKeys are user's keys with every MFAProvider of the cluster.
func providerKeys(ctx context.Context, c client.Client, user string) ([]store.Key, error) {
	var list v1alpha1.MFAProviderList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing the MFAProviders: %w", err)
	}
	keys := make([]store.Key, 0, len(list.Items))
	for _, p := range list.Items {
		keys = append(keys, store.Key{Provider: p.Namespace + "/" + p.Name, User: user, ProviderCreated: p.CreationTimestamp.Time})
	}
	return keys, nil
}

// whoAmI is the caller's Kubernetes user name (a SelfSubjectReview, which
// every authenticated user may create); "unknown" if the API server does
// not say.
func whoAmI(ctx context.Context, c client.Client) string {
	r := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil || r.Status.UserInfo.Username == "" {
		return "unknown"
	}
	return r.Status.UserInfo.Username
}

// kubeEvents records Events on MFAProviders.
type kubeEvents struct {
	c   client.Client
	now func() time.Time
}

func (k *kubeEvents) Record(ctx context.Context, provider, reason, message string) error {
	ns, name, err := splitRef(provider, "provider")
	if err != nil {
		return err
	}
	var p v1alpha1.MFAProvider
	if err := k.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return err
	}
	t := metav1.NewTime(k.now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: name + "."},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: v1alpha1.GroupVersion.String(), Kind: "MFAProvider",
			Namespace: ns, Name: name, UID: p.UID, ResourceVersion: p.ResourceVersion,
		},
		Reason: reason, Message: message, Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: EventSource},
		FirstTimestamp: t, LastTimestamp: t, Count: 1,
		ReportingController: "mfa.operator.dev/" + EventSource, ReportingInstance: EventSource,
	}
	return k.c.Create(ctx, ev)
}
