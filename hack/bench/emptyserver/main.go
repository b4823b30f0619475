// Command emptyserver is the baseline of the /auth benchmark: a net/http
// server whose handler does nothing (200, empty body). Its http.Server is
// configured like the challenge server's (timeouts, header limit, body
// limit), so the difference between the two is the work /auth does.
//
// With -header (repeatable) the handler answers with those fixed response
// headers and nothing else: the cost of the answer's headers alone, without
// any decision.
//
// With -grpc-addr it also serves envoy.service.auth.v3.Authorization/Check
// there, answering every Check OK with nothing else: the baseline of the
// gRPC Check benchmark, its grpc.Server configured like the challenge
// server's (message limit, keepalive). The HTTP listener stays, for the
// readiness probe of the benchmark.
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

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	var fixed headerFlags
	flag.Var(&fixed, "header", `a response header, "Name: value" (repeatable)`)
	grpcAddr := flag.String("grpc-addr", "", "also serve an empty ext_authz Check on this address")
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
	if *grpcAddr != "" {
		gln, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "emptyserver: %v\n", err)
			os.Exit(1)
		}
		gsrv := grpc.NewServer(
			grpc.MaxRecvMsgSize(128<<10),
			grpc.ConnectionTimeout(5*time.Second),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 120 * time.Second}),
		)
		authv3.RegisterAuthorizationServer(gsrv, emptyCheck{})
		go func() { _ = gsrv.Serve(gln) }()
	}
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

// emptyCheck answers every Check OK, with no headers.
type emptyCheck struct {
	authv3.UnimplementedAuthorizationServer
}

func (emptyCheck) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}, nil
}
