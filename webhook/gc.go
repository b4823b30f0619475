package webhook

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

const (
	gcTuneInterval = time.Second
	// minHeapGoal is the Go runtime's smallest heap goal at GOGC=100; it
	// scales with the percentage, which is bounded so that this floor
	// never exceeds the headroom.
	minHeapGoal = 4 << 20
)

// tuneGC lets the heap grow by about headroom bytes between garbage
// collections. With Go's default (GOGC=100) a server whose live heap is a
// few MB collects every few MB allocated, and every request allocates
// some: collections then cost more CPU than the decisions. Every
// gcTuneInterval the percentage is recomputed from the live heap of the
// last collection, never below 100 (a large configuration keeps Go's
// default) and never so high that the runtime's smallest heap goal exceeds
// the headroom. Until the first collection the default stays. An explicit
// GOGC in the environment, or headroom 0, leaves the collector alone.
func tuneGC(ctx context.Context, headroom uint64, log *slog.Logger) {
	if headroom == 0 {
		return
	}
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("GOGC is set; --gc-headroom is not applied", "GOGC", v)
		return
	}
	samples := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := 100
	t := time.NewTicker(gcTuneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rtmetrics.Read(samples)
		live := samples[0].Value.Uint64()
		if live == 0 { // no collection yet
			continue
		}
		if p := gcPercent(live, headroom); p != last {
			debug.SetGCPercent(p)
			last = p
		}
	}
}

// gcPercent is the GOGC value that lets a heap of live bytes grow by
// headroom: at least 100, at most what keeps the smallest heap goal within
// the headroom, rounded down to a multiple of 10 so that small changes of
// the live heap change nothing.
func gcPercent(live, headroom uint64) int {
	maxP := max(headroom*100/minHeapGoal, 100)
	p := maxP
	if live > 0 {
		p = min(headroom*100/live, maxP)
	}
	if p <= 100 {
		return 100
	}
	return int(p / 10 * 10)
}
