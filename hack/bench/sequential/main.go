// Command sequential sends -n requests one after the other over one
// keep-alive connection, with the given headers, and fails unless every
// answer has the expected status. It drives the instruction counts of
// make bench, where the number of requests must be exact.
//
//	sequential -n 3000 -status 200 -H 'X-Original-URL: http://app.example.com/' http://127.0.0.1:8080/auth/apps/bench
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	n := flag.Int("n", 1000, "number of requests")
	status := flag.Int("status", http.StatusOK, "expected status of every answer")
	var headers headerFlags
	flag.Var(&headers, "H", `a request header, "Name: value" (repeatable)`)
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sequential [-n N] [-status S] [-H 'Name: value']... URL")
		os.Exit(2)
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			fmt.Fprintf(os.Stderr, "sequential: header %q is not Name: value\n", kv)
			os.Exit(2)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	for i := 0; i < *n; i++ {
		req, err := http.NewRequest(http.MethodGet, flag.Arg(0), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sequential:", err)
			os.Exit(2)
		}
		req.Header = h.Clone()
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sequential: request %d: %v\n", i+1, err)
			os.Exit(1)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != *status {
			fmt.Fprintf(os.Stderr, "sequential: request %d answered %d, want %d\n", i+1, resp.StatusCode, *status)
			os.Exit(1)
		}
	}
}
