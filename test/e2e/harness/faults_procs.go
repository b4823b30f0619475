package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Parts of the control plane hack/cluster.sh runs, for PID and Signal.
const (
	Etcd          = "etcd"
	KubeAPIServer = "kube-apiserver"
)

// PID returns the pid of a running component started by hack/demo.sh
// (etcd, kube-apiserver, controller, webhook, sampleapp, nginx).
func (e *Env) PID(t testing.TB, component string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.State, "pids", component+".pid"))
	if err != nil {
		t.Fatalf("%s is not running: %v", component, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("%s: bad pid file %q", component, b)
	}
	return pid
}

// Signal sends sig to a component started by hack/demo.sh: to its whole
// process group for SIGKILL and SIGTERM (each component is a group
// leader), to the process alone for SIGSTOP and SIGCONT.
func (e *Env) Signal(t testing.TB, component string, sig syscall.Signal) {
	t.Helper()
	pid := e.PID(t, component)
	target := pid
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		target = -pid
	}
	if err := syscall.Kill(target, sig); err != nil {
		t.Fatalf("sending %s to %s (pid %d): %v", sig, component, pid, err)
	}
	if sig == syscall.SIGKILL {
		deadline := time.Now().Add(10 * time.Second)
		for processRuns(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still runs 10s after SIGKILL", component, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// processRuns is true while pid exists and is not a zombie.
func processRuns(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// Stop stops one component (SIGTERM to its group, SIGKILL after 20 s)
// without starting it again; Restart starts it again.
func (e *Env) Stop(t testing.TB, component string) {
	t.Helper()
	e.cluster(t, 2*time.Minute, "stop_proc "+shellQuote(component))
}

// StopControlPlane stops kube-apiserver and etcd as `hack/cluster.sh
// down` does, keeping their data; everything else keeps running.
func (e *Env) StopControlPlane(t testing.TB) {
	t.Helper()
	e.cluster(t, 2*time.Minute, "cluster_down")
}

// StartControlPlane starts etcd and kube-apiserver again on the same data
// and ports, and waits until the API server is ready.
func (e *Env) StartControlPlane(t testing.TB) {
	t.Helper()
	e.cluster(t, 5*time.Minute, "cluster_up")
}

// cluster runs a function of hack/cluster.sh with the test's settings.
func (e *Env) cluster(t testing.TB, timeout time.Duration, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// $0 is not the script, so that hack/cluster.sh knows it is sourced.
	cmd := exec.CommandContext(ctx, "bash", "-c", `set -euo pipefail; . "$1"; cluster_settings; `+script,
		"bash", filepath.Join(e.Root, "hack", "cluster.sh"))
	cmd.Dir = e.Root
	cmd.Env = e.environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/cluster.sh %s: %v\n%s", script, err, out.String())
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// RSS is the resident set size of a process, in bytes (VmRSS).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}
