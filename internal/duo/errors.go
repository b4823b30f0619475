package duo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// How a call to Duo can fail, and what a provider's fail mode may do about
// it:
//
//   - UnreachableError: no answer came from Duo. DNS failure, connection
//     refused, reset or closed, a timeout, an HTTP 5xx from Duo, or an
//     HTTP 5xx from the egress proxy when asked to connect to Duo. The
//     only failure a fail-open provider may let a user through on.
//   - APIError: Duo refused the request. An answer with "stat": "FAIL", or
//     any HTTP 4xx, including 429 (rate limiting) whatever its body.
//   - TLSError: something answered at the API host but could not prove it
//     is Duo (an untrusted or invalid certificate, a TLS alert, an answer
//     that is not TLS). It may be an interception, so it is never treated
//     as an outage.
//   - ResponseError: an exchange this client cannot use (an answer that is
//     not Duo's JSON, a redirect, an answer too large, a connection failure
//     that is not one of the above).
//   - InputError: a request the client refused to send.
//
// Everything but UnreachableError fails closed, whatever the fail mode.

// APIError is a refusal from Duo: an answer with "stat": "FAIL", or any
// HTTP 4xx from the API host (with Duo's JSON error or without it), 429
// included. Duo was reached and said no, so it never counts as Duo being
// unreachable: a fail-open provider must not let a user through on it.
type APIError struct {
	// Op is the call that was refused: check, preauth, auth, auth_status.
	Op string
	// HTTPStatus is the status code of Duo's answer, e.g. 400, 401 or 429.
	HTTPStatus int
	// Code is Duo's error code, e.g. 40103 (invalid signature); 0 when the
	// answer did not carry Duo's JSON error.
	Code int
	// Message is Duo's message, e.g. "Invalid signature in request credentials".
	Message string
	// MessageDetail is Duo's detail, often the name of a refused parameter.
	MessageDetail string
	// RetryAfter is the answer's Retry-After, 0 when it had none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var msg string
	if e.Code != 0 {
		msg = fmt.Sprintf("duo %s refused: %d %s", e.Op, e.Code, e.Message)
	} else {
		msg = fmt.Sprintf("duo %s refused: HTTP %d", e.Op, e.HTTPStatus)
	}
	if e.MessageDetail != "" {
		msg += " (" + e.MessageDetail + ")"
	}
	if hint := e.hint(); hint != "" {
		msg += ": " + hint
	}
	return msg
}

// hint says what to do about the refusals a configuration causes.
func (e *APIError) hint() string {
	switch {
	case e.RateLimited() && e.RetryAfter > 0:
		return fmt.Sprintf("Duo is rate limiting this application, retry after %s", e.RetryAfter)
	case e.RateLimited():
		return "Duo is rate limiting this application, retry later"
	case e.Code == 40105:
		return "check the system clock, Duo refuses requests whose Date is off by more than a few minutes"
	case e.Code/100 == 401:
		return "check the integration key, the secret key and the API host of the Duo Auth API application"
	case e.Code/100 == 403:
		return "check that the Duo application is an Auth API application allowed to use this call"
	}
	return ""
}

// RateLimited reports whether Duo refused because this application sent
// too many requests (HTTP 429, or a 429xx code).
func (e *APIError) RateLimited() bool {
	return e.HTTPStatus == http.StatusTooManyRequests || e.Code/100 == 429
}

// Terminal reports whether retrying the same request cannot succeed:
// every 4xxxx code (bad credentials, bad parameters, forbidden) except
// 429xx (rate limited). Bad credentials (401xx) are a configuration error.
// A refusal without Duo's error code is not terminal.
func (e *APIError) Terminal() bool {
	return e.Code >= 40000 && e.Code < 50000 && !e.RateLimited()
}

// BadCredentials reports whether Duo refused the integration key, the
// secret key or the signature (401xx).
func (e *APIError) BadCredentials() bool { return e.Code/100 == 401 }

// UnreachableError means no answer came from Duo: a DNS failure, a
// connection refused, reset or closed, a timeout, an HTTP 5xx from Duo or
// from the egress proxy asked to connect to it. Callers retry with backoff
// and apply the provider's fail mode.
type UnreachableError struct {
	// Op is the call that failed: check, preauth, auth, auth_status.
	Op string
	// Host is the API host that could not be reached.
	Host string
	// HTTPStatus is set when an HTTP answer came but not a usable one (5xx).
	HTTPStatus int
	// Err is the underlying error.
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("duo %s: %s unreachable: %v", e.Op, e.Host, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Terminal is always false: the same request may succeed later.
func (e *UnreachableError) Terminal() bool { return false }

// TLSError means the API host could not prove it is Duo: its certificate
// did not verify (unknown authority, expired, another name), the TLS
// handshake ended with an alert, or the answer was not TLS at all.
// Something answered at Duo's address, so this is not an outage: it may be
// an interception (a man in the middle), a TLS-inspecting proxy or a wrong
// caBundleRef. A fail-open provider must fail closed on it, or whoever can
// present a certificate could switch the second factor off.
type TLSError struct {
	// Op is the call that failed: check, preauth, auth, auth_status.
	Op string
	// Host is the API host whose identity was not established.
	Host string
	// Err is the TLS or certificate error.
	Err error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("duo %s: %s failed TLS verification, it may not be Duo: %v", e.Op, e.Host, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// Terminal is false: a certificate can be renewed or a CA bundle fixed
// without changing the request.
func (e *TLSError) Terminal() bool { return false }

// IsUnreachable reports whether err says that Duo could not be reached,
// the only case where a fail-open provider may let a user through.
// A cancelled caller context is not such a case.
func IsUnreachable(err error) bool {
	var u *UnreachableError
	return errors.As(err, &u)
}

// IsTerminal reports whether retrying cannot help: a terminal Duo refusal
// or an invalid input. Unreachable errors and a cancelled context are not
// terminal.
func IsTerminal(err error) bool {
	if err == nil || IsUnreachable(err) || errors.Is(err, context.Canceled) {
		return false
	}
	var a *APIError
	if errors.As(err, &a) {
		return a.Terminal()
	}
	var in *InputError
	return errors.As(err, &in)
}

// InputError is a request the client refuses to send: an empty username,
// an invalid IP address, a pushinfo too long for Duo.
type InputError struct {
	Op     string
	Field  string
	Reason string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("duo %s: %s %s", e.Op, e.Field, e.Reason)
}
