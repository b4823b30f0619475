package webhook

import (
	"context"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/mfa-operator/mfa-operator/internal/session"
)

// benchCheck is what Envoy sends for BenchmarkAuthRemembered's request
// (header/rules=10) of a remembered browser, the policy named by the
// route's context extension.
func benchCheck(b *testing.B, opts ...coreOption) (*coreFixture, *authv3.CheckRequest) {
	f := newCoreServer(b, benchPolicy("{ header: { groups: X-Auth-Request-Groups } }", 10),
		append([]coreOption{func(o *Options) { o.Logger = discardLogger() }}, opts...)...)
	rem := cookieNamed(f.issue(headerIdentity(ana), "apps", "bench", "first", "apps/google-authenticator", session.Verified), session.RememberCookieName)
	req := envoyCheck("/reports/2026?page=2", map[string]string{
		":authority": "app.example.com", "x-auth-request-groups": "staff",
		"cookie": "_ga=GA1.2.3; theme=dark; " + rem.Name + "=" + rem.Value,
	}, map[string]string{"mfa-policy": "apps/bench"})
	return f, req
}

// BenchmarkGRPCCheckRemembered is the Check of a remembered browser, the
// handler called in process as grpc-go calls it, from the trusted proxy
// (the transport is in BenchmarkGRPC).
func BenchmarkGRPCCheckRemembered(b *testing.B) {
	f, req := benchCheck(b)
	srv := &authzServer{auth: f.s.handler.(*router).auth}
	proxy, _ := net.ResolveTCPAddr("tcp", coreProxyAddr)
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: proxy})
	check := func() {
		resp, err := srv.Check(ctx, req)
		if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
			b.Fatalf("%v %v", resp, err)
		}
	}
	check()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		check()
	}
}

// emptyAuthz answers every Check OK with nothing else: the yardstick of
// the gRPC transport.
type emptyAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

func (emptyAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}, nil
}

// BenchmarkGRPC compares, over loopback gRPC (HTTP/2, one connection), an
// empty Check and the Check of a remembered browser: the ratio is what
// Envoy sees. Each server serves for the whole benchmark, since a
// sub-benchmark runs once per -count.
func BenchmarkGRPC(b *testing.B) {
	f, req := benchCheck(b, trustLoopback)
	empty := grpc.NewServer()
	authv3.RegisterAuthorizationServer(empty, emptyAuthz{})
	for _, tt := range []struct {
		name string
		srv  *grpc.Server
	}{
		{"empty", empty},
		{"check-remembered", f.s.grpc},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = tt.srv.Serve(ln) }()
		b.Cleanup(tt.srv.Stop)
		b.Run(tt.name, func(b *testing.B) {
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := authv3.NewAuthorizationClient(conn)
			check := func() {
				resp, err := client.Check(context.Background(), req)
				if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
					b.Fatalf("%v %v", resp, err)
				}
			}
			check()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				check()
			}
		})
	}
}
