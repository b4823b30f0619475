package webhook

import (
	"fmt"
	"net"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// maxCheckBytes bounds a CheckRequest: headers only (the challenge server
// reads no body), within the HTTP listener's header limit and some room.
const maxCheckBytes = 4 * maxHeaderBytes

// newGRPCServer is the gRPC server of the Envoy ext_authz dialect:
// envoy.service.auth.v3.Authorization and the standard health service,
// which reports SERVING (for "" and the Authorization service) once a
// bundle and a keyring are in force, as /readyz does.
func newGRPCServer(auth *authHandler, hs *health.Server) *grpc.Server {
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(maxCheckBytes),
		grpc.ConnectionTimeout(readHeaderTimeout),
		// Envoy keeps its connections to the authorization cluster open
		// and may ping them; idle ones are closed as the HTTP ones are.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
	)
	authv3.RegisterAuthorizationServer(srv, &authzServer{auth: auth})
	healthpb.RegisterHealthServer(srv, hs)
	return srv
}

// newHealth is the health service, NOT_SERVING until the configuration is
// ready.
func newHealth() *health.Server {
	hs := health.NewServer()
	setHealth(hs, false)
	return hs
}

func setHealth(hs *health.Server, ready bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
}

// listenGRPC opens the listener of GRPCAddr (nil when gRPC is off).
func (s *Server) listenGRPC() (net.Listener, error) {
	addr := s.opts.GRPCAddr
	if addr == "" || addr == "0" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (--grpc-addr): %w", addr, err)
	}
	return ln, nil
}

// stopGRPC stops the gRPC server gracefully within shutdownGrace, then
// closes what is left.
func stopGRPC(srv *grpc.Server) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		srv.Stop()
		<-done
	}
}
