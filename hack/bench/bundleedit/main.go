// Command bundleedit measures what one policy edit costs the stored
// bundle: it edits one MFAPolicy (renames its first rule), waits until the
// bundle Secret's manifest names the new content, and reports the bytes
// written for it: the manifest and the shards it names that the manifest
// before did not.
//
//	bundleedit -kubeconfig KUBECONFIG -policy apps/policy-5000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	operatorNS := flag.String("operator-namespace", "mfa-system", "namespace of the bundle Secret")
	target := flag.String("policy", "apps/policy-5000", "namespace/name of the MFAPolicy to edit")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *kubeconfig, *operatorNS, *target); err != nil {
		fmt.Fprintf(os.Stderr, "bundleedit: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, operatorNS, target string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %q: %w", kubeconfig, err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ns, name, ok := strings.Cut(target, "/")
	if !ok {
		return fmt.Errorf("-policy %q: want namespace/name", target)
	}
	bundleKey := client.ObjectKey{Namespace: operatorNS, Name: policy.BundleSecretName}
	var before corev1.Secret
	if err := c.Get(ctx, bundleKey, &before); err != nil {
		return fmt.Errorf("reading the bundle Secret: %w", err)
	}
	old, err := policy.ParseManifest(before.Data[policy.ManifestKey])
	if err != nil {
		return err
	}
	had := map[string]bool{}
	for _, r := range old.Shards {
		had[r.Name] = true
	}

	var p v1alpha1.MFAPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		return fmt.Errorf("reading MFAPolicy %s: %w", target, err)
	}
	if len(p.Spec.Rules) == 0 {
		return fmt.Errorf("MFAPolicy %s has no rule to edit", target)
	}
	p.Spec.Rules[0].Name = fmt.Sprintf("edited-%d", time.Now().UnixNano()%1e6)
	start := time.Now()
	if err := c.Update(ctx, &p); err != nil {
		return fmt.Errorf("editing MFAPolicy %s: %w", target, err)
	}

	var after corev1.Secret
	for {
		if err := c.Get(ctx, bundleKey, &after); err != nil {
			return fmt.Errorf("reading the bundle Secret: %w", err)
		}
		if string(after.Data[policy.BundleHashKey]) != string(before.Data[policy.BundleHashKey]) {
			break
		}
		select {
		case <-ctx.Done():
			return errors.New("the bundle did not change after the edit")
		case <-time.After(50 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	next, err := policy.ParseManifest(after.Data[policy.ManifestKey])
	if err != nil {
		return err
	}
	manifestBytes := 0
	for _, v := range after.Data {
		manifestBytes += len(v)
	}
	written, shardBytes := 0, 0
	for _, r := range next.Shards {
		if had[r.Name] {
			continue
		}
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: r.Name}, &s); err != nil {
			return fmt.Errorf("reading the new shard %s: %w", r.Name, err)
		}
		written, shardBytes = written+1, shardBytes+len(s.Data[policy.ShardKey])
	}
	fmt.Printf("RESULT edit_s=%.2f rewritten_bytes=%d manifest_bytes=%d new_shards=%d shard_bytes=%d\n",
		elapsed.Seconds(), manifestBytes+shardBytes, manifestBytes, written, shardBytes)
	return nil
}
