// Command emptyserver is the baseline of the /auth benchmark: a net/http
// server whose handler does nothing (200, empty body). Its http.Server is
// configured like the challenge server's (timeouts, header limit, body
// limit), so the difference between the two is the work /auth does.
//
// With -header (repeatable) the handler answers with those fixed response
// headers and nothing else: the cost of the answer's headers alone, without
// any decision.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	var fixed headerFlags
	flag.Var(&fixed, "header", `a response header, "Name: value" (repeatable)`)
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "emptyserver: %v\n", err)
		os.Exit(1)
	}
	empty := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if len(fixed) > 0 {
		empty = func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			for _, kv := range fixed {
				h[kv[0]] = []string{kv[1]}
			}
		}
	}
	srv := &http.Server{
		Handler:           http.MaxBytesHandler(empty, 64<<10),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "emptyserver: %v\n", err)
		os.Exit(1)
	}
}

// headerFlags are -header values as canonical name and value.
type headerFlags [][2]string

func (h *headerFlags) String() string { return fmt.Sprint(*h) }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("%q: want \"Name: value\"", v)
	}
	*h = append(*h, [2]string{http.CanonicalHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(value)})
	return nil
}
