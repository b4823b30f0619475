package duo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestDecodeClassifiesAnswers(t *testing.T) {
	c := &client{host: "api-abcd1234.duosecurity.com"}
	type kind int
	const (
		ok kind = iota
		apiError
		responseError
	)
	tests := []struct {
		name     string
		status   int
		body     string
		want     kind
		wantCode int
	}{
		{"stat OK", 200, `{"stat":"OK","response":{"txid":"t"}}`, ok, 0},
		{"stat FAIL", 401, `{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}`, apiError, 40103},
		{"stat FAIL with code as a string", 400, `{"stat":"FAIL","code":"40002","message":"Invalid request parameters"}`, apiError, 40002},
		{"stat FAIL with HTTP 200", 200, `{"stat":"FAIL","code":40002,"message":"Invalid request parameters"}`, apiError, 40002},
		{"HTML 403 from a firewall in front of Duo", 403, `<html>Forbidden</html>`, apiError, 0},
		{"empty 401", 401, ``, apiError, 0},
		{"stat OK with HTTP 400", 400, `{"stat":"OK","response":{"txid":"t"}}`, apiError, 0},
		{"JSON without stat", 200, `{"hello":"world"}`, responseError, 0},
		{"empty body", 200, ``, responseError, 0},
		{"HTML 200", 200, `<html>Welcome</html>`, responseError, 0},
		{"stat OK without response", 200, `{"stat":"OK"}`, responseError, 0},
		{"stat OK with a response of the wrong shape", 200, `{"stat":"OK","response":{"txid":42}}`, responseError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var out struct {
				Txid string `json:"txid"`
			}
			err := c.decode("auth", tt.status, []byte(tt.body), &out)
			g.Expect(IsUnreachable(err)).To(BeFalse(), "an answer from the verified API host is never an outage")
			var a *APIError
			var r *ResponseError
			switch tt.want {
			case ok:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(out.Txid).To(Equal("t"))
			case apiError:
				g.Expect(errors.As(err, &a)).To(BeTrue(), "%v", err)
				g.Expect(a.HTTPStatus).To(Equal(tt.status))
				g.Expect(a.Code).To(Equal(tt.wantCode))
			case responseError:
				g.Expect(errors.As(err, &r)).To(BeTrue(), "%v", err)
				g.Expect(IsTerminal(err)).To(BeFalse())
			}
		})
	}
}

// TestFailureClassifiesErrors: only an outage is UnreachableError; Duo's
// 429, a peer that is not Duo, a redirect, a proxy's refusal and any error
// this client cannot place fail closed.
func TestFailureClassifiesErrors(t *testing.T) {
	c := &client{host: "api-abcd1234.duosecurity.com"}
	type kind int
	const (
		unreachable kind = iota
		apiError
		tlsError
		responseError
	)
	urlErr := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://api-abcd1234.duosecurity.com/auth/v2/auth_status?txid=secret-txid", Err: err}
	}
	tests := []struct {
		name   string
		status int // recorded by the transport before err
		err    error
		want   kind
	}{
		{"DNS", 0, urlErr(&net.DNSError{Err: "no such host", Name: "api-abcd1234.duosecurity.com", IsNotFound: true}), unreachable},
		{"connection refused", 0, urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), unreachable},
		{"connection reset", 0, urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), unreachable},
		{"connection closed mid-answer", 200, urlErr(io.ErrUnexpectedEOF), unreachable},
		{"deadline", 0, urlErr(context.DeadlineExceeded), unreachable},
		{"HTTP 503", 503, urlErr(&statusError{status: 503}), unreachable},
		{"proxy 502", 0, urlErr(&proxyStatusError{status: 502}), unreachable},
		{"HTTP 429 with Duo's JSON", 429, urlErr(&statusError{status: 429, retryAfter: 7 * time.Second,
			body: []byte(`{"stat":"FAIL","code":42901,"message":"Too Many Requests"}`)}), apiError},
		{"HTTP 429 from a front without JSON", 429, urlErr(&statusError{status: 429, body: []byte(`<html>slow down</html>`)}), apiError},
		{"a 4xx whose body could not be read", 403, urlErr(io.ErrUnexpectedEOF), apiError},
		{"unknown certificate authority", 0, urlErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), tlsError},
		{"certificate for another name", 0, urlErr(x509.HostnameError{Host: "api-abcd1234.duosecurity.com"}), tlsError},
		{"TLS alert from the peer", 0, urlErr(&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}), tlsError},
		{"not TLS", 0, urlErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), tlsError},
		{"redirect", 302, urlErr(&statusError{status: 302}), responseError},
		{"proxy refuses", 0, urlErr(&proxyStatusError{status: 403}), responseError},
		{"answer too large", 200, urlErr(errResponseTooLarge), responseError},
		{"an error this client cannot place", 0, urlErr(errors.New("http2: server sent GOAWAY and closed the connection")), responseError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := c.failure(context.Background(), "auth_status", &callTransport{status: tt.status}, tt.err)
			g.Expect(IsUnreachable(err)).To(Equal(tt.want == unreachable), "%v", err)
			g.Expect(err.Error()).NotTo(ContainSubstring("secret-txid"))
			var a *APIError
			var tl *TLSError
			var r *ResponseError
			switch tt.want {
			case apiError:
				g.Expect(errors.As(err, &a)).To(BeTrue(), "%v", err)
				g.Expect(a.HTTPStatus).To(Equal(tt.status))
			case tlsError:
				g.Expect(errors.As(err, &tl)).To(BeTrue(), "%v", err)
			case responseError:
				g.Expect(errors.As(err, &r)).To(BeTrue(), "%v", err)
			}
		})
	}
	t.Run("429 keeps Duo's code and Retry-After", func(t *testing.T) {
		g := NewWithT(t)
		err := c.failure(context.Background(), "preauth", &callTransport{status: 429},
			&statusError{status: 429, retryAfter: 7 * time.Second, body: []byte(`{"stat":"FAIL","code":42901,"message":"Too Many Requests"}`)})
		g.Expect(err).To(Equal(&APIError{Op: "preauth", HTTPStatus: 429, Code: 42901, Message: "Too Many Requests", RetryAfter: 7 * time.Second}))
	})
	t.Run("a cancelled caller is not an outage", func(t *testing.T) {
		g := NewWithT(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.failure(ctx, "preauth", &callTransport{}, urlErr(context.Canceled))
		g.Expect(errors.Is(err, context.Canceled)).To(BeTrue())
		g.Expect(IsUnreachable(err)).To(BeFalse())
	})
}

func TestParseRetryAfter(t *testing.T) {
	date := "Fri, 27 Nov 2026 09:30:00 GMT"
	tests := []struct {
		name       string
		retryAfter string
		date       string
		want       time.Duration
	}{
		{"absent", "", date, 0},
		{"seconds", "42", "", 42 * time.Second},
		{"zero", "0", "", 0},
		{"negative", "-5", "", 0},
		{"capped", "86400", "", maxRetryAfter},
		{"a date, from the answer's Date", "Fri, 27 Nov 2026 09:31:30 GMT", date, 90 * time.Second},
		{"a date in the past", "Fri, 27 Nov 2026 09:29:00 GMT", date, 0},
		{"a date without the answer's Date", "Fri, 27 Nov 2026 09:31:30 GMT", "", 0},
		{"a date far ahead", "Sat, 28 Nov 2026 09:30:00 GMT", date, maxRetryAfter},
		{"garbage", "soon", date, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			if tt.date != "" {
				h.Set("Date", tt.date)
			}
			NewWithT(t).Expect(parseRetryAfter(h)).To(Equal(tt.want))
		})
	}
}

func TestAPIErrorTerminal(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{40001, true},
		{40002, true},
		{40101, true},
		{40102, true},
		{40103, true},
		{40105, true},
		{40301, true},
		{42901, false},
		{50000, false},
		{0, false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			g := NewWithT(t)
			err := &APIError{Op: "check", HTTPStatus: 400, Code: tt.code}
			g.Expect(err.Terminal()).To(Equal(tt.want))
			g.Expect(IsTerminal(err)).To(Equal(tt.want))
			g.Expect(IsUnreachable(err)).To(BeFalse())
		})
	}
}

func TestAPIErrorRateLimited(t *testing.T) {
	tests := []struct {
		name string
		err  APIError
		want bool
	}{
		{"HTTP 429 with Duo's code", APIError{HTTPStatus: 429, Code: 42901}, true},
		{"HTTP 429 without a code", APIError{HTTPStatus: 429}, true},
		{"a 429xx code", APIError{HTTPStatus: 400, Code: 42901}, true},
		{"HTTP 400", APIError{HTTPStatus: 400, Code: 40002}, false},
		{"HTTP 403 without a code", APIError{HTTPStatus: 403}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.err.RateLimited()).To(Equal(tt.want))
			if tt.want {
				g.Expect(tt.err.Terminal()).To(BeFalse(), "a rate limit passes")
			}
		})
	}
}

func TestLimitedBodyFailsOnATooLargeAnswer(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{"at the limit", maxResponseBytes, false},
		{"one byte over", maxResponseBytes + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			body := &limitedBody{rc: io.NopCloser(strings.NewReader(strings.Repeat("x", tt.size)))}
			data, err := io.ReadAll(body)
			if tt.wantErr {
				g.Expect(err).To(MatchError(errResponseTooLarge))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(data).To(HaveLen(tt.size))
			}
		})
	}
}

func TestEncodePushInfo(t *testing.T) {
	g := NewWithT(t)
	got := encodePushInfo(map[string][]string{"from": {"login portal"}, "domain": {"example.com"}, "plus": {"a+b"}})
	g.Expect(got).To(Equal("domain=example.com&from=login%20portal&plus=a%2Bb"))
}
