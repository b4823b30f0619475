package duo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// callTransport carries one call's context into the requests the library
// makes (it builds them without one), records the answer's status and
// Retry-After, bounds the answer's size and turns the answers that are not
// a plain 2xx or 4xx (429, 3xx, 5xx) into a statusError, which also keeps
// the library from sleeping and retrying on 429.
type callTransport struct {
	ctx        context.Context
	next       http.RoundTripper
	status     int
	retryAfter time.Duration
}

// maxStatusBody bounds what is kept of an answer turned into a statusError:
// Duo's JSON error is far smaller.
const maxStatusBody = 4096

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req.WithContext(t.ctx))
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	t.retryAfter = parseRetryAfter(resp.Header)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300,
		resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		// Duo answers refusals with 4xx and its JSON error shape.
		resp.Body = &limitedBody{rc: resp.Body}
		return resp, nil
	}
	se := &statusError{status: resp.StatusCode, retryAfter: t.retryAfter}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	if resp.StatusCode == http.StatusTooManyRequests {
		se.body = body // Duo's JSON error, read by statusFailure
	}
	_ = resp.Body.Close()
	return nil, se
}

// statusError is an HTTP answer the library must not act on: 429 (Duo
// rate limiting), 5xx (Duo unavailable), or an answer Duo does not give
// (1xx, 3xx).
type statusError struct {
	status     int
	retryAfter time.Duration
	body       []byte
}

func (e *statusError) Error() string {
	switch {
	case e.status == http.StatusTooManyRequests:
		return "HTTP 429: Duo is rate limiting this application, retry later"
	case e.status >= 500:
		return fmt.Sprintf("HTTP %d: Duo is unavailable", e.status)
	case e.status >= 300 && e.status < 400:
		return fmt.Sprintf("HTTP %d: Duo's API does not redirect", e.status)
	}
	return fmt.Sprintf("unexpected HTTP %d", e.status)
}

// proxyStatusError is the egress proxy's answer, other than 200, to the
// request to connect to Duo (HTTP CONNECT).
type proxyStatusError struct{ status int }

func (e *proxyStatusError) Error() string {
	if e.status >= 500 {
		return fmt.Sprintf("the proxy could not connect to Duo: HTTP %d", e.status)
	}
	return fmt.Sprintf("the proxy refused to connect to Duo: HTTP %d", e.status)
}

// onProxyConnectResponse types the proxy's refusals, which net/http
// reports as a bare status text, so that only a proxy's 5xx (it could not
// reach Duo) counts as Duo being unreachable.
func onProxyConnectResponse(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &proxyStatusError{status: resp.StatusCode}
}

// maxRetryAfter bounds the Retry-After believed from an answer.
const maxRetryAfter = time.Hour

// parseRetryAfter reads Retry-After, in seconds or as an HTTP date. A date
// is measured from the answer's own Date header, so neither this machine's
// clock nor its skew matters; without a Date header a date is ignored.
// The result is 0 when absent or unreadable, at most maxRetryAfter.
func parseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else {
		at, err1 := http.ParseTime(v)
		now, err2 := http.ParseTime(h.Get("Date"))
		if err1 != nil || err2 != nil || !at.After(now) {
			return 0
		}
		d = at.Sub(now)
	}
	return min(d, maxRetryAfter)
}

var errResponseTooLarge = fmt.Errorf("answer larger than %d bytes", maxResponseBytes)

// limitedBody fails, rather than truncates, an answer that is too large.
type limitedBody struct {
	rc   io.ReadCloser
	read int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if b.read > maxResponseBytes {
		return n, errResponseTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// ResponseError is an exchange with the API host that this client cannot
// use: an answer that is not Duo's JSON, an unknown result, a missing
// txid, a redirect, an answer too large, or a failure of the connection
// that is not a plain outage (see UnreachableError). Something answered,
// or the failure is not known to be an outage, so a fail-open provider
// must fail closed on it.
type ResponseError struct {
	Op     string
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("duo %s: unexpected answer: %s", e.Op, e.Reason)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// envelope is the shape of every Duo Auth API answer.
type envelope struct {
	Stat          string          `json:"stat"`
	Code          json.RawMessage `json:"code"`
	Message       string          `json:"message"`
	MessageDetail json.RawMessage `json:"message_detail"`
	Response      json.RawMessage `json:"response"`
}

// decode reads Duo's answer: any 4xx is an APIError (with Duo's code and
// message when the body is Duo's JSON error); stat OK fills out with
// "response"; stat FAIL is an APIError; anything else is a ResponseError.
// The API host's identity was verified before any of this was read, so
// none of it means Duo is unreachable.
func (c *client) decode(op string, status int, body []byte, out any) error {
	var env envelope
	jsonErr := json.Unmarshal(body, &env)
	if status >= 400 && status < 500 {
		a := &APIError{Op: op, HTTPStatus: status}
		if jsonErr == nil && env.Stat == "FAIL" {
			a.Code, a.Message, a.MessageDetail = jsonInt(env.Code), env.Message, jsonText(env.MessageDetail)
		}
		return a
	}
	if jsonErr != nil {
		return &ResponseError{Op: op, Reason: fmt.Sprintf("HTTP %d answer is not Duo's JSON: %v", status, jsonErr)}
	}
	switch env.Stat {
	case "OK":
		if status < 200 || status >= 300 {
			return &ResponseError{Op: op, Reason: fmt.Sprintf("stat OK with HTTP %d", status)}
		}
		if out == nil {
			return nil
		}
		if len(env.Response) == 0 || string(env.Response) == "null" {
			return &ResponseError{Op: op, Reason: "no response member"}
		}
		if err := json.Unmarshal(env.Response, out); err != nil {
			return &ResponseError{Op: op, Reason: err.Error()}
		}
		return nil
	case "FAIL":
		return &APIError{Op: op, HTTPStatus: status, Code: jsonInt(env.Code),
			Message: env.Message, MessageDetail: jsonText(env.MessageDetail)}
	}
	return &ResponseError{Op: op, Reason: fmt.Sprintf("HTTP %d answer has no stat member: not Duo's JSON", status)}
}

// jsonInt reads Duo's error code, a number (sometimes sent as a string).
func jsonInt(raw json.RawMessage) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	return 0
}

// jsonText reads message_detail, a string in Duo's answers.
func jsonText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
