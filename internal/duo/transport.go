package duo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// callTransport carries one call's context into the requests the library
// makes (it builds them without one), records the HTTP status, bounds the
// answer's size and turns answers that are not Duo's (3xx, 429, 5xx) into
// errors, which also keeps the library from sleeping and retrying on 429.
type callTransport struct {
	ctx    context.Context
	next   http.RoundTripper
	status int
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req.WithContext(t.ctx))
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300,
		resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
		// Duo answers refusals with 4xx and its JSON error shape.
		resp.Body = &limitedBody{rc: resp.Body}
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	return nil, &statusError{status: resp.StatusCode}
}

// statusError is an HTTP answer that is not a Duo answer: Duo is
// overloaded, rate limiting, or something else answered.
type statusError struct{ status int }

func (e *statusError) Error() string {
	switch {
	case e.status == http.StatusTooManyRequests:
		return "HTTP 429: Duo is rate limiting this application, retry later"
	case e.status >= 500:
		return fmt.Sprintf("HTTP %d: Duo is unavailable", e.status)
	}
	return fmt.Sprintf("unexpected HTTP %d", e.status)
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

// ResponseError is an answer from Duo that this client does not understand
// (an unknown result, a missing txid). Duo was reached, so it is not an
// UnreachableError: a fail-open provider must fail closed on it.
type ResponseError struct {
	Op     string
	Reason string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("duo %s: unexpected answer: %s", e.Op, e.Reason)
}

// envelope is the shape of every Duo Auth API answer.
type envelope struct {
	Stat          string          `json:"stat"`
	Code          json.RawMessage `json:"code"`
	Message       string          `json:"message"`
	MessageDetail json.RawMessage `json:"message_detail"`
	Response      json.RawMessage `json:"response"`
}

// decode reads Duo's answer: stat OK fills out with "response"; stat FAIL
// is an APIError; anything that is not Duo's JSON means something else
// answered, so Duo was not reached.
func (c *client) decode(op string, status int, body []byte, out any) error {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return &UnreachableError{Op: op, Host: c.host, HTTPStatus: status,
			Err: fmt.Errorf("HTTP %d answer is not Duo's JSON: %w", status, err)}
	}
	switch env.Stat {
	case "OK":
		if status >= 300 {
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
	return &UnreachableError{Op: op, Host: c.host, HTTPStatus: status,
		Err: errors.New("answer has no stat member: not Duo's JSON")}
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
