package duo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
)

// failure classifies the error of a call that got no usable answer (see
// errors.go). Only a failure known to be an outage becomes an
// UnreachableError; one this client cannot place fails closed as a
// ResponseError. A cancelled caller is neither: that is not Duo being
// unreachable, and must never let a fail-open provider through.
func (c *client) failure(ctx context.Context, op string, rt *callTransport, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("duo %s: %w", op, context.Canceled)
	}
	// *url.Error names the request's URL, whose query may hold a
	// transaction ID: keep it out of errors, which are logged.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var se *statusError
	var pe *proxyStatusError
	switch {
	case errors.As(err, &se):
		return c.statusFailure(op, se)
	case rt.status >= 400 && rt.status < 500:
		// A refusal whose body could not be read is still a refusal.
		return &APIError{Op: op, HTTPStatus: rt.status, RetryAfter: rt.retryAfter}
	case errors.As(err, &pe) && pe.status >= 500:
		return &UnreachableError{Op: op, Host: c.host, Err: err}
	case errors.As(err, &pe):
		// The operator's proxy refuses: a configuration to fix, not an outage.
		return &ResponseError{Op: op, Reason: err.Error(), Err: err}
	case errors.Is(err, errResponseTooLarge):
		return &ResponseError{Op: op, Reason: err.Error(), Err: err}
	case isTLSFailure(err):
		return &TLSError{Op: op, Host: c.host, Err: err}
	case isNetworkFailure(err):
		return &UnreachableError{Op: op, Host: c.host, HTTPStatus: rt.status, Err: err}
	}
	return &ResponseError{Op: op, Reason: err.Error(), Err: err}
}

// statusFailure classifies an answer the transport stopped: 429 is Duo's
// refusal, with its code and message when the body is Duo's JSON error;
// 5xx is Duo unavailable; a redirect or a 1xx is not an answer Duo gives.
func (c *client) statusFailure(op string, se *statusError) error {
	switch {
	case se.status == http.StatusTooManyRequests:
		a := &APIError{Op: op, HTTPStatus: se.status, RetryAfter: se.retryAfter}
		var env envelope
		if json.Unmarshal(se.body, &env) == nil && env.Stat == "FAIL" {
			a.Code, a.Message, a.MessageDetail = jsonInt(env.Code), env.Message, jsonText(env.MessageDetail)
		}
		return a
	case se.status >= 500:
		return &UnreachableError{Op: op, Host: c.host, HTTPStatus: se.status, Err: se}
	}
	return &ResponseError{Op: op, Reason: se.Error(), Err: se}
}

// isTLSFailure reports whether the peer failed to prove it is the API
// host: a certificate that does not verify, a TLS alert sent or received,
// or an answer that is not TLS. A handshake that times out or whose
// connection drops is an outage instead (isNetworkFailure).
func isTLSFailure(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		roots     x509.SystemRootsError
		record    tls.RecordHeaderError
		alert     tls.AlertError
		ech       *tls.ECHRejectionError
		op        *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknownCA), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &roots), errors.As(err, &record),
		errors.As(err, &alert), errors.As(err, &ech):
		return true
	case errors.As(err, &op):
		// crypto/tls reports alerts as these operations.
		return op.Op == "remote error" || op.Op == "local error"
	}
	return false
}

// networkErrors are the failures of a connection that mean the API host
// could not be reached or dropped the connection.
var networkErrors = []error{
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ENETDOWN, syscall.ETIMEDOUT,
	io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, context.DeadlineExceeded,
}

// isNetworkFailure reports whether err is an outage: the name did not
// resolve, the connection (to the API host or to the proxy) could not be
// made, was reset or closed, or a timeout passed.
func isNetworkFailure(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return true
	}
	for _, target := range networkErrors {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
