package main

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// readyTimes records when each policy was first seen Ready at its
// generation, from the informer's events: no listing of every policy
// while waiting.
type readyTimes struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newReadyTimes(n int) *readyTimes { return &readyTimes{at: make(map[string]time.Time, n)} }

func (r *readyTimes) handler() toolscache.ResourceEventHandler {
	see := func(obj any) {
		p, ok := obj.(*v1alpha1.MFAPolicy)
		if !ok || !readyAtGeneration(p.Status.Conditions, p.Generation, p.Status.ObservedGeneration) {
			return
		}
		now := time.Now()
		r.mu.Lock()
		if _, seen := r.at[p.Name]; !seen {
			r.at[p.Name] = now
		}
		r.mu.Unlock()
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    see,
		UpdateFunc: func(_, obj any) { see(obj) },
	}
}

// count returns how many policies have been Ready, and when the last of
// them became Ready.
func (r *readyTimes) count() (int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	for _, t := range r.at {
		if t.After(last) {
			last = t
		}
	}
	return len(r.at), last
}

// latencies returns, for each policy, the time from its create returning
// to it being seen Ready, sorted.
func (r *readyTimes) latencies(createdAt []time.Time, pols []*v1alpha1.MFAPolicy) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, 0, len(pols))
	for i, p := range pols {
		if t, ok := r.at[p.Name]; ok {
			out = append(out, max(t.Sub(createdAt[i]), 0))
		}
	}
	slices.Sort(out)
	return out
}

// quantile of sorted durations (q=1: the largest).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

// reportLatencies prints what goals are set on, measured from the last
// create (lastCreate, like allReady and bundled, is counted from the first
// create): when all were Ready and the bundle held them all, and each
// policy's time from create to Ready.
func reportLatencies(lat []time.Duration, allReady, bundled, lastCreate time.Duration, bundleFrom string, blog *bundleLog) {
	fmt.Printf("RESULT latencies ready_after_last_s=%.2f bundle_after_last_s=%.2f bundle_from=%s ready_p50_s=%.2f ready_p99_s=%.2f ready_max_s=%.2f\n",
		(allReady - lastCreate).Seconds(), (bundled - lastCreate).Seconds(), bundleFrom,
		quantile(lat, 0.50).Seconds(), quantile(lat, 0.99).Seconds(), quantile(lat, 1).Seconds())
	if blog != nil && blog.errors() > 0 {
		fmt.Fprintf(os.Stderr, "ctrlbench: the bundle reconciler logged %d errors (see the controller log)\n", blog.errors())
	}
}
