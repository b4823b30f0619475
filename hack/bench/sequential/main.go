// Command sequential sends -n requests one after the other over one
// keep-alive connection, with the given headers, and fails unless every
// answer has the expected status. It drives the instruction counts of
// make bench, where the number of requests must be exact.
//
//	sequential -n 3000 -status 200 -H 'X-Original-URL: http://app.example.com/' http://127.0.0.1:8080/auth/apps/bench
//
// A Host header is the request's Host. With -grpc the requests are Envoy
// ext_authz Checks over one gRPC connection to the address given, asking
// about a GET of -original from -source, with the headers given (as Envoy
// sends them: lower-case, the pseudo-headers beside them) and the policy of
// -policy as the route's context extension; -status is the HTTP status
// Envoy would answer with (200 for OK).
//
//	sequential -grpc -n 3000 -status 200 -original http://app.example.com/ -policy apps/bench 127.0.0.1:9443
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	n := flag.Int("n", 1000, "number of requests")
	status := flag.Int("status", http.StatusOK, "expected status of every answer")
	var headers headerFlags
	flag.Var(&headers, "H", `a request header, "Name: value" (repeatable)`)
	useGRPC := flag.Bool("grpc", false, "send ext_authz Checks over gRPC to the address given")
	original := flag.String("original", "http://app.example.com/", "with -grpc: the URL of the request a Check asks about")
	policy := flag.String("policy", "", "with -grpc: the mfa-policy context extension (namespace/name)")
	source := flag.String("source", "192.0.2.10", "with -grpc: the client's address")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sequential [-n N] [-status S] [-H 'Name: value']... URL")
		fmt.Fprintln(os.Stderr, "       sequential -grpc [-n N] [-status S] [-H 'Name: value']... [-original URL] [-policy NS/NAME] [-source IP] HOST:PORT")
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
	var err error
	if *useGRPC {
		err = checks(flag.Arg(0), *n, *status, h, *original, *policy, *source)
	} else {
		err = requests(flag.Arg(0), *n, *status, h)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sequential:", err)
		os.Exit(1)
	}
}

// requests sends n GETs of target with the headers h.
func requests(target string, n, status int, h http.Header) error {
	host := h.Get("Host")
	h.Del("Host")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	for i := 0; i < n; i++ {
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header = h.Clone()
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("request %d answered %d, want %d", i+1, resp.StatusCode, status)
		}
	}
	return nil
}

// checks sends n Checks to addr, each asking about a GET of original from
// source with the headers h.
func checks(addr string, n, status int, h http.Header, original, policy, source string) error {
	u, err := url.Parse(original)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-original %q is not an absolute URL", original)
	}
	path := u.RequestURI()
	headers := map[string]string{":authority": u.Host, ":method": http.MethodGet, ":path": path, ":scheme": u.Scheme,
		"x-forwarded-proto": u.Scheme, "x-request-id": "4f0c3c5e-6d2a-4a8e-9d59-2f1c0c3f3e11"}
	for k, v := range h {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress(source, 53122)},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress("10.9.0.2", 8443)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Now()),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "16014985813716455217", Method: http.MethodGet, Headers: headers, Path: path, Host: u.Host,
				Scheme: u.Scheme, Protocol: "HTTP/1.1",
			},
		},
	}}
	if policy != "" {
		req.Attributes.ContextExtensions = map[string]string{"mfa-policy": policy}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	for i := 0; i < n; i++ {
		resp, err := client.Check(context.Background(), req)
		if err != nil {
			return fmt.Errorf("check %d: %w", i+1, err)
		}
		got := http.StatusOK
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			got = int(resp.GetDeniedResponse().GetStatus().GetCode())
		}
		if got != status {
			return fmt.Errorf("check %d answered %d (gRPC code %d), want %d", i+1, got, resp.GetStatus().GetCode(), status)
		}
	}
	return nil
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}
