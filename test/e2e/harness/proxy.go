package harness

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// RunUntilReady starts cmd, a front door whose output goes to logPath,
// keeps it running until the test ends (then sends it stop, and kills it
// after grace), and returns once ready says it serves. The test fails when
// the process exits before, or when it is not ready within the given time;
// the end of its log is shown then, and when the test failed.
func RunUntilReady(t testing.TB, name string, cmd *exec.Cmd, logPath string, stop os.Signal, grace, within time.Duration, ready func() bool) {
	t.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		return tail(b, 8192)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(stop)
		select {
		case <-exited:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-exited
		}
		log.Close()
		if t.Failed() {
			t.Logf("%s log, last 8 KiB:\n%s", name, logTail())
		}
	})
	deadline := time.Now().Add(within)
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("%s exited:\n%s", name, logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not ready within %s:\n%s", name, within, logTail())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, under a deadline
	}
}
