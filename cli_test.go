package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/version"
)

// cleanEnv unsets every MFA_* variable for the test, so that the machine's
// environment cannot change what the flags parse to.
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MFA_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
}

// runCLI runs the command line with a context already cancelled: nothing a
// test starts by mistake keeps running.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestNoArgumentsPrintsUsageAndFails(t *testing.T) {
	code, stdout, stderr := runCLI(t)
	if code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	for _, want := range []string{"Usage:", "controller", "webhook", "version", "help"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("usage does not name %q:\n%s", want, stderr)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	code, stdout, stderr := runCLI(t, "foo")
	if code != exitUsage || stdout != "" {
		t.Errorf("exit code %d, stdout %q; want %d and nothing", code, stdout, exitUsage)
	}
	if want := "unknown command foo; run mfa-operator help\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}

	// Flags without a mode (earlier versions ran the controller).
	code, _, stderr = runCLI(t, "--namespace=x")
	if code != exitUsage || !strings.Contains(stderr, "name a command before the flags") {
		t.Errorf("exit code %d, stderr %q", code, stderr)
	}
}

func TestHelp(t *testing.T) {
	code, stdout, stderr := runCLI(t, "help")
	if code != 0 || stderr != "" {
		t.Fatalf("help: exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"controller", "webhook", "version", "MFA_PUBLIC_URL"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help does not say %q:\n%s", want, stdout)
		}
	}
}

func TestHelpWebhook(t *testing.T) {
	code, stdout, stderr := runCLI(t, "help", "webhook")
	if code != 0 || stderr != "" {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"Usage: mfa-operator webhook [flags]",
		// The two ways it runs, and their listen addresses.
		"in a cluster (no --config-dir)", "listens on :8080",
		"standalone (--config-dir DIR)", "listens on 127.0.0.1:8080",
		// Groups, types, defaults and variables.
		"\nFront door:\n", "\nCookies:\n", "\nCluster:\n", "\nStandalone mode (no cluster):\n",
		"\nLockout:\n", "\nObservability:\n",
		"--lockout-max-failures N", "default 5; env MFA_LOCKOUT_MAX_FAILURES",
		"--lockout-window DURATION", "default 5m; env MFA_LOCKOUT_WINDOW",
		"--kubeconfig FILE", "MFA_KUBECONFIG", "KUBECONFIG", "~/.kube/config",
		"--trusted-proxies CIDRS", "every request is refused",
	} {
		flat := strings.Join(strings.Fields(stdout), " ") // wrapped lines joined
		if !strings.Contains(stdout, want) && !strings.Contains(flat, want) {
			t.Errorf("help webhook does not say %q:\n%s", want, stdout)
		}
	}
	for _, args := range [][]string{{"webhook", "--help"}, {"webhook", "-h"}} {
		code, again, _ := runCLI(t, args...)
		if code != 0 || again != stdout {
			t.Errorf("%q: exit code %d and a help that differs from help webhook:\n%s", args, code, again)
		}
	}
}

func TestHelpController(t *testing.T) {
	code, stdout, _ := runCLI(t, "controller", "--help")
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{
		"Usage: mfa-operator controller [flags]", "Required: --public-url",
		"\nChallenge server Deployment:\n", "--webhook-replicas N", "--leader-elect", "--kubeconfig FILE",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("controller --help does not say %q:\n%s", want, stdout)
		}
	}
}

// TestEveryFlagIsDocumented: each flag of each mode has a group, a
// description and an MFA_ variable of its own name.
func TestEveryFlagIsDocumented(t *testing.T) {
	for _, m := range modes {
		for _, f := range m.flags().flags {
			if f.group == "" || f.usage == "" {
				t.Errorf("%s --%s: group %q, usage %q", m.name, f.name, f.group, f.usage)
			}
		}
		var out bytes.Buffer
		m.flags().usage(&out)
		text := strings.Join(strings.Fields(out.String()), " ") // lines joined
		m.flags().fs.VisitAll(func(fl *flag.Flag) {
			if !strings.Contains(text, "env "+envName(fl.Name)) {
				t.Errorf("%s --help does not name %s", m.name, envName(fl.Name))
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runCLI(t, "version")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "mfa-operator devel") {
		t.Errorf("exit code %d, stdout %q, stderr %q; want mfa-operator devel...", code, stdout, stderr)
	}
	defer func(v, rev string) { version.Version, version.Revision = v, rev }(version.Version, version.Revision)
	version.Version, version.Revision = "v1.2.3", ""
	if _, stdout, _ = runCLI(t, "version"); !strings.HasPrefix(stdout, "mfa-operator v1.2.3 (go") {
		t.Errorf("stamped: %q", stdout)
	}
}

func TestBadTypedFlagNamesTheFlag(t *testing.T) {
	cleanEnv(t)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want []string
	}{
		{args: []string{"webhook", "--lockout-max-failures=many"}, want: []string{`--lockout-max-failures "many"`, "whole number"}},
		{args: []string{"webhook", "--lockout-max-failures", "0"}, want: []string{`--lockout-max-failures "0"`, "at least 1"}},
		{args: []string{"webhook", "--lockout-window=5"}, want: []string{`--lockout-window "5"`, "duration", "5m"}},
		{args: []string{"webhook", "--lockout-duration=-1m"}, want: []string{`--lockout-duration "-1m"`, "positive duration"}},
		{args: []string{"webhook", "--gc-headroom=lots"}, want: []string{`--gc-headroom "lots"`, "32Mi"}},
		{args: []string{"webhook", "--log-level=loud"}, want: []string{`--log-level "loud"`, "debug, info, warn or error"}},
		{args: []string{"webhook", "--trusted-proxies=10.0.0.0/33"}, want: []string{"--trusted-proxies", "10.0.0.0/33"}},
		{args: []string{"webhook", "--nope"}, want: []string{"unknown flag --nope"}},
		{args: []string{"controller", "--webhook-replicas=two"}, want: []string{`--webhook-replicas "two"`, "whole number"}},
		{args: []string{"controller", "--insecure-cookies=maybe"}, want: []string{`--insecure-cookies "maybe"`, "true or false"}},
		{args: []string{"webhook"}, env: map[string]string{"MFA_LOCKOUT_WINDOW": "soon"},
			want: []string{`MFA_LOCKOUT_WINDOW "soon" (--lockout-window)`, "duration"}},
		{args: []string{"controller"}, env: map[string]string{"MFA_WEBHOOK_REPLICAS": "2.5"},
			want: []string{`MFA_WEBHOOK_REPLICAS "2.5" (--webhook-replicas)`, "whole number"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != exitUsage || stdout != "" {
				t.Errorf("exit code %d, stdout %q; want %d and nothing", code, stdout, exitUsage)
			}
			for _, want := range append(tc.want, "run mfa-operator help "+tc.args[0]) {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func TestFlagsFromEnvironmentAndCommandLine(t *testing.T) {
	cleanEnv(t)
	t.Setenv("MFA_LOCKOUT_MAX_FAILURES", "7")
	t.Setenv("MFA_LOCKOUT_WINDOW", "90s")
	t.Setenv("MFA_INSECURE_COOKIES", "true")
	f, err := parseWebhookFlags([]string{"--lockout-window=2m", "--gc-headroom=0"})
	if err != nil {
		t.Fatal(err)
	}
	if *f.maxFailures != 7 || *f.window != 2*time.Minute || *f.duration != 5*time.Minute || !*f.common.insecureCookie || f.gcHeadroom.Value() != 0 {
		t.Errorf("max failures %d, window %s, duration %s, insecure cookies %v, gc headroom %s",
			*f.maxFailures, *f.window, *f.duration, *f.common.insecureCookie, f.gcHeadroom)
	}
}

func TestStandaloneListensOnLoopbackByDefault(t *testing.T) {
	cleanEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ":8080"},
		{[]string{"--config-dir=cfg"}, "127.0.0.1:8080"},
		{[]string{"--config-dir=cfg", "--listen=:9000"}, ":9000"},
	} {
		f, err := parseWebhookFlags(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if *f.listen != tc.want {
			t.Errorf("%q: listens on %s, want %s", tc.args, *f.listen, tc.want)
		}
	}
}

// TestControllerNeedsPublicURL: the controller that runs the challenge
// server refuses to start without knowing where browsers reach it.
func TestControllerNeedsPublicURL(t *testing.T) {
	cleanEnv(t)
	if _, err := parseControllerFlags(nil); err == nil || !strings.Contains(err.Error(), "--public-url") {
		t.Errorf("no --public-url: %v, want an error naming --public-url", err)
	}
	t.Setenv("MFA_PUBLIC_URL", "")
	if _, err := parseControllerFlags(nil); err == nil {
		t.Error("MFA_PUBLIC_URL empty (as config/manager ships it): no error")
	}
	for _, args := range [][]string{
		{"--public-url=https://auth.example.com"},
		{"--cookie-domain=example.com"},
		{"--manage-deployment=false"},
	} {
		if _, err := parseControllerFlags(args); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestControllerArgsParseAsWebhookFlags: every flag the controller passes
// to the challenge Deployment is one the webhook mode knows.
func TestControllerArgsParseAsWebhookFlags(t *testing.T) {
	cleanEnv(t)
	args := controllers.ChallengeArgs(controllers.Options{
		Namespace: "mfa-system", PublicURL: "https://auth.example.com", TrustedProxies: "10.0.0.0/8",
		IdentityHeaders: []string{"X-Auth-Request-Email"}, TrustXRealIP: true,
	})
	if args[0] != "webhook" {
		t.Fatalf("ChallengeArgs start with %q, want the mode webhook", args[0])
	}
	f, err := parseWebhookFlags(args[1:])
	if err != nil {
		t.Fatal(err)
	}
	if *f.common.publicURL != "https://auth.example.com" || !*f.common.trustXRealIP || *f.listen != ":8080" {
		t.Errorf("public URL %q, trust X-Real-IP %v, listen %q", *f.common.publicURL, *f.common.trustXRealIP, *f.listen)
	}
}

// TestKubeconfigFlag: --kubeconfig and MFA_KUBECONFIG choose the cluster
// over KUBECONFIG.
func TestKubeconfigFlag(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	write := func(name, server string) string {
		p := filepath.Join(dir, name)
		kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: " + server + "}\n" +
			"contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n"
		if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := write("env", "https://127.0.0.1:1001")
	flagged := write("flag", "https://127.0.0.1:1002")
	t.Setenv("KUBECONFIG", env)
	t.Cleanup(func() { _ = flag.CommandLine.Set(config.KubeconfigFlagName, "") })
	host := func() string {
		t.Helper()
		cfg, err := config.GetConfig()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Host
	}

	if _, err := parseWebhookFlags(nil); err != nil {
		t.Fatal(err)
	}
	if h := host(); h != "https://127.0.0.1:1001" {
		t.Errorf("no --kubeconfig: %s, want KUBECONFIG's", h)
	}
	if _, err := parseWebhookFlags([]string{"--kubeconfig=" + flagged}); err != nil {
		t.Fatal(err)
	}
	if h := host(); h != "https://127.0.0.1:1002" {
		t.Errorf("--kubeconfig: %s, want its server", h)
	}
	_ = flag.CommandLine.Set(config.KubeconfigFlagName, "")
	t.Setenv("MFA_KUBECONFIG", flagged)
	if _, err := parseControllerFlags([]string{"--manage-deployment=false"}); err != nil {
		t.Fatal(err)
	}
	if h := host(); h != "https://127.0.0.1:1002" {
		t.Errorf("MFA_KUBECONFIG: %s, want its server", h)
	}
}
