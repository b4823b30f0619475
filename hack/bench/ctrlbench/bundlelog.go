package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// bundleLog follows the controller's JSON log for its bundle lines:
// "bundle built" (what the bundle reconciler compiled) and "bundle written"
// (what it delivered, whatever form the bundle takes in the cluster). It
// tells when a bundle with a given number of policies was first built and
// first written, by the log's own clock.
type bundleLog struct {
	path string

	mu      sync.Mutex
	built   map[int][]time.Time
	written map[int][]time.Time
	// writeErrors counts the bundle reconciler's failed writes.
	writeErrors int
}

type logLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Controller string    `json:"controller"`
	Policies   *int      `json:"policies"`
	Err        string    `json:"err"`
}

func followBundleLog(ctx context.Context, path string) (*bundleLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	l := &bundleLog{path: path, built: map[int][]time.Time{}, written: map[int][]time.Time{}}
	go func() {
		defer f.Close()
		r := bufio.NewReaderSize(f, 1<<20)
		var partial string
		for ctx.Err() == nil {
			line, err := r.ReadString('\n')
			if err == io.EOF {
				partial += line
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			if err != nil {
				return
			}
			l.add(partial + line)
			partial = ""
		}
	}()
	return l, nil
}

func (l *bundleLog) add(line string) {
	if !strings.Contains(line, `"bundle`) && !strings.Contains(line, "Reconciler error") {
		return
	}
	var ll logLine
	if json.Unmarshal([]byte(line), &ll) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case ll.Msg == "bundle built" && ll.Policies != nil:
		l.built[*ll.Policies] = append(l.built[*ll.Policies], ll.Time)
	case ll.Msg == "bundle written" && ll.Policies != nil:
		l.written[*ll.Policies] = append(l.written[*ll.Policies], ll.Time)
	case ll.Msg == "Reconciler error" && ll.Controller == "bundle":
		l.writeErrors++
	}
}

// first returns when a bundle of n policies was first built and first
// written after since (zero when not yet).
func (l *bundleLog) first(n int, since time.Time) (built, written time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return firstSince(l.built[n], since), firstSince(l.written[n], since)
}

func firstSince(times []time.Time, since time.Time) time.Time {
	for _, t := range times {
		if !t.Before(since) {
			return t
		}
	}
	return time.Time{}
}

func (l *bundleLog) errors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeErrors
}
