// Command startup measures how long a server takes from exec to its
// readiness endpoint answering 200, over several runs, and prints the
// median.
//
//	startup -runs 11 -url http://127.0.0.1:8080/readyz -- bin/mfa-operator webhook ...
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 11, "measured runs")
	warmup := flag.Int("warmup", 1, "unmeasured runs first (page cache, generated keys)")
	url := flag.String("url", "", "readiness URL that must answer 200")
	timeout := flag.Duration("timeout", 30*time.Second, "give up on a run after this long")
	logPath := flag.String("log", "", "append the server's output to this file (default: discard)")
	flag.Parse()
	if *url == "" || flag.NArg() == 0 || *runs < 1 {
		fmt.Fprintln(os.Stderr, "usage: startup -url URL [-runs N] -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	var out io.Writer = io.Discard
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		out = f
	}

	var times []time.Duration
	for i := 0; i < *warmup+*runs; i++ {
		d, err := once(flag.Args(), *url, *timeout, out)
		if err != nil {
			fail(fmt.Errorf("run %d: %w", i+1, err))
		}
		if i >= *warmup {
			times = append(times, d)
			fmt.Printf("run %2d: %7.1f ms\n", i+1-*warmup, ms(d))
		}
	}
	slices.Sort(times)
	fmt.Printf("RESULT runs=%d median_ms=%.1f min_ms=%.1f max_ms=%.1f\n",
		len(times), ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]))
}

// once starts the command, polls url until it answers 200 and stops the
// command again; it returns the time from exec to the first 200.
func once(argv []string, url string, timeout time.Duration, out io.Writer) (time.Duration, error) {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)

	deadline := start.Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		select {
		case err := <-exited:
			exited <- err // for stop
			return 0, fmt.Errorf("server exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return 0, errors.New("not ready within " + timeout.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// stop asks the server to shut down and waits for it, killing it when it
// does not exit in time.
func stop(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fail(err error) {
	fmt.Fprintf(os.Stderr, "startup: %v\n", err)
	os.Exit(1)
}
