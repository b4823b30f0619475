// Package harness runs the whole product on one machine for end-to-end
// tests, through the same script as `make demo` (hack/demo.sh up --detach):
// etcd and kube-apiserver, the operator, the challenge server, the sample
// app and nginx in front of it, all on 127.0.0.1 with free ports and a state
// directory per test. It also gives the tests a kubectl, an HTTP client
// that goes through nginx like a browser (cookie jar, basic login), and the
// real zbarimg and oathtool.
//
// The package itself has no build tag, so it compiles and vets with Go
// alone; the tests that use it (test/e2e, test/faults) build only with
// `-tags e2e` (make test, make e2e).
package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Components that hack/demo.sh can start besides the control plane.
const (
	Controller = "controller"
	Webhook    = "webhook"
	SampleApp  = "sampleapp"
	Nginx      = "nginx"
	// Traefik stands in front of the sample app instead of nginx
	// (FRONT_DOOR=traefik).
	Traefik = "traefik"
)

// Options choose what a test runs.
type Options struct {
	// Components to start besides the control plane; nil: all of them,
	// with nginx in front (Traefik instead: list it in place of Nginx).
	Components []string
	// Policy is namespace/name of the MFAPolicy nginx asks about
	// (default apps/admin).
	Policy string
	// WebhookPort, when set, is the challenge server's port; a test that
	// replaces the challenge server listens there itself.
	WebhookPort int
	// Env adds settings for hack/demo.sh (DEMO_*).
	Env map[string]string
}

// Env is a running system.
type Env struct {
	t        testing.TB
	Root     string
	State    string
	settings map[string]string
	environ  []string
	// started are the processes as started (and restarted), by name: the
	// clean-up checks them even when a pid file went missing.
	started map[string]int

	// URL is where nginx serves the protected app, e.g. http://app.localhost:PORT.
	URL string
	// Host is URL's host:port.
	Host string
	// User/Password and User2/Password2 are the first-factor logins.
	User, Password   string
	User2, Password2 string
	// WebhookURL is the challenge server, reached directly.
	WebhookURL string
	// WebhookMetricsURL is the challenge server's metrics listener.
	WebhookMetricsURL string
	// AppURL is the sample app, reached directly (no nginx).
	AppURL string
	// Kubeconfig is the admin kubeconfig; KubectlPath the kubectl binary.
	Kubeconfig  string
	KubectlPath string
	// Policy is namespace/name of the policy nginx asks about.
	Policy string
}

// Setting returns a value of the demo's settings file (demo.env).
func (e *Env) Setting(key string) string { return e.settings[key] }

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// OperatorBinary builds the operator from the work tree once per test
// process (bin/e2e/mfa-operator) and returns its path.
func OperatorBinary(t testing.TB) string {
	t.Helper()
	// A binary built beforehand (bin/ may be shared by several checkouts,
	// whose builds would replace each other's).
	if p := os.Getenv("MFA_E2E_OPERATOR_BIN"); p != "" {
		return p
	}
	root := RepoRoot(t)
	buildOnce.Do(func() {
		dir := filepath.Join(root, "bin", "e2e")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("mfa-operator.%d.tmp", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		buildPath = filepath.Join(dir, "mfa-operator")
		buildErr = os.Rename(tmp, buildPath)
	})
	if buildErr != nil {
		t.Fatalf("building the operator: %v", buildErr)
	}
	return buildPath
}

// Start runs hack/demo.sh up --detach --no-samples with a fresh state
// directory and free ports, and stops everything when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	root := RepoRoot(t)
	components := opts.Components
	if components == nil {
		components = []string{Controller, Webhook, SampleApp, Nginx}
	}
	RequireTools(t, components)
	if opts.Policy == "" {
		opts.Policy = "apps/admin"
	}

	var bin string
	if contains(components, Controller) || contains(components, Webhook) {
		bin = OperatorBinary(t)
	}
	// The state directory is made before the clean-up is registered, so
	// that it is removed after everything is stopped (clean-ups run last
	// registered first).
	states := t.TempDir()
	var e *Env
	t.Cleanup(func() {
		if e == nil {
			return
		}
		if t.Failed() {
			e.keepLogs()
		}
		running := e.Processes()
		for name, pid := range e.started {
			if _, ok := running[name]; !ok {
				running[name+" (as started)"] = pid
			}
		}
		if out, err := e.demo(2*time.Minute, "down"); err != nil {
			t.Errorf("hack/demo.sh down: %v\n%s", err, out)
		}
		e.expectStopped(running)
	})
	// A port picked free may be taken by another test process before its
	// component listens: then start once more with other ports.
	for attempt := 1; ; attempt++ {
		e = &Env{t: t, Root: root, State: filepath.Join(states, strconv.Itoa(attempt))}
		if err := os.MkdirAll(e.State, 0o700); err != nil {
			t.Fatal(err)
		}
		e.environ = demoEnviron(t, e.State, opts, components, bin)
		started := time.Now()
		out, err := e.demo(5*time.Minute, "up", "--detach", "--no-samples")
		if err == nil {
			t.Logf("system up in %s (state %s)", time.Since(started).Round(100*time.Millisecond), e.State)
			break
		}
		if attempt < 2 && e.portClash(out) {
			t.Logf("a port was taken meanwhile; starting again with other ports:\n%s", out)
			continue
		}
		e.keepLogs()
		t.Fatalf("hack/demo.sh up: %v\n%s", err, out)
	}
	e.readSettings()
	e.started = e.Processes()
	return e
}

// readSettings fills the Env from the demo's settings file.
func (e *Env) readSettings() {
	e.settings = readSettings(e.t, filepath.Join(e.State, "demo.env"))
	e.URL = e.settings["DEMO_URL"]
	e.Host = e.settings["DEMO_HOST"] + ":" + e.settings["DEMO_PORT"]
	e.User, e.Password = e.settings["DEMO_USER"], e.settings["DEMO_PASSWORD"]
	e.User2, e.Password2 = e.settings["DEMO_USER2"], e.settings["DEMO_PASSWORD2"]
	e.WebhookURL = e.settings["DEMO_WEBHOOK_URL"]
	e.WebhookMetricsURL = e.settings["DEMO_WEBHOOK_METRICS_URL"]
	e.AppURL = e.settings["DEMO_APP_URL"]
	e.Kubeconfig = e.settings["KUBECONFIG"]
	e.KubectlPath = e.settings["KUBECTL"]
	e.Policy = e.settings["DEMO_POLICY"]
}

// Processes returns the pids of the running components, by name, from the
// demo's pid files.
func (e *Env) Processes() map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(e.State, "pids", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	return out
}

// expectStopped fails the test when a process (or a member of its process
// group) is still running, and kills it so that nothing is left behind.
func (e *Env) expectStopped(pids map[string]int) {
	for name, pid := range pids {
		if left := processGroup(pid); len(left) > 0 {
			e.t.Errorf("%s (pid %d) left processes behind after hack/demo.sh down: %v", name, pid, left)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// processGroup lists the running (not zombie) processes of group pgid.
func processGroup(pgid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after "(comm) ": state ppid pgrp ...
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// demoEnviron is the environment of hack/demo.sh for a test: its state
// directory, free ports, what runs, and the test's own settings.
func demoEnviron(t testing.TB, state string, opts Options, components []string, bin string) []string {
	t.Helper()
	used := map[int]bool{opts.WebhookPort: true}
	port := func() string {
		for {
			if p := FreePort(t); !used[p] {
				used[p] = true
				return strconv.Itoa(p)
			}
		}
	}
	vars := map[string]string{
		"DEMO_STATE":      state,
		"DEMO_POLICY":     opts.Policy,
		"DEMO_COMPONENTS": strings.Join(components, " "),
		"DEMO_SAMPLES":    "",
		// nginx's basic login is the first factor of these tests (the
		// single sign-on has tests of its own).
		"DEMO_FIRST_FACTOR":   "basic",
		"DEMO_PORT":           port(),
		"DEMO_APP_PORT":       port(),
		"DEMO_METRICS_PORT":   port(),
		"DEMO_PROBE_PORT":     port(),
		"DEMO_APISERVER_PORT": port(),
		"DEMO_ETCD_PORT":      port(),
		"DEMO_ETCD_PEER_PORT": port(),
		// The challenge server's metrics listener.
		"DEMO_WEBHOOK_METRICS_PORT": port(),
	}
	if opts.WebhookPort != 0 {
		vars["DEMO_WEBHOOK_PORT"] = strconv.Itoa(opts.WebhookPort)
	} else {
		vars["DEMO_WEBHOOK_PORT"] = port()
	}
	if bin != "" {
		vars["DEMO_BIN"] = bin
	}
	for k, v := range opts.Env {
		vars[k] = v
	}
	environ := os.Environ()
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	return environ
}

// portClash is true when a failed start-up was a port already in use.
func (e *Env) portClash(out string) bool {
	if strings.Contains(out, "is in use") {
		return true
	}
	entries, _ := os.ReadDir(filepath.Join(e.State, "logs"))
	for _, en := range entries {
		b, _ := os.ReadFile(filepath.Join(e.State, "logs", en.Name()))
		if strings.Contains(strings.ToLower(string(b)), "address already in use") {
			return true
		}
	}
	return false
}

// Restart stops and starts one component (controller, webhook, nginx,
// sampleapp) and waits until it is ready again.
func (e *Env) Restart(component string) {
	e.t.Helper()
	if out, err := e.demo(2*time.Minute, "restart", component); err != nil {
		e.t.Fatalf("hack/demo.sh restart %s: %v\n%s", component, err, out)
	}
	for name, pid := range e.Processes() {
		e.started[name] = pid
	}
}

// Log returns the log of a component (etcd, kube-apiserver, controller,
// webhook, sampleapp, nginx).
func (e *Env) Log(component string) string {
	b, _ := os.ReadFile(filepath.Join(e.State, "logs", component+".log"))
	return string(b)
}

func (e *Env) demo(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(e.Root, "hack", "demo.sh")}, args...)...)
	cmd.Dir = e.Root
	cmd.Env = e.environ
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// keepLogs copies the logs of a failed test to artifacts/e2e/logs/TEST/.
func (e *Env) keepLogs() {
	dst := filepath.Join(e.Root, "artifacts", "e2e", "logs", sanitize(e.t.Name()))
	src := filepath.Join(e.State, "logs")
	entries, err := os.ReadDir(src)
	if err != nil {
		return
	}
	_ = os.MkdirAll(dst, 0o755)
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(src, en.Name()))
		if err == nil {
			_ = os.WriteFile(filepath.Join(dst, en.Name()), b, 0o644)
		}
	}
	e.t.Logf("logs kept in %s", dst)
}
