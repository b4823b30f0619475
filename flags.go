package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Flag groups, in the order --help shows them.
const (
	groupFrontDoor     = "Front door"
	groupCookies       = "Cookies"
	groupCluster       = "Cluster"
	groupChallenge     = "Challenge server Deployment"
	groupStore         = "Standalone mode (no cluster)"
	groupLockout       = "Lockout"
	groupObservability = "Observability"
	groupRuntime       = "Runtime"
)

// envName is the environment variable of a flag: MFA_ and the flag's name
// upper-cased, dashes as underscores (--public-url: MFA_PUBLIC_URL).
func envName(flagName string) string {
	return "MFA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// cmdFlags are one command's flags. Each has a type, a default, an
// environment variable (envName) and a group; the environment is read
// before the command line, which wins. A bad value, from either, is an
// error naming the flag (or the variable) and the form expected.
type cmdFlags struct {
	cmd   string
	fs    *flag.FlagSet
	flags []*flagInfo
	group string
	// failed is the last value a typed flag refused on the command line:
	// the flag package's own error names the flag with one dash only.
	failed error
}

// flagInfo describes a flag for --help.
type flagInfo struct {
	name, group, usage string
	// arg names the value in --help (URL, CIDRS, DURATION); empty for a bool.
	arg string
	// def is the default as --help shows it (empty: none).
	def string
	// env is an extra note on the environment (kubeconfig).
	env string
	// value is the typed value, without checked around it.
	value flag.Value
}

func newCmdFlags(cmd string) *cmdFlags {
	fs := flag.NewFlagSet("mfa-operator "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are written by run
	return &cmdFlags{cmd: cmd, fs: fs}
}

// section makes the flags declared next belong to group.
func (c *cmdFlags) section(group string) { c.group = group }

func (c *cmdFlags) add(name, arg, def, usage string, v flag.Value) *flagInfo {
	fi := &flagInfo{name: name, group: c.group, usage: usage, arg: arg, def: def, value: v}
	c.fs.Var(&checked{Value: v, name: name, c: c}, name, usage)
	c.flags = append(c.flags, fi)
	return fi
}

// checked records why a value was refused, with the flag's name.
type checked struct {
	flag.Value
	name string
	c    *cmdFlags
}

func (v *checked) Set(s string) error {
	if err := v.Value.Set(s); err != nil {
		v.c.failed = fmt.Errorf("--%s %q: %w", v.name, s, err)
		return err
	}
	return nil
}

func (v *checked) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// String declares a string flag; arg names its value in --help.
func (c *cmdFlags) String(name, arg, def, usage string) *string {
	p := new(string)
	*p = def
	c.add(name, arg, def, usage, (*stringValue)(p))
	return p
}

// Strings declares a repeatable flag: every use adds its comma-separated
// values.
func (c *cmdFlags) Strings(name, arg, usage string) *[]string {
	p := new([]string)
	c.add(name, arg, "", usage, (*stringsValue)(p))
	return p
}

// Bool declares a boolean flag (--name, --name=true or --name=false).
func (c *cmdFlags) Bool(name string, def bool, usage string) *bool {
	p := new(bool)
	*p = def
	c.add(name, "", strconv.FormatBool(def), usage, (*boolValue)(p))
	return p
}

// Int declares a whole-number flag of at least min.
func (c *cmdFlags) Int(name string, def, min int, usage string) *int {
	p := new(int)
	*p = def
	c.add(name, "N", strconv.Itoa(def), usage, &intValue{p: p, min: min})
	return p
}

// Duration declares a positive duration flag (90s, 5m, 1h30m).
func (c *cmdFlags) Duration(name string, def time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	*p = def
	c.add(name, "DURATION", shortDuration(def), usage, (*durationValue)(p))
	return p
}

// shortDuration is d as it would be written: 5m, not 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Size declares a non-negative size flag (32Mi, 64M, 0).
func (c *cmdFlags) Size(name, def, usage string) *resource.Quantity {
	p := new(resource.Quantity)
	*p = resource.MustParse(def)
	c.add(name, "SIZE", def, usage, (*sizeValue)(p))
	return p
}

// LogLevel declares --log-level.
func (c *cmdFlags) LogLevel() *slog.Level {
	p := new(slog.Level)
	c.add("log-level", "LEVEL", "info", "debug, info, warn or error", (*levelValue)(p))
	return p
}

// Kubeconfig declares --kubeconfig. Set, it is the kubeconfig the
// cluster client loads; otherwise the client looks for KUBECONFIG, the
// in-cluster service account and ~/.kube/config, in that order.
func (c *cmdFlags) Kubeconfig() {
	c.add("kubeconfig", "FILE", "", "kubeconfig of the cluster to work on (only outside a cluster)", kubeconfigValue{}).env =
		"; without it: KUBECONFIG, then the pod's service account (in a cluster), then ~/.kube/config"
}

// kubeconfigValue hands the path to controller-runtime's loader, which
// both modes use (it registered --kubeconfig on the process's flag set).
type kubeconfigValue struct{}

func (kubeconfigValue) String() string { return "" }
func (kubeconfigValue) Set(s string) error {
	return flag.CommandLine.Set(config.KubeconfigFlagName, s)
}

// parse reads the environment, then args. flag.ErrHelp means --help was
// asked for.
func (c *cmdFlags) parse(args []string) error {
	for _, f := range c.flags {
		env := envName(f.name)
		v, ok := os.LookupEnv(env)
		if !ok {
			continue
		}
		if err := f.value.Set(v); err != nil {
			return fmt.Errorf("%s %q (--%s): %w", env, v, f.name, err)
		}
	}
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) || c.failed == nil {
			return flagPackageError(err)
		}
		return c.failed
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags are --name=value)", c.fs.Args())
	}
	return nil
}

// flagPackageError rewrites the flag package's errors with the two-dash
// spelling --help shows.
func flagPackageError(err error) error {
	msg := err.Error()
	for prefix, say := range map[string]string{
		"flag provided but not defined: -": "unknown flag --",
		"flag needs an argument: -":        "a value is missing after --",
	} {
		if name, ok := strings.CutPrefix(msg, prefix); ok {
			return errors.New(say + strings.TrimLeft(name, "-"))
		}
	}
	return err
}

// usage writes the flags, group by group, in the order declared.
func (c *cmdFlags) usage(w io.Writer) {
	var groups []string
	seen := map[string]bool{}
	for _, f := range c.flags {
		if !seen[f.group] {
			seen[f.group] = true
			groups = append(groups, f.group)
		}
	}
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, f := range c.flags {
			if f.group != g {
				continue
			}
			head := "  --" + f.name
			if f.arg != "" {
				head += " " + f.arg
			}
			fmt.Fprintln(w, head)
			note := "env " + envName(f.name) + f.env
			if f.def != "" {
				// A list's default may wrap after its commas.
				note = "default " + strings.ReplaceAll(f.def, ",", ", ") + "; " + note
			}
			for _, line := range wrap(f.usage+" ("+note+")", 72) {
				fmt.Fprintln(w, "      "+line)
			}
		}
	}
}

// wrap breaks s into lines of at most width characters, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// The typed values. Their errors say what is wanted; checked and parse
// add the flag's name and the value given.

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type stringsValue []string

func (v *stringsValue) String() string { return strings.Join(*v, ",") }
func (v *stringsValue) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*v = append(*v, part)
		}
	}
	return nil
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*v = boolValue(b)
	return nil
}

type intValue struct {
	p   *int
	min int
}

func (v *intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < v.min {
		return fmt.Errorf("want a whole number of at least %d, e.g. %d", v.min, max(v.min, 5))
	}
	*v.p = n
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return errors.New("want a positive duration with its unit, e.g. 90s, 5m or 1h30m")
	}
	*v = durationValue(d)
	return nil
}

type sizeValue resource.Quantity

func (v *sizeValue) String() string { q := resource.Quantity(*v); return q.String() }
func (v *sizeValue) Set(s string) error {
	q, err := resource.ParseQuantity(strings.TrimSpace(s))
	if err != nil || q.Sign() < 0 {
		return errors.New("want a size, e.g. 32Mi, 64M or 0")
	}
	*v = sizeValue(q)
	return nil
}

type levelValue slog.Level

func (v *levelValue) String() string { return slog.Level(*v).String() }
func (v *levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(s))); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	*v = levelValue(l)
	return nil
}

// commonFlags are shared by both modes: the controller passes them on to the
// challenge Deployment it owns.
type commonFlags struct {
	namespace      *string
	publicURL      *string
	cookieDomain   *string
	trustedProxies *string
	insecureCookie *bool
	identityHdrs   *string
	trustXRealIP   *bool
	ambiguousPaths *bool
	geoipDB        *string
}

func addCommonFlags(c *cmdFlags) *commonFlags {
	f := &commonFlags{}
	c.section(groupFrontDoor)
	f.publicURL = c.String("public-url", "URL", "", "external URL of the challenge pages, where the front door sends browsers, e.g. https://auth.example.com")
	f.trustedProxies = c.String("trusted-proxies", "CIDRS", "", "comma-separated CIDRs or addresses of the front door, whose X-Forwarded-*/X-Original-* headers are believed; "+
		"/auth and /forward-auth answer 403 to any other peer, so without it every request is refused")
	f.trustXRealIP = c.Bool("trust-x-real-ip", false, "take the client address from X-Real-IP (from --trusted-proxies) before X-Forwarded-For; "+
		"only for a front door that sets X-Real-IP itself, replacing the client's (ingress-nginx, nginx), never for Traefik or Caddy, which pass the client's own on")
	f.ambiguousPaths = c.Bool("allow-ambiguous-paths", false, "judge original paths that servers read differently (encoded slashes or dots, dot segments, \";\", double encoding) "+
		"on their decoded and cleaned form instead of refusing them (403); only when the front door normalises paths the same way before the app sees them")
	f.identityHdrs = c.String("identity-headers", "NAMES", strings.Join(policy.DefaultIdentityHeaders, ","),
		"comma-separated header names that MFAPolicy header identities may name (headers your front door's first factor sets and overwrites); * allows any")
	f.geoipDB = c.String("geoip-db", "FILES", "", "comma-separated MaxMind-format databases (GeoLite2/GeoIP2 Country, ASN or City) that answer request.geo.country and request.geo.asn, "+
		"reloaded when a file changes; without it a policy reading request.geo is not Ready (GeoIPUnavailable)")
	c.section(groupCookies)
	f.cookieDomain = c.String("cookie-domain", "DOMAIN", "", "domain of the MFA cookies, e.g. example.com (empty: host-only cookies)")
	f.insecureCookie = c.Bool("insecure-cookies", false, "drop the Secure attribute of cookies (local http demos only)")
	c.section(groupCluster)
	f.namespace = c.String("namespace", "NAME", "mfa-system", "namespace of the challenge server, its bundle, keyring and enrolment Secrets")
	return f
}

// validate checks what both modes read.
func (f *commonFlags) validate() error {
	if *f.namespace == "" {
		return errors.New("--namespace must not be empty")
	}
	if _, err := parsePrefixes(*f.trustedProxies); err != nil {
		return err
	}
	_, err := f.identityHeaders()
	return err
}

// identityHeaders is --identity-headers as a list; nil for "*" (any).
func (c *commonFlags) identityHeaders() ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(*c.identityHdrs, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
			continue
		case part == "*":
			return nil, nil
		case !validHeaderName(part):
			return nil, fmt.Errorf("--identity-headers: %q is not a header name", part)
		}
		out = append(out, http.CanonicalHeaderKey(part))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--identity-headers is empty: list the headers your first factor sets, or * to allow any")
	}
	return out, nil
}

// validHeaderName says whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	for _, c := range s {
		if c > 0x7e || c <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return false
		}
	}
	return s != ""
}
