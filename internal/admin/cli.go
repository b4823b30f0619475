package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mfa-operator/mfa-operator/internal/audit"
)

// HelpdeskRBAC is where the least-privilege Role of these commands is.
const HelpdeskRBAC = "config/rbac/helpdesk_role.yaml"

const usageText = `Usage: %[1]s COMMAND [USER] [flags]

Commands:
  users [--policy NS/NAME]                          enrolled users: factors (created, last used), lockouts and
                                                    how many browsers each user has remembered
  reset USER [--provider NS/NAME] [--factor NAME]   remove the enrolment(s): the user enrols again at the next
                                                    visit; every session and remembered browser is revoked
  revoke USER                                       sign USER out of every session and remembered browser;
                                                    enrolments stay
  unlock USER [--provider NS/NAME]                  lift a lockout and forget the failed attempts

In a cluster (the default) the commands act on the challenge server's
namespace (--namespace, default mfa-system) with your Kubernetes
credentials (--kubeconfig, else KUBECONFIG, else ~/.kube/config), and need
the helpdesk Role of ` + HelpdeskRBAC + `. Standalone, name the server's
--config-dir and --data-dir; revoke works while the server runs, the
others need it stopped (it holds the enrolment store).

Each action writes an audit line (JSON) on standard error and, in a
cluster, an Event on the MFAProvider concerned. Factor names: totp,
webauthn (every key of the user), recovery-codes.
`

// Main runs one command line of the plugin (prog "kubectl mfa") or of
// `mfa-operator users` and returns the exit code.
func Main(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stdout, usageText, prog)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(prog+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kubeconfig := fs.String("kubeconfig", "", "")
	namespace := fs.String("namespace", "mfa-system", "")
	configDir := fs.String("config-dir", "", "")
	dataDir := fs.String("data-dir", "", "")
	policyRef := fs.String("policy", "", "")
	provider := fs.String("provider", "", "")
	factor := fs.String("factor", "", "")
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			return usageErr(stderr, prog, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	wantUser := cmd != "users"
	switch cmd {
	case "users", "reset", "revoke", "unlock":
	default:
		return usageErr(stderr, prog, fmt.Errorf("unknown command %q", cmd))
	}
	if wantUser && len(positional) != 1 || !wantUser && len(positional) != 0 {
		return usageErr(stderr, prog, fmt.Errorf("%s takes %s", cmd, map[bool]string{true: "one USER", false: "no argument"}[wantUser]))
	}
	if *provider != "" {
		if _, _, err := splitRef(*provider, "--provider"); err != nil {
			return usageErr(stderr, prog, err)
		}
	}
	if (*factor != "" && cmd != "reset") || (*policyRef != "" && cmd != "users") || (*provider != "" && cmd != "reset" && cmd != "unlock") {
		return usageErr(stderr, prog, fmt.Errorf("a flag does not apply to %s", cmd))
	}

	log := audit.New(slog.New(slog.NewJSONHandler(stderr, nil)), nil)
	var a *Admin
	var resolve PolicyProviders
	if *configDir != "" || *dataDir != "" {
		if *configDir == "" || *dataDir == "" {
			return usageErr(stderr, prog, errors.New("standalone mode needs both --config-dir and --data-dir"))
		}
		var closeFn func()
		var err error
		a, resolve, closeFn, err = Standalone(*configDir, *dataDir, cmd != "revoke", log, time.Now)
		if err != nil {
			return fail(stderr, prog, cmd, err)
		}
		defer closeFn()
	} else {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = *kubeconfig
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return fail(stderr, prog, cmd, fmt.Errorf("no cluster configuration (--kubeconfig, KUBECONFIG or ~/.kube/config; or --config-dir and --data-dir for a standalone server): %w", err))
		}
		a, resolve, err = Cluster(ctx, cfg, *namespace, log, time.Now)
		if err != nil {
			return fail(stderr, prog, cmd, err)
		}
	}
	a.Warn = func(format string, args ...any) { fmt.Fprintf(stderr, prog+": warning: "+format+"\n", args...) }

	var err error
	switch cmd {
	case "users":
		err = listUsers(ctx, a, resolve, *policyRef, stdout)
	case "reset":
		var changed []string
		if changed, err = a.Reset(ctx, positional[0], *provider, *factor); err == nil {
			if len(changed) == 0 {
				fmt.Fprintf(stdout, "user %q had no enrolment to reset; every session and remembered browser issued before now is revoked\n", positional[0])
			} else {
				fmt.Fprintf(stdout, "reset user %q with %s: the user enrols again at the next visit; every session and remembered browser issued before now is revoked\n", positional[0], strings.Join(changed, ", "))
			}
		}
	case "revoke":
		if err = a.Revoke(ctx, positional[0]); err == nil {
			fmt.Fprintf(stdout, "revoked every session and remembered browser of user %q issued before now; enrolments kept\n", positional[0])
		}
	case "unlock":
		var changed []string
		if changed, err = a.Unlock(ctx, positional[0], *provider); err == nil {
			if len(changed) == 0 {
				fmt.Fprintf(stdout, "user %q was not locked out and had no failed attempts\n", positional[0])
			} else {
				fmt.Fprintf(stdout, "unlocked user %q with %s\n", positional[0], strings.Join(changed, ", "))
			}
		}
	}
	if err != nil {
		return fail(stderr, prog, cmd, err)
	}
	return 0
}

func listUsers(ctx context.Context, a *Admin, resolve PolicyProviders, policyRef string, stdout io.Writer) error {
	var providers []string
	if policyRef != "" {
		var err error
		if providers, err = resolve(ctx, policyRef); err != nil {
			return err
		}
	}
	rows, err := a.Users(ctx, providers)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tPROVIDER\tFACTOR\tCREATED\tLAST USED\tLOCKED UNTIL\tBROWSERS")
	stamp := func(t time.Time, alt string) string {
		if t.IsZero() {
			return alt
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, r := range rows {
		factor := r.Factor
		if r.Detail != "" {
			factor += " (" + r.Detail + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.User, r.Provider, factor, stamp(r.Created, "-"), stamp(r.LastUsed, "-"), stamp(r.LockedUntil, "-"), r.RememberedBrowsers)
	}
	return tw.Flush()
}

func usageErr(stderr io.Writer, prog string, err error) int {
	fmt.Fprintf(stderr, "%s: %v\nrun %s help\n", prog, err, prog)
	return 2
}

// fail prints err; a refusal of the API server (403) says which Role is
// missing.
func fail(stderr io.Writer, prog, cmd string, err error) int {
	if apierrors.IsForbidden(err) {
		fmt.Fprintf(stderr, "%s %s: not allowed: %v\n"+
			"Your Kubernetes user lacks the helpdesk permissions. Ask a cluster administrator to bind the Role\n"+
			"and ClusterRole of %s to you (README: Helpdesk).\n", prog, cmd, err, HelpdeskRBAC)
		return 1
	}
	fmt.Fprintf(stderr, "%s %s: %v\n", prog, cmd, err)
	return 1
}
