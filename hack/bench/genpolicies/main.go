// Command genpolicies writes the benchmark's MFAProvider and N MFAPolicy
// objects as YAML documents, for the challenge server's --config-dir or
// for kubectl apply -f.
//
//	genpolicies -n 1000 -out DIR      writes DIR/provider.yaml and DIR/policies.yaml
//	genpolicies -n 10000 -out DIR     ... and DIR/policies-0002.yaml ... (1,000 a file)
//	genpolicies -distinct ...         no two policies share a rule's text
//
// The policies are written 1,000 a file (-per-file) so that no file passes
// the challenge server's limit on one config file.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/hack/bench/internal/benchpolicy"
)

func main() {
	n := flag.Int("n", 1, "number of MFAPolicy objects")
	out := flag.String("out", "", "directory to write provider.yaml and policies.yaml into")
	perFile := flag.Int("per-file", 1000, "policies per file: policies.yaml, then policies-0002.yaml, ...")
	distinct := flag.Bool("distinct", false, "give every policy rule texts of its own (a path prefix, a network, a host)")
	flag.Parse()
	if *out == "" || *n < 1 || *perFile < 1 {
		fmt.Fprintln(os.Stderr, "usage: genpolicies -n N -out DIR")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	if err := write(filepath.Join(*out, "provider.yaml"), []any{benchpolicy.Provider()}); err != nil {
		fail(err)
	}
	pols := benchpolicy.Policies(*n)
	if *distinct {
		pols = benchpolicy.DistinctPolicies(*n)
	}
	for start := 0; start < len(pols); start += *perFile {
		name := "policies.yaml"
		if start > 0 {
			name = fmt.Sprintf("policies-%04d.yaml", start / *perFile + 1)
		}
		var docs []any
		for _, p := range pols[start:min(start+*perFile, len(pols))] {
			docs = append(docs, p)
		}
		if err := write(filepath.Join(*out, name), docs); err != nil {
			fail(err)
		}
	}
}

func write(path string, docs []any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i, d := range docs {
		data, err := yaml.Marshal(d)
		if err != nil {
			f.Close()
			return err
		}
		if i > 0 {
			if _, err := w.WriteString("---\n"); err != nil {
				f.Close()
				return err
			}
		}
		if _, err := w.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "genpolicies: %v\n", err)
	os.Exit(1)
}
