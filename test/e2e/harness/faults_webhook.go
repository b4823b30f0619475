package harness

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WebhookOptions describe a challenge server a test runs itself, besides
// (or instead of) the one hack/demo.sh runs: extra replicas in cluster
// mode, or a standalone server.
type WebhookOptions struct {
	// Name names the process in logs (and its log file).
	Name string
	// ConfigDir selects standalone mode (objects from files); DataDir holds
	// its keyring and file store.
	ConfigDir, DataDir string
	// Kubeconfig selects cluster mode.
	Kubeconfig string
	// Namespace of the bundle, keyring and enrolment Secrets (cluster mode).
	Namespace string
	// PublicURL is --public-url (optional).
	PublicURL string
	// Flags are added last (e.g. --lockout-max-failures=4).
	Flags []string
	// LogDir is where NAME.log goes (default: a temporary directory).
	LogDir string
}

// WebhookProcess is a running `mfa-operator webhook` on 127.0.0.1, trusting
// 127.0.0.1 as its proxy, with cookies usable over http.
type WebhookProcess struct {
	Name string
	// URL is http://127.0.0.1:PORT.
	URL string
	// MetricsURL is http://127.0.0.1:PORT of its metrics listener.
	MetricsURL string
	// GRPCAddr is 127.0.0.1:PORT of its ext_authz gRPC listener.
	GRPCAddr string
	// Log is the path of its standard output and error.
	Log string

	t      testing.TB
	args   []string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartWebhookReplica starts another challenge server in cluster mode
// against the environment's API server, with the credentials and settings
// of the one hack/demo.sh runs, and waits until it is ready.
func (e *Env) StartWebhookReplica(t testing.TB, name string, flags ...string) *WebhookProcess {
	t.Helper()
	return StartWebhook(t, WebhookOptions{
		Name:       name,
		Kubeconfig: filepath.Join(e.State, "kubeconfig-webhook"),
		Namespace:  e.Setting("DEMO_NAMESPACE"),
		PublicURL:  e.URL,
		Flags:      flags,
		LogDir:     filepath.Join(e.State, "logs"),
	})
}

// StartWebhook starts a challenge server on a free port and waits until
// /readyz answers 200. It is stopped when the test ends.
func StartWebhook(t testing.TB, opts WebhookOptions) *WebhookProcess {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "webhook"
	}
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	if err := os.MkdirAll(opts.LogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, metricsPort, grpcPort := FreePort(t), FreePort(t), FreePort(t)
	for metricsPort == port {
		metricsPort = FreePort(t)
	}
	for grpcPort == port || grpcPort == metricsPort {
		grpcPort = FreePort(t)
	}
	args := []string{"webhook",
		"--listen=127.0.0.1:" + strconv.Itoa(port),
		"--metrics-addr=127.0.0.1:" + strconv.Itoa(metricsPort),
		"--grpc-addr=127.0.0.1:" + strconv.Itoa(grpcPort),
		"--trusted-proxies=127.0.0.1/32",
		"--insecure-cookies=true",
	}
	env := os.Environ()
	switch {
	case opts.ConfigDir != "":
		args = append(args, "--config-dir="+opts.ConfigDir, "--data-dir="+opts.DataDir)
	case opts.Kubeconfig != "":
		env = append(env, "KUBECONFIG="+opts.Kubeconfig)
		if opts.Namespace != "" {
			args = append(args, "--namespace="+opts.Namespace)
		}
	default:
		t.Fatal("StartWebhook: set ConfigDir (standalone) or Kubeconfig (cluster mode)")
	}
	if opts.PublicURL != "" {
		args = append(args, "--public-url="+opts.PublicURL)
	}
	args = append(args, opts.Flags...)
	p := &WebhookProcess{
		Name:       opts.Name,
		URL:        "http://127.0.0.1:" + strconv.Itoa(port),
		MetricsURL: "http://127.0.0.1:" + strconv.Itoa(metricsPort),
		GRPCAddr:   "127.0.0.1:" + strconv.Itoa(grpcPort),
		Log:        filepath.Join(opts.LogDir, opts.Name+".log"),
		t:          t,
		args:       args,
		env:        env,
	}
	t.Cleanup(func() {
		p.stop(15 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(p.Log)
			t.Logf("log of %s (%s), last 4 KiB:\n%s", p.Name, p.Log, tail(b, 4096))
		}
	})
	p.Start(t)
	return p
}

// Start starts the process again (same flags, same port) after Kill or
// Stop, and waits until it is ready.
func (p *WebhookProcess) Start(t testing.TB) {
	t.Helper()
	if p.running() {
		t.Fatalf("%s is already running", p.Name)
	}
	log, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	fmt.Fprintf(log, "\n=== %s %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(p.args, " "))
	cmd := exec.Command(OperatorBinary(t), p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.Name, err)
	}
	p.cmd = cmd
	exited := make(chan struct{})
	p.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	p.WaitReady(t)
}

// WaitReady waits until /readyz answers 200, failing early when the
// process exits.
func (p *WebhookProcess) WaitReady(t testing.TB) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if !p.running() {
			b, _ := os.ReadFile(p.Log)
			t.Fatalf("%s exited while starting:\n%s", p.Name, tail(b, 4096))
		}
		if resp, err := client.Get(p.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 90s; see %s", p.Name, p.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PID is the process id of the running process.
func (p *WebhookProcess) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *WebhookProcess) Kill(t testing.TB) {
	t.Helper()
	if !p.running() {
		t.Fatalf("%s is not running", p.Name)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still runs 10s after SIGKILL", p.Name)
	}
}

// Stop sends SIGTERM and waits for a graceful exit.
func (p *WebhookProcess) Stop(t testing.TB) {
	t.Helper()
	if !p.stop(30 * time.Second) {
		t.Fatalf("%s did not stop within 30s of SIGTERM; it was killed", p.Name)
	}
}

// stop sends SIGTERM, then SIGKILL after grace; false when it had to kill.
func (p *WebhookProcess) stop(grace time.Duration) bool {
	if !p.running() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	return false
}

func (p *WebhookProcess) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
