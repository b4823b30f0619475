package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
)

// policyExtension is the context extension naming the policy of a Check
// (Envoy's per-route check_settings.context_extensions, Istio's and Envoy
// Gateway's equivalents): "namespace/name". Without it the policy is
// chosen by host, as on /auth.
const policyExtension = "mfa-policy"

// dialectCheck: gRPC Check, from CheckRequest.attributes.request.http.
var dialectCheck = &dialect{parse: parseRequestLine, redirect: true, envoyAddress: true}

// authzServer answers envoy.service.auth.v3.Authorization/Check with the
// decision of /auth:
//
//	OK                 allowed; the X-MFA-* headers go to the upstream
//	PERMISSION_DENIED  302 + location for a missing second factor (a
//	                   browser), 403 for a denial or a request that cannot
//	                   be judged
//	UNAUTHENTICATED    401 + www-authenticate and a problem document, for
//	                   an API client without a second factor
//
// Check never fails the call (a failed call is what Envoy's
// failure_mode_allow lets through) and never answers UNAVAILABLE.
type authzServer struct {
	authv3.UnimplementedAuthorizationServer
	auth *authHandler
	// peer is the text of the last TCP peer seen: Envoy keeps a few
	// long-lived connections to the authorization cluster, whose address
	// need not be written out for each Check.
	peer atomic.Pointer[peerMemo]
}

// peerMemo is a TCP peer's address and its text. The address is the
// connection's own (grpc-go gives each stream the same one), and is never
// modified: while held here it cannot be another connection's.
type peerMemo struct {
	addr *net.TCPAddr
	text string
}

// Check implements authv3.AuthorizationServer.
func (s *authzServer) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	start := time.Now()
	a := s.auth
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("check decision panicked; denied with 403", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			a.metrics.decisions.WithLabelValues("", "", resultError).Inc()
			resp, err = deniedCheck(codes.PermissionDenied, typev3.StatusCode_Forbidden, "forbidden: the policy could not be evaluated (see the challenge server's log)\n"), nil
		}
	}()
	sc := checkScratches.Get().(*checkScratch)
	defer sc.release()
	var d decision
	r, ns, name, why := s.checkHTTPRequest(ctx, req, sc)
	if why != "" {
		d = decision{result: decisionRefused, reason: why}
	} else {
		d = a.decide(ctx, r, ns, name, r.RequestURI, dialectCheck, &sc.authState, start)
	}
	if d.entry != nil && d.entry.audit {
		a.recordAudit(ctx, r, &d)
		resp = auditCheckResponse()
	} else {
		resp = checkResponse(&d, r)
	}
	if d.counters != nil {
		d.counters[d.result].Inc()
	} else {
		a.metrics.decisions.WithLabelValues("", "", d.result.String()).Inc()
	}
	a.metrics.duration.Observe(time.Since(start).Seconds())
	a.logDecision(ctx, d)
	return resp, nil
}

// checkScratch is a Check's per-request state: the decision's, and its
// view of the request with the header map and values it is built in.
// Recycled, like the decision state of the HTTP dialects: nothing of it
// outlives the Check (the decision keeps strings; nothing keeps the view).
// The view carries no context: the Check's own is passed beside it.
type checkScratch struct {
	authState
	req    http.Request
	header http.Header
	values []string
}

// checkScratches recycles checkScratch. The header map starts at Go's
// smallest (eight entries, cleared and filled without a table), grows
// with the Checks that need more, and is dropped, like a value list, when
// an unusually large request grew it, so that clearing stays cheap.
var checkScratches = sync.Pool{New: func() any {
	return &checkScratch{header: make(http.Header), values: make([]string, 0, maxPooledCheckHeaders)}
}}

const maxPooledCheckHeaders = 32

// release clears sc, so that the pool keeps nothing of the request, and
// returns it to the pool.
func (sc *checkScratch) release() {
	sc.authState, sc.req = authState{}, http.Request{}
	if len(sc.header) > maxPooledCheckHeaders || cap(sc.values) > 4*maxPooledCheckHeaders {
		sc.header, sc.values = make(http.Header), make([]string, 0, maxPooledCheckHeaders)
	} else {
		clear(sc.header)
		clear(sc.values[:cap(sc.values)])
		sc.values = sc.values[:0]
	}
	checkScratches.Put(sc)
}

// checkHTTPRequest is the request a Check asks about, in the form the
// decision reads (an http.Request, as the HTTP dialects get it): the
// original method, path and query, host and headers, the scheme in
// X-Forwarded-Proto, and the client Envoy saw (attributes.source) at the
// right of X-Forwarded-For, as one more hop. The peer is Envoy itself,
// which must be in --trusted-proxies. why says why it cannot be judged.
// The request is sc's, its headers built in sc's map and values; its
// context is none (ctx is read only for the peer).
func (s *authzServer) checkHTTPRequest(ctx context.Context, req *authv3.CheckRequest, sc *checkScratch) (r *http.Request, ns, name, why string) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return nil, "", "", "the CheckRequest has no attributes.request.http; configure the ext_authz filter of an HTTP listener"
	}
	if ext, ok := attrs.GetContextExtensions()[policyExtension]; ok {
		var found bool
		ns, name, found = strings.Cut(ext, "/")
		if !found || !policySegment(ns) || !policySegment(name) {
			return nil, "", "", "the context extension " + policyExtension + " must be namespace/name, not " + fmt.Sprintf("%q", ext)
		}
	}
	header, values := sc.header, sc.values
	// Each header's values are a slice of values, full to its capacity, so
	// that an append to one can never write into the next.
	for k, v := range h.GetHeaders() {
		if k == "" || k[0] == ':' {
			continue
		}
		values = append(values, v)
		header[canonicalCheckHeader(k)] = values[len(values)-1 : len(values) : len(values)]
	}
	if len(h.GetHeaders()) == 0 {
		// encode_raw_headers: the headers come as a list, values as bytes.
		for _, hv := range h.GetHeaderMap().GetHeaders() {
			v := hv.GetValue()
			if v == "" {
				v = string(hv.GetRawValue())
			}
			if k := hv.GetKey(); k != "" && k[0] != ':' {
				ck := canonicalCheckHeader(k)
				header[ck] = append(header[ck], v)
			}
		}
	}
	if s := h.GetScheme(); s != "" {
		values = append(values, s)
		header["X-Forwarded-Proto"] = values[len(values)-1 : len(values) : len(values)]
	}
	if text := attrs.GetSource().GetAddress().GetSocketAddress().GetAddress(); text != "" {
		if src, err := netip.ParseAddr(text); err == nil {
			// The address's own text when it is canonical, as most are.
			src = src.Unmap()
			from := len(values)
			values = append(values, header["X-Forwarded-For"]...)
			values = append(values, addrText(src, text))
			header["X-Forwarded-For"] = values[from:len(values):len(values)]
		}
	}
	sc.values = values
	sc.req = http.Request{
		Method:     h.GetMethod(),
		Host:       h.GetHost(),
		RequestURI: h.GetPath(),
		Header:     header,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		sc.req.RemoteAddr = s.peerText(p.Addr)
	}
	return &sc.req, ns, name, ""
}

// peerText is the text of the gRPC peer's address, as net/http would give
// it in RemoteAddr: the last TCP peer's remembered, else written out.
func (s *authzServer) peerText(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if m := s.peer.Load(); m != nil && m.addr == tcp {
		return m.text
	}
	ap := tcp.AddrPort()
	text := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	s.peer.Store(&peerMemo{addr: tcp, text: text})
	return text
}

// canonicalCheckHeader is the canonical name of a header of a
// CheckRequest, whose keys are lower-case there. The pseudo-headers
// (":authority", ":path"...) are not headers: their own fields are read.
func canonicalCheckHeader(k string) string {
	if ck, ok := canonicalCheckHeaders[k]; ok {
		return ck
	}
	return textproto.CanonicalMIMEHeaderKey(k)
}

// canonicalCheckHeaders are the canonical names of the headers Envoy
// usually sends, by their lower-case name: a table lookup instead of a new
// string for each header of each Check.
var canonicalCheckHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Content-Length",
		"Content-Type", "Cookie", "Origin", "Referer", "User-Agent", "X-Requested-With",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "X-Request-Id",
		"X-Envoy-External-Address", "X-Envoy-Internal", "X-Envoy-Expected-Rq-Timeout-Ms",
		"X-Auth-Request-Email", "X-Auth-Request-User", "X-Auth-Request-Groups", "X-Mfa-Assertion",
		"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest", "Upgrade-Insecure-Requests",
	} {
		m[strings.ToLower(k)] = k
	}
	return m
}()

// auditCheckResponse lets a request of a policy in Audit mode through, as
// if no policy applied: OK, and the X-MFA-* headers the client may have
// sent removed, since Envoy passes on what it is not told to replace.
func auditCheckResponse() *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			HeadersToRemove: []string{"x-mfa-user", "x-mfa-multifactor", "x-mfa-assertion"},
		}},
	}
}

// checkResponse is the CheckResponse of a decision; r is the request it
// judged (nil when none could be read).
func checkResponse(d *decision, r *http.Request) *authv3.CheckResponse {
	switch d.result {
	case decisionAllow:
		return allowedCheck(d)
	case decisionChallenge:
		switch {
		case r != nil && !browserNavigation(r.Header):
			challenge, body := apiClientAnswer(d)
			resp := deniedCheck(codes.Unauthenticated, typev3.StatusCode_Unauthorized, string(body))
			denied := resp.GetDeniedResponse()
			denied.Headers = append(denied.Headers,
				setHeader("www-authenticate", challenge),
				setHeader("content-type", "application/problem+json"))
			return resp
		case d.location != "":
			resp := deniedCheck(codes.PermissionDenied, typev3.StatusCode_Found, "")
			denied := resp.GetDeniedResponse()
			denied.Headers = []*corev3.HeaderValueOption{setHeader("location", d.location), setHeader("cache-control", "no-store")}
			return resp
		}
		return deniedCheck(codes.Unauthenticated, typev3.StatusCode_Unauthorized, "")
	case decisionError:
		return deniedCheck(codes.PermissionDenied, typev3.StatusCode_Forbidden, "forbidden: the policy could not be evaluated (see the challenge server's log)\n")
	case decisionRefused:
		return deniedCheck(codes.PermissionDenied, typev3.StatusCode_Forbidden, "forbidden: "+d.reason+"\n")
	}
	return deniedCheck(codes.PermissionDenied, typev3.StatusCode_Forbidden, "forbidden\n")
}

// allowedCheck is the OK CheckResponse of an allowed request: the X-MFA-*
// headers set, replacing what the client sent. With an assertion, it is
// its cache entry's answer, made once and shared by every Check that
// carries it: messages are only read once made (gRPC marshals them,
// concurrently, as protobuf allows). Without one, its messages are
// allocated at once.
func allowedCheck(d *decision) *authv3.CheckResponse {
	if d.signed != nil {
		return d.signed.checkResponse()
	}
	m := new(allowedCheckMessages)
	m.ok.Headers = []*corev3.HeaderValueOption{
		setHeader("x-mfa-user", d.user),
		setHeader("x-mfa-multifactor", visibleMultifactor(d.multifactor)),
	}
	// Whatever the client sent as an assertion must not reach the app.
	m.ok.HeadersToRemove = removeAssertion
	return m.response()
}

// allowedCheckMessages are the messages of allowedCheck's answer, in one
// allocation.
type allowedCheckMessages struct {
	resp   authv3.CheckResponse
	status status.Status
	oneof  authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
}

// response links m's messages into the OK answer.
func (m *allowedCheckMessages) response() *authv3.CheckResponse {
	m.oneof.OkResponse = &m.ok
	m.status.Code = int32(codes.OK)
	m.resp.Status, m.resp.HttpResponse = &m.status, &m.oneof
	return &m.resp
}

// checkResponse is the OK answer of a Check allowed with sa: X-MFA-User,
// X-MFA-Multifactor and X-MFA-Assertion set. Made at the first call (two
// concurrent first calls make the same, and one is kept); never modified.
func (sa *signedAssertion) checkResponse() *authv3.CheckResponse {
	if resp := sa.checkAnswer.Load(); resp != nil {
		return resp
	}
	m := new(allowedCheckMessages)
	m.ok.Headers = []*corev3.HeaderValueOption{
		setHeader("x-mfa-user", sa.answer[0]),
		setHeader("x-mfa-multifactor", sa.answer[1]),
		setHeader("x-mfa-assertion", sa.answer[2]),
	}
	if !sa.checkAnswer.CompareAndSwap(nil, m.response()) {
		return sa.checkAnswer.Load()
	}
	return &m.resp
}

// removeAssertion is OkHttpResponse.headers_to_remove without an
// assertion; shared, only ever read.
var removeAssertion = []string{"x-mfa-assertion"}

// deniedCheck is a denial with the HTTP status and body Envoy answers the
// client with.
func deniedCheck(code codes.Code, httpStatus typev3.StatusCode, body string) *authv3.CheckResponse {
	denied := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: httpStatus}, Body: body}
	if body != "" && httpStatus != typev3.StatusCode_Unauthorized {
		denied.Headers = []*corev3.HeaderValueOption{setHeader("content-type", "text/plain; charset=utf-8")}
	}
	return &authv3.CheckResponse{
		Status:       &status.Status{Code: int32(code)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
	}
}

// setHeader sets a header, replacing any of the same name (what the
// client sent included).
func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
