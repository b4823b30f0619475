package duo

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestDecodeClassifiesAnswers(t *testing.T) {
	c := &client{host: "api-abcd1234.duosecurity.com"}
	type kind int
	const (
		ok kind = iota
		apiError
		unreachable
		responseError
	)
	tests := []struct {
		name   string
		status int
		body   string
		want   kind
	}{
		{"stat OK", 200, `{"stat":"OK","response":{"txid":"t"}}`, ok},
		{"stat FAIL", 401, `{"stat":"FAIL","code":40103,"message":"Invalid signature in request credentials"}`, apiError},
		{"stat FAIL with code as a string", 400, `{"stat":"FAIL","code":"40002","message":"Invalid request parameters"}`, apiError},
		{"HTML from a proxy", 403, `<html>Forbidden</html>`, unreachable},
		{"JSON without stat", 200, `{"hello":"world"}`, unreachable},
		{"empty body", 200, ``, unreachable},
		{"stat OK without response", 200, `{"stat":"OK"}`, responseError},
		{"stat OK with a response of the wrong shape", 200, `{"stat":"OK","response":{"txid":42}}`, responseError},
		{"stat OK with HTTP 400", 400, `{"stat":"OK","response":{"txid":"t"}}`, responseError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var out struct {
				Txid string `json:"txid"`
			}
			err := c.decode("auth", tt.status, []byte(tt.body), &out)
			var a *APIError
			var u *UnreachableError
			var r *ResponseError
			switch tt.want {
			case ok:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(out.Txid).To(Equal("t"))
			case apiError:
				g.Expect(errors.As(err, &a)).To(BeTrue(), "%v", err)
				g.Expect(a.HTTPStatus).To(Equal(tt.status))
				g.Expect(a.Code).To(BeNumerically(">", 40000))
			case unreachable:
				g.Expect(errors.As(err, &u)).To(BeTrue(), "%v", err)
				g.Expect(u.HTTPStatus).To(Equal(tt.status))
			case responseError:
				g.Expect(errors.As(err, &r)).To(BeTrue(), "%v", err)
				g.Expect(IsUnreachable(err)).To(BeFalse())
				g.Expect(IsTerminal(err)).To(BeFalse())
			}
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
			err := &APIError{Op: "check", Code: tt.code}
			g.Expect(err.Terminal()).To(Equal(tt.want))
			g.Expect(IsTerminal(err)).To(Equal(tt.want))
			g.Expect(IsUnreachable(err)).To(BeFalse())
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
