package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Demo is `hack/demo.sh up` running in the foreground, as `make demo` runs
// it: it applies config/samples, prints what to do next and runs until
// interrupted.
type Demo struct {
	*Env
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

// RunDemo starts hack/demo.sh up in the foreground with free ports and a
// state directory of the test, with the samples of config/samples, and
// waits for its ready printout. A port taken meanwhile by another process
// (another package's tests pick ports too) starts it again with other
// ports, twice at most. Whatever still runs at the end of the test is
// stopped.
func RunDemo(t testing.TB, opts Options) *Demo {
	t.Helper()
	for attempt := 0; ; attempt++ {
		d := startDemo(t, opts)
		err := d.waitReady()
		if err == nil {
			d.readSettings()
			d.started = d.Processes()
			return d
		}
		if attempt < 2 && errors.Is(err, errDemoExited) && d.portClash(d.Output()) {
			t.Logf("a port was taken meanwhile; starting again with other ports:\n%s", d.Output())
			continue
		}
		t.Fatalf("%v\n%s", err, d.Output())
	}
}

var errDemoExited = errors.New("hack/demo.sh up exited before it was ready")

// startDemo starts one hack/demo.sh up and registers its stop.
func startDemo(t testing.TB, opts Options) *Demo {
	t.Helper()
	root := RepoRoot(t)
	components := opts.Components
	if components == nil {
		components = []string{Controller, Webhook, SampleApp, Nginx}
	}
	RequireTools(t, components)
	if opts.Env == nil {
		opts.Env = map[string]string{}
	}
	if _, ok := opts.Env["DEMO_SAMPLES"]; !ok {
		opts.Env["DEMO_SAMPLES"] = filepath.Join(root, "config", "samples")
	}
	e := &Env{t: t, Root: root, State: t.TempDir()}
	e.environ = demoEnviron(t, e.State, opts, components, OperatorBinary(t))
	d := &Demo{Env: e, out: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command("bash", filepath.Join(root, "hack", "demo.sh"), "up")
	d.cmd.Dir = root
	d.cmd.Env = e.environ
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	// Its own process group, as a shell gives a foreground job: an
	// interrupt reaches the script and not the test.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting hack/demo.sh up: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		running := e.Processes()
		select {
		case <-d.done:
		default:
			_ = d.Interrupt()
			if err := d.Wait(2 * time.Minute); err != nil {
				t.Errorf("hack/demo.sh up after an interrupt: %v\n%s", err, d.Output())
			}
		}
		if t.Failed() {
			e.keepLogs()
		}
		if out, err := e.demo(2*time.Minute, "down"); err != nil {
			t.Errorf("hack/demo.sh down: %v\n%s", err, out)
		}
		e.expectStopped(running)
	})
	return d
}

// waitReady waits for the ready printout; the "Stop" line is the last the
// script prints before it waits.
func (d *Demo) waitReady() error {
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(d.Output(), "demo is ready") || !strings.Contains(d.Output(), "\n  Stop ") {
		select {
		case <-d.done:
			return fmt.Errorf("%w: %v", errDemoExited, d.err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("hack/demo.sh up not ready after 5 minutes")
		}
	}
	return nil
}

// Output is what the script printed so far.
func (d *Demo) Output() string { return d.out.String() }

// Interrupt sends SIGINT to the script's process group, as Ctrl-C in a
// terminal does.
func (d *Demo) Interrupt() error {
	return syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
}

// Wait waits for the script to exit and returns its error (nil: exit 0).
func (d *Demo) Wait(timeout time.Duration) error {
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		return errors.New("still running after " + timeout.String())
	}
}

// lockedBuffer is a bytes.Buffer safe for the writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
