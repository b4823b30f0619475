// Command genpolicies writes the benchmark's MFAProvider and N MFAPolicy
// objects as YAML documents, for the challenge server's --config-dir or
// for kubectl apply -f.
//
//	genpolicies -n 1000 -out DIR      writes DIR/provider.yaml and DIR/policies.yaml
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
	flag.Parse()
	if *out == "" || *n < 1 {
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
	docs := make([]any, len(pols))
	for i, p := range pols {
		docs[i] = p
	}
	if err := write(filepath.Join(*out, "policies.yaml"), docs); err != nil {
		fail(err)
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
