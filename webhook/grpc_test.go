package webhook

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mfa-operator/mfa-operator/internal/session"
)

// serveGRPC serves the fixture's gRPC server on a loopback socket until
// the test ends, and returns a client connection to it.
func serveGRPC(t *testing.T, f *coreFixture) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	go func() { _ = f.s.grpc.Serve(ln) }()
	t.Cleanup(f.s.grpc.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { conn.Close() })
	return conn
}

// trustLoopback makes the loopback address (the gRPC peer of the tests,
// where Envoy would be) a trusted proxy.
func trustLoopback(o *Options) {
	o.TrustedProxies = append(o.TrustedProxies, netip.MustParsePrefix("127.0.0.0/8"))
}

// envoyCheck is the CheckRequest Envoy's HTTP ext_authz filter sends for a
// browser's request to https://admin.example.com<path> (see Envoy's
// AttributeContext): the downstream peer in source, the request with its
// method, path (query included, not decoded), host, scheme, protocol and
// its headers, lower-case, pseudo-headers included; extensions are the
// route's context_extensions. A header given as "" is left out.
func envoyCheck(path string, headers, extensions map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority":           "admin.example.com",
		":method":              "GET",
		":path":                path,
		":scheme":              "https",
		"accept":               "text/html,application/xhtml+xml,*/*;q=0.8",
		"user-agent":           "Mozilla/5.0",
		"x-forwarded-proto":    "https",
		"x-request-id":         "4f0c3c5e-6d2a-4a8e-9d59-2f1c0c3f3e11",
		"x-auth-request-email": ana,
	}
	for k, v := range headers {
		if v == "" {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	method, host := h[":method"], h[":authority"]
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "198.51.100.20", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 53122}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.9.0.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8443}}}}},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: "16014985813716455217", Method: method, Headers: h, Path: path, Host: host,
				Scheme: "https", Protocol: "HTTP/1.1",
			},
		},
		ContextExtensions: extensions,
	}}
}

func headerOf(opts []*corev3.HeaderValueOption, key string) string {
	v, _ := lookupHeader(opts, key)
	return v
}

func lookupHeader(opts []*corev3.HeaderValueOption, key string) (string, bool) {
	for _, o := range opts {
		if o.GetHeader().GetKey() == key {
			return o.GetHeader().GetValue(), true
		}
	}
	return "", false
}

func TestGRPCCheck(t *testing.T) {
	f := newCoreServer(t, coreAdminPolicyYAML, trustLoopback)
	client := authv3.NewAuthorizationClient(serveGRPC(t, f))
	remembered := cookieNamed(f.issue(headerIdentity(ana), "apps", "admin", "billing", "apps/google-authenticator", session.Verified), session.RememberCookieName)
	byName := map[string]string{"mfa-policy": "apps/admin"}
	challenge := challengeOf + url.QueryEscape("https://admin.example.com/billing?id=1")

	tests := []struct {
		name       string
		path       string
		headers    map[string]string
		extensions map[string]string
		source     string
		noHTTP     bool
		wantCode   codes.Code
		wantHTTP   int32 // the denied response's status
		check      func(g Gomega, r *authv3.CheckResponse)
	}{
		{name: "allowed by a rule: OK with the user for the upstream, a client's assertion removed", path: "/public/logo.png", extensions: byName,
			headers: map[string]string{"x-mfa-assertion": "forged"}, wantCode: codes.OK,
			check: func(g Gomega, r *authv3.CheckResponse) {
				ok := r.GetOkResponse()
				g.Expect(headerOf(ok.GetHeaders(), "x-mfa-user")).To(Equal(ana))
				g.Expect(ok.GetHeaders()[0].GetAppendAction()).To(Equal(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
				if _, signed := lookupHeader(ok.GetHeaders(), "x-mfa-assertion"); !signed {
					g.Expect(ok.GetHeadersToRemove()).To(ContainElement("x-mfa-assertion"))
				}
			}},
		{name: "a remembered browser (cookie header): OK with the factor and the assertion", path: "/billing?id=1", extensions: byName,
			headers: map[string]string{"cookie": "theme=dark; " + remembered.Name + "=" + remembered.Value}, wantCode: codes.OK,
			check: func(g Gomega, r *authv3.CheckResponse) {
				ok := r.GetOkResponse()
				g.Expect(headerOf(ok.GetHeaders(), "x-mfa-multifactor")).To(Equal("google-authenticator"))
				g.Expect(headerOf(ok.GetHeaders(), "x-mfa-assertion")).NotTo(BeEmpty())
			}},
		{name: "a second factor is missing: denied with a 302 and location", path: "/billing?id=1", extensions: byName,
			wantCode: codes.PermissionDenied, wantHTTP: 302,
			check: func(g Gomega, r *authv3.CheckResponse) {
				g.Expect(headerOf(r.GetDeniedResponse().GetHeaders(), "location")).To(Equal(challenge))
			}},
		{name: "an API client: 401 with www-authenticate and a problem document", path: "/billing?id=1", extensions: byName,
			headers: map[string]string{"accept": "application/json"}, wantCode: codes.Unauthenticated, wantHTTP: 401,
			check: func(g Gomega, r *authv3.CheckResponse) {
				d := r.GetDeniedResponse()
				g.Expect(headerOf(d.GetHeaders(), "www-authenticate")).To(Equal(`MFA realm="apps/admin", uri="` + challenge + `"`))
				g.Expect(headerOf(d.GetHeaders(), "content-type")).To(Equal("application/problem+json"))
				var p problem
				g.Expect(json.Unmarshal([]byte(d.GetBody()), &p)).To(Succeed())
				g.Expect(p.ChallengeURL).To(Equal(challenge))
				g.Expect(p.Status).To(Equal(401))
			}},
		{name: "denied by a rule: 403", path: "/billing", extensions: byName,
			headers: map[string]string{"x-auth-request-groups": "blocked"}, wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "the policy chosen by host without an extension", path: "/public/", wantCode: codes.OK},
		{name: "a host no policy lists, by host: 403", path: "/public/", headers: map[string]string{":authority": "other.example.com"},
			wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "a host the named policy does not list: 403", path: "/public/", extensions: byName, headers: map[string]string{":authority": "evil.example"},
			wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "a host with a port and a trailing dot is judged by its name", path: "/public/", extensions: byName,
			headers: map[string]string{":authority": "admin.example.com.:443"}, wantCode: codes.OK},
		{name: "an extension that is not namespace/name: 403", path: "/public/", extensions: map[string]string{"mfa-policy": "admin"},
			wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "an unknown policy: 403", path: "/public/", extensions: map[string]string{"mfa-policy": "apps/nope"},
			wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "an encoded slash: 403", path: "/public%2F..%2Fbilling", extensions: byName, wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "a dot segment: 403", path: "/public/../billing", extensions: byName, wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "no HTTP attributes: 403", noHTTP: true, wantCode: codes.PermissionDenied, wantHTTP: 403},

		// The client address: the source Envoy saw is the last hop.
		{name: "the source address is the client", path: "/billing", extensions: byName, source: "10.1.2.3", wantCode: codes.OK},
		{name: "x-forwarded-for written by the client is not believed over the source", path: "/billing", extensions: byName,
			headers: map[string]string{"x-forwarded-for": "10.1.2.3"}, wantCode: codes.PermissionDenied, wantHTTP: 302},
		{name: "through a trusted load balancer, x-forwarded-for names the client", path: "/billing", extensions: byName, source: "10.9.0.7",
			headers: map[string]string{"x-forwarded-for": "10.1.2.3"}, wantCode: codes.OK},
		{name: "x-envoy-external-address names the client when nothing else does", path: "/billing", extensions: byName, source: "-",
			headers: map[string]string{"x-envoy-external-address": "10.1.2.3"}, wantCode: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			req := envoyCheck(tt.path, tt.headers, tt.extensions)
			switch {
			case tt.noHTTP:
				req.Attributes.Request = nil
			case tt.source == "-":
				req.Attributes.Source = nil
			case tt.source != "":
				req.Attributes.Source.Address.GetSocketAddress().Address = tt.source
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, req)
			g.Expect(err).NotTo(HaveOccurred(), "a decision is never a failed call")
			g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(tt.wantCode), "%v\n%s", resp, f.logs.String())
			if tt.wantCode == codes.OK {
				g.Expect(resp.GetOkResponse()).NotTo(BeNil())
				g.Expect(headerOf(resp.GetOkResponse().GetHeaders(), "x-mfa-user")).To(Equal(ana))
			} else {
				g.Expect(resp.GetDeniedResponse()).NotTo(BeNil())
				g.Expect(int32(resp.GetDeniedResponse().GetStatus().GetCode())).To(Equal(tt.wantHTTP))
				_, hasUser := lookupHeader(resp.GetDeniedResponse().GetHeaders(), "x-mfa-user")
				g.Expect(hasUser).To(BeFalse())
			}
			if tt.check != nil {
				tt.check(g, resp)
			}
		})
	}
}

// Envoy's encode_raw_headers: the headers come in header_map, values as
// bytes, and are read the same way.
func TestGRPCCheckRawHeaders(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML, trustLoopback)
	client := authv3.NewAuthorizationClient(serveGRPC(t, f))
	req := envoyCheck("/public/", nil, map[string]string{"mfa-policy": "apps/admin"})
	h := req.Attributes.Request.Http
	for k, v := range h.Headers {
		h.HeaderMap = &corev3.HeaderMap{Headers: append(h.GetHeaderMap().GetHeaders(), &corev3.HeaderValue{Key: k, RawValue: []byte(v)})}
	}
	h.Headers = nil
	resp, err := client.Check(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(codes.OK))
	g.Expect(headerOf(resp.GetOkResponse().GetHeaders(), "x-mfa-user")).To(Equal(ana))
}

// A gRPC peer outside --trusted-proxies is denied: nothing it says about
// the request is believed.
func TestGRPCCheckRefusesUntrustedPeers(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	client := authv3.NewAuthorizationClient(serveGRPC(t, f))
	req := envoyCheck("/public/", map[string]string{"x-forwarded-for": "10.1.2.3"}, map[string]string{"mfa-policy": "apps/admin"})
	req.Attributes.Source.Address.GetSocketAddress().Address = "10.1.2.3"
	resp, err := client.Check(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(codes.PermissionDenied))
	g.Expect(resp.GetDeniedResponse().GetStatus().GetCode()).To(BeEquivalentTo(403))
	g.Expect(resp.GetDeniedResponse().GetBody()).To(ContainSubstring("--trusted-proxies"))
}

// The server started as Run starts it serves Check and the health service
// on its gRPC listener: NOT_SERVING until the configuration is loaded, then
// SERVING, and both stop with the server.
func TestGRPCServedWithHealth(t *testing.T) {
	g := NewWithT(t)
	f, cfg := newStandalone(t)
	f.s.opts.TrustedProxies = append(f.s.opts.TrustedProxies, netip.MustParsePrefix("127.0.0.0/8"))
	f.s.pages.proxies.trusted = f.s.opts.TrustedProxies
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	f.s.opts.GRPCAddr = "127.0.0.1:0"
	grpcLn, err := f.s.listenGRPC()
	g.Expect(err).NotTo(HaveOccurred())
	conn, err := grpc.NewClient(grpcLn.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	g.Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return -1
		}
		return r.GetStatus()
	}

	before, err := f.s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(before.GetStatus()).To(Equal(healthpb.HealthCheckResponse_NOT_SERVING), "nothing loaded yet")

	writeFile(t, filepath.Join(cfg, "app.yaml"), standalonePolicy("Allow"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.s.serveAll(ctx, ln, nil, grpcLn) }()
	g.Eventually(func() healthpb.HealthCheckResponse_ServingStatus { return status("") }, 10*time.Second, 20*time.Millisecond).
		Should(Equal(healthpb.HealthCheckResponse_SERVING))
	g.Expect(status("envoy.service.auth.v3.Authorization")).To(Equal(healthpb.HealthCheckResponse_SERVING))

	req := envoyCheck("/", map[string]string{":authority": "app.example.com", "x-auth-request-email": ana}, nil)
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(codes.OK), f.logs.String())

	cancel()
	g.Eventually(done, 15*time.Second).Should(Receive(BeNil()))
	_, err = net.DialTimeout("tcp", grpcLn.Addr().String(), time.Second)
	g.Expect(err).To(HaveOccurred(), "the gRPC listener stops with the server")
}

// Each Check is judged by its own connection's peer: Checks from a trusted
// proxy and from an untrusted peer, in turn on one server, each get their
// own answer (the server remembers the last peer's address as text).
func TestGRPCCheckJudgesEachCheckByItsOwnPeer(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	srv := &authzServer{auth: f.s.handler.(*router).auth}
	proxy, err := net.ResolveTCPAddr("tcp", coreProxyAddr)
	g.Expect(err).NotTo(HaveOccurred())
	stranger := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 41000}
	req := envoyCheck("/public/", nil, map[string]string{"mfa-policy": "apps/admin"})
	for i, from := range []*net.TCPAddr{proxy, stranger, proxy, stranger} {
		resp, err := srv.Check(peer.NewContext(context.Background(), &peer.Peer{Addr: from}), req)
		g.Expect(err).NotTo(HaveOccurred())
		if from == proxy {
			g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(codes.OK), "check %d, from %s", i, from)
			continue
		}
		g.Expect(codes.Code(resp.GetStatus().GetCode())).To(Equal(codes.PermissionDenied), "check %d, from %s", i, from)
		g.Expect(resp.GetDeniedResponse().GetBody()).To(ContainSubstring("--trusted-proxies"))
	}
}
