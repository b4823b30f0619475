package duo

import (
	"context"
	"errors"
	"fmt"
)

// APIError is a refusal from Duo: the response carried "stat": "FAIL".
// It means Duo was reached and answered, so it never counts as Duo being
// unreachable (a fail-open provider must not let a user through on it).
type APIError struct {
	// Op is the call that was refused: check, preauth, auth, auth_status.
	Op string
	// HTTPStatus is the status code of Duo's answer, e.g. 400 or 401.
	HTTPStatus int
	// Code is Duo's error code, e.g. 40103 (invalid signature).
	Code int
	// Message is Duo's message, e.g. "Invalid signature in request credentials".
	Message string
	// MessageDetail is Duo's detail, often the name of a refused parameter.
	MessageDetail string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("duo %s refused: %d %s", e.Op, e.Code, e.Message)
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
	case e.Code == 40105:
		return "check the system clock, Duo refuses requests whose Date is off by more than a few minutes"
	case e.Code/100 == 401:
		return "check the integration key, the secret key and the API host of the Duo Auth API application"
	case e.Code/100 == 403:
		return "check that the Duo application is an Auth API application allowed to use this call"
	}
	return ""
}

// Terminal reports whether retrying the same request cannot succeed:
// every 4xxxx code (bad credentials, bad parameters, forbidden) except
// 429xx (rate limited). Bad credentials (401xx) are a configuration error.
func (e *APIError) Terminal() bool {
	return e.Code >= 40000 && e.Code < 50000 && e.Code/100 != 429
}

// BadCredentials reports whether Duo refused the integration key, the
// secret key or the signature (401xx).
func (e *APIError) BadCredentials() bool { return e.Code/100 == 401 }

// UnreachableError means no answer came from Duo: DNS, connection,
// TLS (including certificate verification), a timeout, an HTTP 5xx or 429,
// or a response that is not Duo's JSON. Callers retry with backoff and apply
// the provider's fail mode.
type UnreachableError struct {
	// Op is the call that failed: check, preauth, auth, auth_status.
	Op string
	// Host is the API host that could not be reached.
	Host string
	// HTTPStatus is set when an HTTP answer came but not a usable one.
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
