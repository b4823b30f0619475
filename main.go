// Command mfa-operator is one binary with two modes, named on every start:
//
//	mfa-operator controller   reconciles MFAPolicy and MFAProvider, compiles
//	                          the bundle and runs the challenge server
//	mfa-operator webhook      the challenge server the front door asks
//
// `mfa-operator help` explains both, `mfa-operator help MODE` lists a
// mode's flags, `mfa-operator version` prints the version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mfa-operator/mfa-operator/internal/admin"
	"github.com/mfa-operator/mfa-operator/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe") == "kubectl-mfa" {
		// The same binary, installed as the kubectl plugin.
		code = admin.Main(ctx, "kubectl mfa", os.Args[1:], os.Stdout, os.Stderr)
	} else {
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// Exit codes: a mode that failed, and a command line that makes no sense.
const (
	exitFailed = 1
	exitUsage  = 2
)

// mode is a command that runs a server.
type mode struct {
	name    string
	summary string
	// explain is the text of `help NAME` above the flags.
	explain string
	// flags declares the mode's flags, for help.
	flags func() *cmdFlags
	run   func(ctx context.Context, args []string) error
	// runOut, when set instead of run, is a command that writes its
	// report to stdout.
	runOut func(ctx context.Context, args []string, stdout io.Writer) error
	// usage is what follows the command's name in its help line.
	usage string
}

var modes = []mode{
	{
		name:    "controller",
		summary: "reconcile MFAPolicy and MFAProvider objects and run the challenge server",
		explain: controllerHelp,
		flags:   func() *cmdFlags { return newControllerFlags().cmd },
		run:     runController,
	},
	{
		name:    "webhook",
		summary: "the challenge server the front door asks, in a cluster or standalone",
		explain: webhookHelp,
		flags:   func() *cmdFlags { return newWebhookFlags().cmd },
		run:     runWebhook,
	},
	{
		name:    "check",
		summary: "validate MFAPolicy and MFAProvider files offline, as the controller would (for CI)",
		explain: checkHelp,
		usage:   "-f DIR|FILE [-f ...] [-o json]",
		flags:   func() *cmdFlags { return newCheckFlags().cmd },
		runOut:  runCheck,
	},
	{
		name:    "explain",
		summary: "say which rule of a policy decides a request, and why the rules before it do not",
		explain: explainHelp,
		usage:   "--policy NS/NAME | -f FILE --url URL [flags]",
		flags:   func() *cmdFlags { return newExplainFlags().cmd },
		runOut:  runExplain,
	},
}

func findMode(name string) *mode {
	for i := range modes {
		if modes[i].name == name {
			return &modes[i]
		}
	}
	return nil
}

// usageError is a command line that makes no sense: run prints it with a
// pointer to the help, and exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badUsage wraps a flag parsing error as a usageError; flag.ErrHelp stays
// itself, so that run prints the help.
func badUsage(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "mfa-operator: name a command")
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			usage(stdout)
			return 0
		}
		if rest[0] == "help" || rest[0] == "version" {
			usage(stdout)
			return 0
		}
		m := findMode(rest[0])
		if m == nil {
			return unknownCommand(stderr, rest[0])
		}
		modeHelp(stdout, m)
		return 0
	case "users":
		return admin.Main(ctx, "mfa-operator users", usersArgs(rest), stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "mfa-operator", version.String())
		return 0
	}
	m := findMode(name)
	if m == nil {
		return unknownCommand(stderr, name)
	}
	var err error
	if m.runOut != nil {
		err = m.runOut(ctx, rest, stdout)
	} else {
		err = m.run(ctx, rest)
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		modeHelp(stdout, m)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mfa-operator %s: %v\nrun mfa-operator help %s for its flags\n", m.name, err, m.name)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "mfa-operator %s: %v\n", m.name, err)
		return exitFailed
	}
}

// usersArgs maps `mfa-operator users [reset|revoke|unlock] ...` onto the
// plugin's commands: without one of them, it lists users.
func usersArgs(args []string) []string {
	if len(args) > 0 {
		switch args[0] {
		case "reset", "revoke", "unlock", "help", "-h", "--help":
			return args
		case "list":
			args = args[1:]
		}
	}
	return append([]string{"users"}, args...)
}

func unknownCommand(w io.Writer, name string) int {
	if strings.HasPrefix(name, "-") {
		// Earlier versions ran the controller when no mode was named.
		fmt.Fprintf(w, "mfa-operator: name a command before the flags (mfa-operator controller %s ...); run mfa-operator help\n", name)
		return exitUsage
	}
	fmt.Fprintf(w, "unknown command %s; run mfa-operator help\n", name)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `mfa-operator: declarative multi-factor authentication in front of any web app.

Usage:
  mfa-operator COMMAND [flags]

Commands:
`)
	for _, m := range modes {
		fmt.Fprintf(w, "  %-12s %s\n", m.name, m.summary)
	}
	fmt.Fprint(w, `  users        list enrolled users; users reset|revoke|unlock USER (run mfa-operator users help)
  version      print the version
  help         this text; help COMMAND explains a command and lists its flags

In a cluster the operator's Deployment runs "mfa-operator controller", which
runs "mfa-operator webhook" as the challenge server's Deployment. Outside a
cluster, "mfa-operator webhook --config-dir DIR" runs alone.

Every flag may also come from the environment: MFA_ and the flag's name in
capitals, dashes as underscores (--public-url: MFA_PUBLIC_URL). The command
line wins over the environment.
`)
}

func modeHelp(w io.Writer, m *mode) {
	u := m.usage
	if u == "" {
		u = "[flags]"
	}
	fmt.Fprintf(w, "Usage: mfa-operator %s %s\n\n%s", m.name, u, m.explain)
	m.flags().usage(w)
}

const controllerHelp = `The operator. It watches MFAProvider and MFAPolicy objects in every
namespace, checks them and writes its verdict to their status; it compiles
the Ready ones into the bundle Secret mfa-bundle in --namespace, next to the
keyring Secret mfa-keyring. It runs the challenge server (mfa-operator
webhook, the same image) as the Deployment mfa-challenge with its Service,
passing on the front door and cookie flags below; with
--manage-deployment=false it leaves running the challenge server to you.

Required: --public-url (or --cookie-domain, which means
https://auth.DOMAIN) while it runs the challenge server: browsers are sent
there to answer the second factor, and the policies' status.signinURL says
it.

The cluster: --kubeconfig (MFA_KUBECONFIG), else the KUBECONFIG variable,
else the pod's service account when it runs in a cluster, else
~/.kube/config.
`

const webhookHelp = `The challenge server. The front door asks it about every protected request
(/auth/NAMESPACE/POLICY for ingress-nginx and nginx's auth_request,
/forward-auth/NAMESPACE/POLICY for Traefik and Caddy); users enrol and answer
the second factor on its pages (/challenge/NAMESPACE/POLICY). It also serves
/healthz, /readyz, /metrics and the keys apps check its assertions with
(/.well-known/jwks.json).

It runs in one of two ways:

  in a cluster (no --config-dir), as the controller's Deployment runs it:
    it reads the bundle and keyring Secrets of --namespace and keeps the
    enrolments in Secrets there. It listens on :8080 by default. The
    cluster: --kubeconfig (MFA_KUBECONFIG), else the KUBECONFIG variable,
    else the pod's service account, else ~/.kube/config.

  standalone (--config-dir DIR), without Kubernetes: it reads MFAPolicy,
    MFAProvider and Secret YAML or JSON files from DIR, reloaded on change
    (objects without a namespace are in "default"), and keeps its keys and
    the enrolments in --data-dir. It listens on 127.0.0.1:8080 by default.

/auth and /forward-auth answer 403 to any peer outside --trusted-proxies:
set it to the front door's address.
`
