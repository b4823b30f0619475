package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/hack/bench/internal/benchpolicy"
)

// runTool runs `ctrlbench edit` or `ctrlbench shrink`.
func runTool(name string, args []string) error {
	fs := flag.NewFlagSet("ctrlbench "+name, flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	servers := fs.String("servers", "", "edit: comma-separated base URLs of the challenge servers, e.g. http://127.0.0.1:8080")
	to := fs.Int("to", 1000, "shrink: keep the first this many benchmark policies, delete the others")
	n := fs.Int("n", 0, "how many benchmark policies there are")
	controllerLog := fs.String("controller-log", "", "edit: the controller's log file, to say when the bundle with the edit was written")
	workers := fs.Int("workers", 16, "shrink: concurrent deletes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeoutCause(context.Background(), *timeout, fmt.Errorf("not done within %s", *timeout))
	defer cancel()
	c, err := newClient(*kubeconfig)
	if err != nil {
		return err
	}
	if name == "shrink" {
		return shrink(ctx, c, *n, *to, *workers)
	}
	var urls []string
	for _, u := range strings.Split(*servers, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, strings.TrimRight(u, "/"))
		}
	}
	if len(urls) == 0 {
		return errors.New("-servers names no challenge server")
	}
	var blog *bundleLog
	if *controllerLog != "" {
		if blog, err = followBundleLog(ctx, *controllerLog); err != nil {
			return err
		}
	}
	return edit(ctx, c, urls, blog, *n)
}

func newClient(kubeconfig string) (client.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// The decision a request gets before and after the edit: the benchmark
// policy asks for a second factor (401); the edited one denies (403).
const (
	decisionBefore = http.StatusUnauthorized
	decisionAfter  = http.StatusForbidden
)

// edit waits until every server answers for the benchmark policy as
// before the edit, replaces the policy's rules by one that denies, and
// reports when each server first answered with the new decision and,
// with blog, when the controller wrote the bundle of n policies with it.
func edit(ctx context.Context, c client.Client, servers []string, blog *bundleLog, n int) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, s := range servers {
		if err := pollDecision(ctx, hc, s, decisionBefore, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%s before the edit: %w", s, err)
		}
	}
	p := &v1alpha1.MFAPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: benchpolicy.Namespace, Name: benchpolicy.PolicyName}, p); err != nil {
		return err
	}
	before := p.DeepCopy()
	p.Spec.Rules = []v1alpha1.Rule{{Name: "edited", When: "true", Action: v1alpha1.ActionDeny}}
	start := time.Now()
	if err := c.Patch(ctx, p, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("editing MFAPolicy %s/%s: %w", p.Namespace, p.Name, err)
	}
	took := make([]time.Duration, len(servers))
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pollDecision(ctx, hc, s, decisionAfter, 5*time.Millisecond)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("after the edit: %w", err)
	}
	var parts []string
	for i, s := range servers {
		parts = append(parts, fmt.Sprintf("%s=%.3f", s, took[i].Seconds()))
	}
	written := -1.0
	if blog != nil {
		// The log is read as it grows: the line may come a moment later.
		_ = poll(ctx, 20*time.Millisecond, func() (bool, error) {
			_, w := blog.first(n, start)
			if !w.IsZero() {
				written = w.Sub(start).Seconds()
			}
			return !w.IsZero() || time.Since(start) > slicesMax(took)+5*time.Second, nil
		})
	}
	fmt.Printf("RESULT edit_s=%.3f written_s=%.3f servers=%d %s\n", slicesMax(took).Seconds(), written, len(servers), strings.Join(parts, " "))
	return nil
}

// pollDecision asks server about the benchmark policy until it answers
// want.
func pollDecision(ctx context.Context, hc *http.Client, server string, want int, every time.Duration) error {
	url := server + "/auth/" + benchpolicy.Namespace + "/" + benchpolicy.PolicyName
	last := 0
	err := poll(ctx, every, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("X-Original-URL", "https://"+benchpolicy.Host+"/edit-probe")
		req.Header.Set("X-Original-Method", http.MethodGet)
		req.Header.Set("X-Auth-Request-Email", benchpolicy.User)
		req.Header.Set("X-Forwarded-For", "203.0.113.7") // outside the office network
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		_ = resp.Body.Close()
		last = resp.StatusCode
		return last == want, nil
	})
	if err != nil {
		return fmt.Errorf("answers %d, not %d: %w", last, want, err)
	}
	return nil
}

// shrink deletes the benchmark policies from index to on (see
// benchpolicy.Policies), keeping the first to.
func shrink(ctx context.Context, c client.Client, n, to, workers int) error {
	pols := benchpolicy.Policies(n)
	if to >= len(pols) {
		return nil
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for _, p := range pols[to:] {
		g.Go(func() error {
			err := c.Delete(ctx, p, client.PropagationPolicy(metav1.DeletePropagationBackground))
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting MFAPolicy %s/%s: %w", p.Namespace, p.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func slicesMax(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
