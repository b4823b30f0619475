// Command ctrlbench measures the controller at scale: it creates N
// MFAPolicies against a running API server (with the operator running
// against it) and reports how long it takes until every one is Ready=True
// at its generation and the bundle holds all of them, and the bundle's
// size.
//
//	ctrlbench -kubeconfig KUBECONFIG -n 1000
//
// With -controller-log, the bundle is judged from the controller's log
// ("bundle written" and "bundle built" lines with their policy count)
// rather than by reading the bundle Secret, so that it measures whatever
// form the bundle takes, and what was built when it could not be written.
//
//	ctrlbench edit -kubeconfig KUBECONFIG -servers URL,URL
//	ctrlbench shrink -kubeconfig KUBECONFIG -to 1000
//
// edit changes one policy's rules and reports when every challenge server
// answers with the new decision; shrink deletes policies down to a count
// (see edit.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/hack/bench/internal/benchpolicy"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "edit" || os.Args[1] == "shrink") {
		if err := runTool(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "ctrlbench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	n := flag.Int("n", 1000, "number of MFAPolicies to create")
	operatorNS := flag.String("operator-namespace", "mfa-system", "namespace of the bundle Secret")
	workers := flag.Int("workers", 8, "concurrent creates")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	operatorPID := flag.Int("operator-pid", 0, "give up as soon as this process (the operator) has exited")
	controllerLog := flag.String("controller-log", "", "the controller's log file: judge the bundle from its lines rather than from the bundle Secret")
	writeGrace := flag.Duration("write-grace", time.Minute, "with -controller-log: how long after the bundle was built with every policy to wait for it to be written")
	bundleOnly := flag.Bool("bundle-only", false, "wait for the bundle to hold every policy, not for every policy to be Ready")
	flag.Parse()
	log.SetLogger(logr.Discard())

	ctx, cancel := context.WithTimeoutCause(context.Background(), *timeout, fmt.Errorf("not done within %s", *timeout))
	defer cancel()
	if *operatorPID > 0 {
		ctx = watchProcess(ctx, *operatorPID)
	}
	if err := run(ctx, *kubeconfig, *n, *operatorNS, *workers, *bundleOnly, *controllerLog, *writeGrace); err != nil {
		fmt.Fprintf(os.Stderr, "ctrlbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig string, n int, operatorNS string, workers int, bundleOnly bool, controllerLog string, writeGrace time.Duration) error {
	var blog *bundleLog
	if controllerLog != "" {
		var err error
		if blog, err = followBundleLog(ctx, controllerLog); err != nil {
			return err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading kubeconfig %q: %w", kubeconfig, err)
	}
	// Creating a thousand objects is what is measured, not client-side
	// throttling.
	cfg.QPS, cfg.Burst = 1000, 2000
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

	// Watched through an informer, so that checking progress costs the
	// API server and the controller nothing.
	informers, err := cache.New(cfg, cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.MFAPolicy{}: {Namespaces: map[string]cache.Config{benchpolicy.Namespace: {}}},
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{operatorNS: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", policy.BundleSecretName),
			},
		},
	})
	if err != nil {
		return err
	}
	polInformer, err := informers.GetInformer(ctx, &v1alpha1.MFAPolicy{})
	if err != nil {
		return err
	}
	readyAt := newReadyTimes(n)
	if _, err := polInformer.AddEventHandler(readyAt.handler()); err != nil {
		return err
	}
	if _, err := informers.GetInformer(ctx, &corev1.Secret{}); err != nil {
		return err
	}
	go func() { _ = informers.Start(ctx) }()
	if !informers.WaitForCacheSync(ctx) {
		return errors.New("the informers did not sync")
	}

	var existing v1alpha1.MFAPolicyList
	if err := informers.List(ctx, &existing, client.InNamespace(benchpolicy.Namespace)); err != nil {
		return err
	}
	if len(existing.Items) > 0 {
		return fmt.Errorf("namespace %s already holds %d MFAPolicies; start from an empty API server", benchpolicy.Namespace, len(existing.Items))
	}

	for _, ns := range []string{benchpolicy.Namespace, operatorNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	// The provider is in place and Ready before the clock starts.
	prov := benchpolicy.Provider()
	if err := c.Create(ctx, prov); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating MFAProvider %s/%s: %w", prov.Namespace, prov.Name, err)
	}
	if err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		var p v1alpha1.MFAProvider
		if err := c.Get(ctx, client.ObjectKeyFromObject(prov), &p); err != nil {
			return false, err
		}
		return readyAtGeneration(p.Status.Conditions, p.Generation, p.Status.ObservedGeneration), nil
	}); err != nil {
		return fmt.Errorf("waiting for MFAProvider %s/%s to be Ready: %w", prov.Namespace, prov.Name, err)
	}

	pols := benchpolicy.Policies(n)
	start := time.Now()
	createdAt, err := createAll(ctx, c, pols, workers)
	if err != nil {
		return err
	}
	applied := time.Since(start)
	lastCreate := time.Now()
	bundleFrom := "secret"
	fmt.Fprintf(os.Stderr, "ctrlbench: created %d MFAPolicies in %.2fs\n", n, applied.Seconds())

	var allReady, bundled time.Duration
	var bundleBytes, bundlePolicies, shards, largest int
	var bundleVersion string
	var memo policy.ShardMemo
	sizes := map[string]int{}
	lastReport := time.Now()
	err = poll(ctx, 20*time.Millisecond, func() (bool, error) {
		if allReady == 0 && !bundleOnly {
			ready, last := readyAt.count()
			if ready == n {
				allReady = last.Sub(start)
			} else if time.Since(lastReport) > 5*time.Second {
				lastReport = time.Now()
				fmt.Fprintf(os.Stderr, "ctrlbench: %d/%d Ready after %.1fs\n", ready, n, time.Since(start).Seconds())
			}
		}
		if bundled == 0 && blog != nil {
			built, written := blog.first(n, start)
			switch {
			case !written.IsZero():
				bundled, bundleFrom = written.Sub(start), "written"
			case !built.IsZero() && time.Since(built) > writeGrace:
				bundled, bundleFrom = built.Sub(start), "built"
			}
			bundlePolicies = 0
			if !built.IsZero() {
				bundlePolicies = n
			}
		}
		if bundled == 0 && blog == nil {
			var sec corev1.Secret
			err := informers.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: policy.BundleSecretName}, &sec)
			if err != nil && !apierrors.IsNotFound(err) {
				return false, err
			}
			if err == nil && sec.ResourceVersion != bundleVersion {
				stored, err := readBundle(ctx, c, &sec, &memo, sizes)
				if err != nil {
					return false, err
				}
				bundleVersion = sec.ResourceVersion
				bundlePolicies, bundleBytes, shards, largest = stored.policies, stored.bytes, stored.shards, stored.largest
				if stored.policies == n {
					bundled = time.Since(start)
				}
			}
		}
		return (allReady > 0 || bundleOnly) && bundled > 0, nil
	})
	if err == nil && !bundleOnly {
		reportLatencies(readyAt.latencies(createdAt, pols), allReady, bundled, lastCreate.Sub(start), bundleFrom, blog)
	}
	if err != nil {
		return fmt.Errorf("waiting for %d Ready MFAPolicies and a bundle holding them (bundle holds %d): %w", n, bundlePolicies, err)
	}
	fmt.Printf("RESULT policies=%d apply_s=%.2f ready_s=%.2f bundle_s=%.2f total_s=%.2f bundle_bytes=%d shards=%d largest_object_bytes=%d\n",
		n, applied.Seconds(), allReady.Seconds(), bundled.Seconds(), max(allReady, bundled).Seconds(), bundleBytes, shards, largest)
	return nil
}

// storedBundle is what the bundle Secret and its shards hold.
type storedBundle struct {
	policies int // of the benchmark's namespace
	// bytes is the data stored: the bundle Secret's and its shards'.
	bytes, shards, largest int
}

// readBundle reads the bundle in the bundle Secret sec and the shards it
// names, as the challenge server does: each shard content once (memo;
// sizes keeps the size of each shard read).
func readBundle(ctx context.Context, c client.Reader, sec *corev1.Secret, memo *policy.ShardMemo, sizes map[string]int) (storedBundle, error) {
	var st storedBundle
	for _, v := range sec.Data {
		st.bytes += len(v)
	}
	st.largest = st.bytes
	var mu sync.Mutex
	fetch := func(name string) ([]byte, error) {
		var shard corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: sec.Namespace, Name: name}, &shard); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		sizes[name] = len(shard.Data[policy.ShardKey])
		return shard.Data[policy.ShardKey], nil
	}
	b, m, _, err := policy.ReadStored(sec.Data, fetch, memo)
	if err != nil {
		return st, fmt.Errorf("reading the bundle Secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	if m != nil {
		st.shards = len(m.Shards)
		for _, r := range m.Shards {
			st.bytes, st.largest = st.bytes+sizes[r.Name], max(st.largest, sizes[r.Name])
		}
	}
	for _, p := range b.Policies {
		if p.Namespace == benchpolicy.Namespace {
			st.policies++
		}
	}
	return st, nil
}

// createAll creates the policies with a few concurrent workers.
// It returns when each create returned.
func createAll(ctx context.Context, c client.Client, pols []*v1alpha1.MFAPolicy, workers int) ([]time.Time, error) {
	createdAt := make([]time.Time, len(pols))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for i, p := range pols {
		g.Go(func() error {
			if err := c.Create(ctx, p); err != nil {
				return fmt.Errorf("creating MFAPolicy %s/%s: %w", p.Namespace, p.Name, err)
			}
			createdAt[i] = time.Now()
			return nil
		})
	}
	return createdAt, g.Wait()
}

// readyAtGeneration: Ready=True and describing the current generation.
func readyAtGeneration(conds []metav1.Condition, generation, observed int64) bool {
	c := apimeta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
	if c == nil || c.Status != metav1.ConditionTrue {
		return false
	}
	if c.ObservedGeneration != 0 {
		return c.ObservedGeneration == generation
	}
	return observed == generation
}

// watchProcess returns a context cancelled when process pid has exited.
func watchProcess(parent context.Context, pid int) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
					cancel(fmt.Errorf("the operator (pid %d) has exited", pid))
					return
				}
			}
		}
	}()
	return ctx
}

func poll(ctx context.Context, every time.Duration, done func() (bool, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}
