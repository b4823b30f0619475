package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/webhook"
)

const explainHelp = `Says what a policy decides for one request: the rule that decides, its
action, providers and rememberFor, and for each rule before it why it did not
match (the value of each part of an && or ||). The request is read and the
rules evaluated by the challenge server's own code, as /auth would for the
front door's X-Original-URL and X-Original-Method.

The policy comes from the cluster (--policy NS/NAME, through --kubeconfig,
else KUBECONFIG, else ~/.kube/config) or from files (-f FILE, the policy
named by --policy or the only one in them).
`

type explainFlags struct {
	cmd     *cmdFlags
	policy  *string
	files   *[]string
	url     *string
	method  *string
	user    *string
	groups  *string
	ip      *string
	at      *string
	headers *[]string
	claims  *string
	geoipDB *string
	output  *string
}

func newExplainFlags() *explainFlags {
	c := newCmdFlags("explain")
	f := &explainFlags{cmd: c}
	c.section("Policy")
	f.policy = c.String("policy", "NS/NAME", "", "the MFAPolicy: read from the cluster, or chosen among the files of -f")
	f.files = c.Strings("f", "FILE", "read the policy from these files (or directories) instead of the cluster")
	c.Kubeconfig()
	c.section("Request")
	f.url = c.String("url", "URL", "", "the original URL, e.g. https://admin.example.com/billing?x=1 (required)")
	f.method = c.String("method", "METHOD", "GET", "the original method")
	f.user = c.String("user", "ID", "", "user.id (and user.email when it has an @); empty: no identity, /auth answers 401 before any rule")
	f.groups = c.String("groups", "LIST", "", "user.groups, comma-separated")
	f.claims = c.String("claims", "JSON", "", "user.claims, a JSON object (JWT identities)")
	f.ip = c.String("ip", "ADDR", "", "request.ip, the client address")
	f.at = c.String("time", "RFC3339", "", "request.time, e.g. 2026-11-30T18:30:00+01:00 (default now)")
	f.headers = c.Strings("header", "NAME=VALUE", "a request header (repeat it); request.headers has lower-case names")
	f.geoipDB = c.String("geoip-db", "FILES", "", "MaxMind-format databases for request.geo (comma-separated)")
	c.section("Output")
	f.output = c.String("o", "FORMAT", "text", "text or json")
	return f
}

// explainReport is what -o json writes.
type explainReport struct {
	Policy       string        `json:"policy"`
	Mode         string        `json:"mode"`
	Identity     bool          `json:"identity"`
	Action       string        `json:"action"`
	Rule         string        `json:"rule,omitempty"`
	Default      bool          `json:"default,omitempty"`
	Providers    []string      `json:"providers,omitempty"`
	RememberFor  string        `json:"rememberFor,omitempty"`
	IgnoreCookie bool          `json:"ignoreCookie,omitempty"`
	Error        string        `json:"error,omitempty"`
	Trace        []explainRule `json:"rules"`
	Notes        []string      `json:"notes,omitempty"`
}

type explainRule struct {
	Index   int                `json:"index"`
	Name    string             `json:"name"`
	When    string             `json:"when"`
	Matched bool               `json:"matched"`
	Error   string             `json:"error,omitempty"`
	Parts   []policy.PartTrace `json:"parts,omitempty"`
}

func runExplain(ctx context.Context, args []string, stdout io.Writer) error {
	f := newExplainFlags()
	if err := f.cmd.parse(args); err != nil {
		return badUsage(err)
	}
	if *f.url == "" {
		return usageError{errors.New("--url is required: the original URL of the request to explain")}
	}
	if *f.policy == "" && len(*f.files) == 0 {
		return usageError{errors.New("name the policy: --policy NS/NAME (from the cluster) or -f FILE")}
	}
	if *f.output != "text" && *f.output != "json" {
		return usageError{fmt.Errorf("-o %q: want text or json", *f.output)}
	}
	vars, err := f.vars()
	if err != nil {
		return usageError{err}
	}
	p, err := f.loadPolicy(ctx)
	if err != nil {
		return err
	}
	cp, err := policy.CompilePolicy(p.Namespace, p.Name, &p.Spec)
	if err != nil {
		return fmt.Errorf("MFAPolicy %s/%s does not compile: %w", p.Namespace, p.Name, err)
	}
	rep := &explainReport{Policy: p.Namespace + "/" + p.Name, Mode: string(p.Spec.GetMode()), Identity: *f.user != ""}
	if cp.ReadsGeo() {
		if paths := geoip.ParsePaths(*f.geoipDB); len(paths) > 0 {
			db, err := geoip.Open(paths, nil)
			if err != nil {
				return usageError{fmt.Errorf("--geoip-db: %w", err)}
			}
			vars.Request.Geo = db.Lookup(vars.Request.IP)
		} else {
			rep.Notes = append(rep.Notes, "the policy reads request.geo and no --geoip-db was given: request.geo is empty here")
		}
	}
	explain(cp, vars, rep)
	if *f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeExplainText(stdout, rep, vars)
	return nil
}

// explain fills rep with the policy's judgement of vars.
func explain(cp *policy.CompiledPolicy, vars *policy.Vars, rep *explainReport) {
	if !rep.Identity {
		rep.Action = "Challenge"
		rep.Notes = append(rep.Notes, "no identity (--user): /auth answers 401 before any rule is evaluated")
		return
	}
	x := cp.Explain(vars)
	rep.Action = string(x.Verdict.Action)
	for _, t := range x.Rules {
		er := explainRule{Index: t.Index, Name: t.Name, When: t.When, Matched: t.Matched, Parts: t.Parts}
		if t.Err != nil {
			er.Error = t.Err.Error()
		}
		rep.Trace = append(rep.Trace, er)
	}
	switch r := x.Verdict.Rule; {
	case x.Err != nil:
		rep.Action, rep.Rule, rep.Error = "Error", r.Name, x.Err.Error()
		rep.Notes = append(rep.Notes, "the rule fails to evaluate: /auth answers 403 (fail closed)")
	case r == nil:
		rep.Default = true
	default:
		rep.Rule = r.Name
		if r.Action == v1alpha1.ActionRequireMFA {
			rep.Providers, rep.RememberFor, rep.IgnoreCookie = r.Providers, r.RememberFor.String(), r.IgnoreCookie
		}
	}
	if cp.Audit {
		rep.Notes = append(rep.Notes, "mode Audit: the challenge server records this decision and lets the request through")
	}
}

// vars builds `user` and `request` from the flags, the request through
// the challenge server's own reading of the original URL.
func (f *explainFlags) vars() (*policy.Vars, error) {
	now := time.Now()
	if *f.at != "" {
		t, err := time.Parse(time.RFC3339, *f.at)
		if err != nil {
			return nil, fmt.Errorf("--time %q: want RFC 3339, e.g. 2026-11-30T18:30:00+01:00", *f.at)
		}
		now = t
	}
	h := http.Header{}
	for _, kv := range *f.headers {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !validHeaderName(strings.TrimSpace(k)) {
			return nil, fmt.Errorf("--header %q: want NAME=VALUE", kv)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), v)
	}
	req, err := webhook.RuleRequest(*f.url, strings.ToUpper(*f.method), h, *f.ip, now)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %w", *f.url, err)
	}
	u := &policy.User{ID: *f.user}
	if strings.IndexByte(u.ID, '@') > 0 {
		u.Email = u.ID
	}
	for g := range strings.SplitSeq(*f.groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			u.Groups = append(u.Groups, g)
		}
	}
	if *f.claims != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(*f.claims), &m); err != nil {
			return nil, fmt.Errorf("--claims: want a JSON object: %v", err)
		}
		u.Claims = policy.NewClaims(m)
	}
	return &policy.Vars{User: u, Request: &req}, nil
}

// loadPolicy reads the policy from the files, or from the cluster.
func (f *explainFlags) loadPolicy(ctx context.Context) (*v1alpha1.MFAPolicy, error) {
	if len(*f.files) > 0 {
		files, err := listFiles(*f.files)
		if err != nil {
			return nil, err
		}
		objs := source.NewObjects()
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err == nil {
				err = objs.AddFile(file, data)
			}
			if err != nil {
				return nil, err
			}
		}
		var found []*v1alpha1.MFAPolicy
		for i := range objs.Policies() {
			p := &objs.Policies()[i]
			if *f.policy == "" || *f.policy == p.Namespace+"/"+p.Name {
				found = append(found, p)
			}
		}
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) == 0 && *f.policy != "":
			return nil, fmt.Errorf("no MFAPolicy %s in the files", *f.policy)
		case len(found) == 0:
			return nil, errors.New("no MFAPolicy in the files")
		}
		return nil, usageError{errors.New("the files hold several MFAPolicies: choose one with --policy NS/NAME")}
	}
	ns, name, ok := strings.Cut(*f.policy, "/")
	if !ok || ns == "" || name == "" {
		return nil, usageError{fmt.Errorf("--policy %q: want NAMESPACE/NAME", *f.policy)}
	}
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("finding the cluster (--kubeconfig, else KUBECONFIG, else ~/.kube/config): %w", err)
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	p := &v1alpha1.MFAPolicy{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		return nil, fmt.Errorf("reading MFAPolicy %s: %w", *f.policy, err)
	}
	return p, nil
}

func writeExplainText(w io.Writer, rep *explainReport, vars *policy.Vars) {
	who := "no identity"
	if rep.Identity {
		who = vars.User.ID
	}
	fmt.Fprintf(w, "MFAPolicy %s (mode %s): %s %s as %s from %q\n", rep.Policy, rep.Mode, vars.Request.Method, vars.Request.URL, who, vars.Request.IP)
	for _, r := range rep.Trace {
		verdict := "no match"
		switch {
		case r.Error != "":
			verdict = "ERROR: " + r.Error
		case r.Matched:
			verdict = "MATCH"
		}
		fmt.Fprintf(w, "  rule %d %q: %s\n      when: %s\n", r.Index+1, r.Name, verdict, r.When)
		for _, p := range r.Parts {
			fmt.Fprintf(w, "      %-6s %s\n", p.Value, p.Expr)
		}
	}
	switch {
	case rep.Action == "Challenge" && !rep.Identity:
		fmt.Fprintln(w, "decision: 401, identity missing")
	case rep.Error != "":
		fmt.Fprintf(w, "decision: 403, rule %q failed to evaluate\n", rep.Rule)
	case rep.Default:
		fmt.Fprintf(w, "decision: %s by the policy's default (no rule matched)\n", rep.Action)
	case len(rep.Providers) > 0:
		fmt.Fprintf(w, "decision: %s by rule %q; providers %s; rememberFor %s; ignoreCookie %t\n",
			rep.Action, rep.Rule, strings.Join(rep.Providers, ", "), rep.RememberFor, rep.IgnoreCookie)
	default:
		fmt.Fprintf(w, "decision: %s by rule %q\n", rep.Action, rep.Rule)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
}
