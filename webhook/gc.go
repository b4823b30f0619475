package webhook

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// DefaultGCHeadroom is the heap growth allowed between two garbage
// collections when the live heap is small.
const DefaultGCHeadroom = 32 << 20

const (
	gcTuneInterval = 10 * time.Second
	// maxGCPercent bounds the percentage for a nearly empty heap.
	maxGCPercent = 2000
)

// tuneGC lets the heap grow by at least headroom bytes between garbage
// collections. With Go's default (GOGC=100) a server whose live heap is a
// few MB collects every few MB allocated, and every request allocates
// some: collections then cost more CPU than the decisions. The percentage
// is recomputed from the live heap every gcTuneInterval and never goes
// below 100, so a large configuration (many policies) keeps Go's default.
// An explicit GOGC in the environment, or headroom 0, leaves the collector
// alone.
func tuneGC(ctx context.Context, headroom uint64, log *slog.Logger) {
	if headroom == 0 {
		return
	}
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("GOGC is set; --gc-headroom is not applied", "GOGC", v)
		return
	}
	samples := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	last := -1
	apply := func() {
		rtmetrics.Read(samples)
		live := samples[0].Value.Uint64()
		if live == 0 { // no collection yet
			live = samples[1].Value.Uint64()
		}
		if p := gcPercent(live, headroom); p != last {
			debug.SetGCPercent(p)
			last = p
		}
	}
	apply()
	t := time.NewTicker(gcTuneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			apply()
		}
	}
}

// gcPercent is the GOGC value that lets a heap of live bytes grow by
// headroom, between 100 and maxGCPercent, rounded down to a multiple of 10
// so that small changes of the live heap change nothing.
func gcPercent(live, headroom uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	p := headroom * 100 / live
	switch {
	case p <= 100:
		return 100
	case p >= maxGCPercent:
		return maxGCPercent
	}
	return int(p / 10 * 10)
}
