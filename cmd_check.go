package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/hostname"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/source"
)

const checkHelp = `Validates MFAPolicy and MFAProvider objects in YAML or JSON files (several
documents a file; directories are read recursively, hidden ones skipped)
with the controller's own compiler: CEL type errors with the file, the
object, the rule and the position; providers that are missing, not Ready or
that do not admit the policy's namespace; expressions over the cost limit;
identity headers the operator does not allow; rules reading request.geo
without a GeoIP database; hosts that two policies claim. Secrets and
Namespaces in the files are used; a Duo provider's Secret that is not among
them is assumed to exist (a note says so), and a namespace's labels are
known only from a Namespace object among them.

Exit status: 0 when every object is valid, 1 when one is not (or a file
does not parse), 2 for a command line that makes no sense.
`

type checkFlags struct {
	cmd     *cmdFlags
	files   *[]string
	output  *string
	geoip   *bool
	headers *string
	quietOK *bool
}

func newCheckFlags() *checkFlags {
	c := newCmdFlags("check")
	f := &checkFlags{cmd: c}
	c.section("Input and output")
	f.files = c.Strings("f", "DIR|FILE", "a file or a directory of files to check; repeat it or separate with commas")
	f.output = c.String("o", "FORMAT", "text", "text (for people) or json (for CI)")
	f.quietOK = c.Bool("only-errors", false, "in text output, leave out the objects that are valid")
	c.section("As the operator runs")
	f.geoip = c.Bool("geoip", false, "the operator runs with --geoip-db, so rules may read request.geo")
	f.headers = c.String("identity-headers", "NAMES", strings.Join(policy.DefaultIdentityHeaders, ","),
		"the operator's --identity-headers: header names MFAPolicy header identities may name; * allows any")
	return f
}

// checkResult is the verdict on one object (or one file that does not
// parse), as -o json writes it.
type checkResult struct {
	File      string   `json:"file"`
	Document  int      `json:"document,omitempty"`
	Kind      string   `json:"kind,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Valid     bool     `json:"valid"`
	Reason    string   `json:"reason,omitempty"`
	Field     string   `json:"field,omitempty"`
	Rule      string   `json:"rule,omitempty"`
	RuleIndex *int     `json:"ruleIndex,omitempty"`
	Line      int      `json:"line,omitempty"`
	Column    int      `json:"column,omitempty"`
	Message   string   `json:"message,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}

type checkReport struct {
	Valid   bool          `json:"valid"`
	Files   int           `json:"files"`
	Objects int           `json:"objects"`
	Invalid int           `json:"invalid"`
	Results []checkResult `json:"results"`
}

func runCheck(_ context.Context, args []string, stdout io.Writer) error {
	f := newCheckFlags()
	if err := f.cmd.parse(args); err != nil {
		return badUsage(err)
	}
	if len(*f.files) == 0 {
		return usageError{errors.New("name the files to check: -f DIR|FILE")}
	}
	if *f.output != "text" && *f.output != "json" {
		return usageError{fmt.Errorf("-o %q: want text or json", *f.output)}
	}
	ids, err := (&commonFlags{identityHdrs: f.headers}).identityHeaders()
	if err != nil {
		return usageError{err}
	}
	rep, err := checkFiles(*f.files, policy.BuildOptions{IdentityHeaders: ids, GeoIP: *f.geoip})
	if err != nil {
		return err
	}
	if *f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeCheckText(stdout, rep, *f.quietOK)
	}
	if !rep.Valid {
		return fmt.Errorf("%d of %d objects not valid", rep.Invalid, rep.Objects)
	}
	return nil
}

// checkFiles reads the files and directories named and checks every
// object in them.
func checkFiles(paths []string, opts policy.BuildOptions) (*checkReport, error) {
	files, err := listFiles(paths)
	if err != nil {
		return nil, err
	}
	rep := &checkReport{Files: len(files), Results: []checkResult{}}
	objs := source.NewObjects()
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err == nil {
			err = objs.AddFile(file, data)
		}
		if err != nil {
			rep.Results = append(rep.Results, checkResult{File: file, Message: strings.TrimPrefix(err.Error(), file+": ")})
		}
	}
	notes := stubSecrets(objs)
	bundle, verdicts := objs.BuildWith(nil, opts)
	conflicts := hostConflicts(bundle)
	for i, p := range objs.Providers() {
		k := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
		r := objectResult(objs.ProviderOrigin(i), "MFAProvider", k, verdicts.Providers[k])
		r.Notes = notes[k]
		rep.Results = append(rep.Results, r)
	}
	for i := range objs.Policies() {
		p := &objs.Policies()[i]
		k := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
		err := verdicts.Policies[k]
		if err == nil && conflicts[k] != "" {
			err = &policy.FieldError{Field: "spec.hosts", Reason: v1alpha1.ReasonHostConflict, Message: conflicts[k]}
		}
		r := objectResult(objs.PolicyOrigin(i), "MFAPolicy", k, err)
		r.Notes = append(r.Notes, admissionNote(objs, p, err)...)
		if r.Valid && p.Spec.GetMode() == v1alpha1.ModeAudit {
			r.Notes = append(r.Notes, "mode Audit: its decisions are recorded, not applied")
		}
		rep.Results = append(rep.Results, r)
	}
	rep.Objects = len(objs.Providers()) + len(objs.Policies())
	for _, r := range rep.Results {
		if !r.Valid {
			rep.Invalid++
		}
	}
	rep.Valid = rep.Invalid == 0
	return rep, nil
}

// listFiles expands directories (recursively, hidden entries skipped) to
// their YAML and JSON files; a file named explicitly is read whatever its
// name.
func listFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if path != p && strings.HasPrefix(name, ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			switch strings.ToLower(filepath.Ext(name)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					files = append(files, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

var ruleField = regexp.MustCompile(`^spec\.rules\[(\d+)\]`)

func objectResult(o source.Origin, kind string, k types.NamespacedName, err error) checkResult {
	r := checkResult{File: o.File, Document: o.Document, Kind: kind, Namespace: k.Namespace, Name: k.Name, Valid: err == nil}
	if err == nil {
		return r
	}
	r.Message = err.Error()
	var fe *policy.FieldError
	if errors.As(err, &fe) {
		r.Reason, r.Field, r.Rule, r.Line, r.Column, r.Message = fe.Reason, fe.Field, fe.Rule, fe.Line, fe.Column, fe.Message
		if m := ruleField.FindStringSubmatch(fe.Field); m != nil {
			i, _ := strconv.Atoi(m[1])
			r.RuleIndex = &i
		}
	}
	return r
}

// stubSecrets stands in for the Secrets of Duo providers that are not
// among the files (a repository rarely holds them), so that the rest of
// the provider is checked; the notes say which were not.
func stubSecrets(objs *source.Objects) map[types.NamespacedName][]string {
	notes := map[types.NamespacedName][]string{}
	stubs := map[types.NamespacedName]*corev1.Secret{}
	for _, p := range objs.Providers() {
		d := p.Spec.Duo
		if d == nil {
			continue
		}
		for _, ref := range []v1alpha1.SecretKeySelector{d.IntegrationKeyRef, d.SecretKeyRef} {
			sk := types.NamespacedName{Namespace: p.Namespace, Name: ref.Name}
			if ref.Name == "" || objs.Secret(sk) != nil && stubs[sk] == nil {
				continue
			}
			s := stubs[sk]
			if s == nil {
				s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: ref.Name}, StringData: map[string]string{}}
				stubs[sk] = s
			}
			s.StringData[ref.Key] = "not-checked-offline"
			k := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
			notes[k] = append(notes[k], fmt.Sprintf("Secret %s (key %s) is not among the files: not checked offline", sk, ref.Key))
		}
	}
	for _, s := range stubs {
		objs.AddSecret(s)
	}
	return notes
}

// hostConflicts says, for each policy of the bundle in a host conflict,
// what the controller would say (Reason HostConflict).
func hostConflicts(b *policy.Bundle) map[types.NamespacedName]string {
	var all []hostname.Claim
	for i := range b.Policies {
		cs, _ := hostname.ClaimsOf(b.Policies[i].Namespace, b.Policies[i].Name, b.Policies[i].Spec.Hosts)
		all = append(all, cs...)
	}
	index := hostname.NewClaims(all)
	out := map[types.NamespacedName]string{}
	for i := range b.Policies {
		p := &b.Policies[i]
		own, _ := hostname.ClaimsOf(p.Namespace, p.Name, p.Spec.Hosts)
		var parts []string
		for _, c := range own {
			for _, other := range index.Conflicts(c) {
				parts = append(parts, hostname.ConflictText(p.Spec.Hosts, c, other))
			}
		}
		if len(parts) > 0 {
			out[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = strings.Join(parts, "; ") +
				"; host-based lookup (/auth, /forward-auth) refuses those hosts (403) until the conflict is resolved"
		}
	}
	return out
}

// admissionNote explains a provider of another namespace that does not
// admit the policy when only its namespace selector could: the labels of
// a namespace are not known offline unless its Namespace object is given.
func admissionNote(objs *source.Objects, p *v1alpha1.MFAPolicy, err error) []string {
	var fe *policy.FieldError
	if !errors.As(err, &fe) || fe.Reason != v1alpha1.ReasonProviderNotAdmitted || objs.HasNamespace(p.Namespace) {
		return nil
	}
	for _, k := range policy.ProviderKeys(p.Namespace, &p.Spec) {
		for _, prov := range objs.Providers() {
			if prov.Namespace == k.Namespace && prov.Name == k.Name && prov.Spec.AllowedNamespaceSelector != nil {
				return []string{fmt.Sprintf("the labels of namespace %q are unknown offline: MFAProvider %s admits namespaces by allowedNamespaceSelector, "+
					"which may admit it in the cluster; add the Namespace object (with its labels) to the files checked, or list %q in spec.allowedNamespaces",
					p.Namespace, k, p.Namespace)}
			}
		}
	}
	return nil
}

func writeCheckText(w io.Writer, rep *checkReport, onlyErrors bool) {
	for _, r := range rep.Results {
		if r.Valid && onlyErrors {
			continue
		}
		where := r.File
		if r.Document > 0 {
			where += fmt.Sprintf(" (document %d)", r.Document)
		}
		what := "file"
		if r.Kind != "" {
			what = r.Kind + " " + r.Namespace + "/" + r.Name
		}
		switch {
		case r.Valid:
			fmt.Fprintf(w, "ok      %s: %s\n", where, what)
		default:
			head := r.Reason
			if r.Rule != "" {
				head += fmt.Sprintf(" in rule %q", r.Rule)
			}
			if r.Field != "" {
				head += " (" + r.Field
				if r.Line > 0 {
					head += fmt.Sprintf(", line %d column %d", r.Line, r.Column)
				}
				head += ")"
			}
			fmt.Fprintf(w, "INVALID %s: %s: %s\n", where, what, strings.TrimSpace(head))
			for _, line := range strings.Split(r.Message, "\n") {
				fmt.Fprintln(w, "        "+line)
			}
		}
		for _, n := range r.Notes {
			fmt.Fprintln(w, "        note: "+n)
		}
	}
	fmt.Fprintf(w, "%d objects in %d files: %d valid, %d not valid\n", rep.Objects, rep.Files, rep.Objects-rep.Invalid, rep.Invalid)
}

// checkOptions are the build options of check with its defaults.
func checkOptions() policy.BuildOptions {
	return policy.BuildOptions{IdentityHeaders: policy.DefaultIdentityHeaders}
}
