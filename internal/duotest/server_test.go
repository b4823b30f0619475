package duotest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Duo's documented example request and its signature (Duo Auth API docs,
// "Authentication").
func TestAuthorizationMatchesDuosDocumentedExample(t *testing.T) {
	g := NewWithT(t)
	got := Authorization("DIWJ8X6AEYOR5OMC6TQ1", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
		"Tue, 21 Aug 2012 17:29:18 -0000", "POST", "api-XXXXXXXX.duosecurity.com", "/accounts/v1/account/list",
		url.Values{"realname": {"First Last"}, "username": {"root"}})
	g.Expect(got).To(Equal("Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MWJmZmI4OTI0MzQ4ZjdkYjdkYTllN2Q3ZDc0OWRlZDkzYWFmZDAyZDhlOTA0OTYwZGE3Yjk2YzU3NTEwMjIwMTg1YTY0YTI4MjdlZThmMjRhYzVkMzA4MDJhOWVlOTdlNTlkZTQ0YjMwNGIxODI0MmYwZDU5NmQxNWE4MTIyYWY="))
}

func TestCanonicalRequest(t *testing.T) {
	g := NewWithT(t)
	got := canonicalRequest("Tue, 21 Aug 2012 17:29:18 -0000", "post", "API-xxx.duosecurity.COM", "/auth/v2/ping",
		url.Values{"username": {"H ell?o"}, "password": {"H-._~i", "A(!'*)"}})
	g.Expect(strings.Split(got, "\n")).To(Equal([]string{
		"Tue, 21 Aug 2012 17:29:18 -0000",
		"POST",
		"api-xxx.duosecurity.com",
		"/auth/v2/ping",
		"password=A%28%21%27%2A%29&password=H-._~i&username=H%20ell%3Fo",
	}))
}

func TestCanonicalParams(t *testing.T) {
	tests := []struct {
		name   string
		params url.Values
		want   string
	}{
		{"none", url.Values{}, ""},
		{"space as %20", url.Values{"realname": {"First Last"}, "username": {"root"}}, "realname=First%20Last&username=root"},
		{"keys sorted with a common prefix", url.Values{"foo_bar": {"2"}, "foo": {"1"}}, "foo=1&foo_bar=2"},
		{"printable ASCII", url.Values{
			"digits":      {"0123456789"},
			"punctuation": {"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
			"whitespace":  {"\t\n\x0b\x0c\r "},
		}, "digits=0123456789&punctuation=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~&whitespace=%09%0A%0B%0C%0D%20"},
		{"UTF-8 keys and values", url.Values{"é": {"☃"}}, "%C3%A9=%E2%98%83"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(canonicalParams(tt.params)).To(Equal(tt.want))
		})
	}
}

// httpClient trusts the server's CA and nothing else.
func httpClient(s *Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(s.CAPEM()))
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

type answer struct {
	status int
	Stat   string          `json:"stat"`
	Code   int             `json:"code"`
	Msg    string          `json:"message"`
	Detail string          `json:"message_detail"`
	Resp   json.RawMessage `json:"response"`
}

// send signs (unless sign is nil) and sends a request as Duo's clients do.
func send(t *testing.T, s *Server, method, path string, params url.Values, sign func(r *http.Request)) answer {
	t.Helper()
	u := "https://" + s.APIHost() + path
	var body *strings.Reader
	if method == http.MethodGet {
		u += "?" + params.Encode()
		body = strings.NewReader("")
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if sign != nil {
		sign(req)
	}
	resp, err := httpClient(s).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v", method, path, err)
	}
	a.status = resp.StatusCode
	return a
}

// signWith signs with the given keys and date, over the given params.
func signWith(ikey, skey, date string, params url.Values) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Date", date)
		r.Header.Set("Authorization", Authorization(ikey, skey, date, r.Method, r.URL.Host, r.URL.Path, params))
	}
}

func TestServerVerifiesEverySignedRequest(t *testing.T) {
	now := time.Now()
	s := NewServer(t, WithClock(func() time.Time { return now }))
	date := now.UTC().Format(time.RFC1123Z)
	params := url.Values{"username": {UserApprove}}
	tests := []struct {
		name       string
		sign       func(*http.Request)
		wantStatus int
		wantCode   int
		wantMsg    string
	}{
		{"valid", signWith(s.IKey(), s.SKey(), date, params), 200, 0, ""},
		{"no Authorization", nil, 401, 40101, "Missing request credentials"},
		{"not Basic", func(r *http.Request) {
			r.Header.Set("Date", date)
			r.Header.Set("Authorization", "Bearer "+s.SKey())
		}, 401, 40101, "Missing request credentials"},
		{"no Date", func(r *http.Request) {
			signWith(s.IKey(), s.SKey(), date, params)(r)
			r.Header.Del("Date")
		}, 401, 40101, "Missing request credentials"},
		{"unknown integration key", signWith("DIXXXXXXXXXXXXXXXXXX", s.SKey(), date, params), 401, 40102, "Invalid integration key in request credentials"},
		{"wrong secret key", signWith(s.IKey(), s.SKey()+"x", date, params), 401, 40103, "Invalid signature in request credentials"},
		{"params changed after signing", signWith(s.IKey(), s.SKey(), date, url.Values{"username": {UserDeny}}), 401, 40103, "Invalid signature in request credentials"},
		{"Date changed after signing", func(r *http.Request) {
			signWith(s.IKey(), s.SKey(), date, params)(r)
			r.Header.Set("Date", now.Add(time.Second).UTC().Format(time.RFC1123Z))
		}, 401, 40103, "Invalid signature in request credentials"},
		{"Date too old", signWith(s.IKey(), s.SKey(), now.Add(-DefaultMaxClockSkew-time.Minute).UTC().Format(time.RFC1123Z), params), 401, 40105, "Bad request timestamp"},
		{"Date in the future", signWith(s.IKey(), s.SKey(), now.Add(DefaultMaxClockSkew+time.Minute).UTC().Format(time.RFC1123Z), params), 401, 40105, "Bad request timestamp"},
		{"Date not RFC 2822", signWith(s.IKey(), s.SKey(), now.UTC().Format(time.RFC3339), params), 401, 40105, "Bad request timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			a := send(t, s, http.MethodPost, "/auth/v2/preauth", params, tt.sign)
			g.Expect(a.status).To(Equal(tt.wantStatus))
			g.Expect(a.Code).To(Equal(tt.wantCode))
			g.Expect(a.Msg).To(Equal(tt.wantMsg))
			if tt.wantCode == 0 {
				g.Expect(a.Stat).To(Equal("OK"))
			} else {
				g.Expect(a.Stat).To(Equal("FAIL"))
			}
			reqs := s.Requests()
			last := reqs[len(reqs)-1]
			g.Expect(last.HTTPStatus).To(Equal(tt.wantStatus))
			g.Expect(last.Code).To(Equal(tt.wantCode))
			g.Expect(last.Params).To(Equal(params))
		})
	}
}

func TestServerSignatureCoversGETQuery(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	date := time.Now().UTC().Format(time.RFC1123Z)
	a := send(t, s, http.MethodGet, "/auth/v2/auth_status", url.Values{"txid": {"x"}},
		signWith(s.IKey(), s.SKey(), date, url.Values{"txid": {"y"}}))
	g.Expect(a.Code).To(Equal(40103))
}

func TestPingIsUnsignedAndCheckIsSigned(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	g.Expect(send(t, s, http.MethodGet, "/auth/v2/ping", url.Values{}, nil).Stat).To(Equal("OK"))
	g.Expect(send(t, s, http.MethodGet, "/auth/v2/check", url.Values{}, nil).Code).To(Equal(40101))
}

func TestUnknownPathOrMethodIsRefused(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	date := time.Now().UTC().Format(time.RFC1123Z)
	a := send(t, s, http.MethodGet, "/auth/v2/enroll", url.Values{}, signWith(s.IKey(), s.SKey(), date, url.Values{}))
	g.Expect(a.status).To(Equal(http.StatusNotFound))
	g.Expect(a.Code).To(Equal(40401))
	a = send(t, s, http.MethodGet, "/auth/v2/preauth", url.Values{}, signWith(s.IKey(), s.SKey(), date, url.Values{}))
	g.Expect(a.status).To(Equal(http.StatusMethodNotAllowed))
}

func TestAuthParameterChecks(t *testing.T) {
	s := NewServer(t)
	tests := []struct {
		name       string
		path       string
		method     string
		params     url.Values
		wantCode   int
		wantDetail string
	}{
		{"preauth without username", "/auth/v2/preauth", http.MethodPost, url.Values{}, 40001, "username"},
		{"auth without factor", "/auth/v2/auth", http.MethodPost, url.Values{"username": {UserApprove}}, 40001, "factor"},
		{"auth with an unsupported factor", "/auth/v2/auth", http.MethodPost, url.Values{"username": {UserApprove}, "factor": {"sms"}}, 40002, "factor"},
		{"auth for an unknown user", "/auth/v2/auth", http.MethodPost, url.Values{"username": {"nobody"}, "factor": {"push"}, "device": {"auto"}}, 40002, "username"},
		{"push without device", "/auth/v2/auth", http.MethodPost, url.Values{"username": {UserApprove}, "factor": {"push"}}, 40001, "device"},
		{"push to another user's device", "/auth/v2/auth", http.MethodPost, url.Values{"username": {UserApprove}, "factor": {"push"}, "device": {"DPV1ESQ8ZP3JGBCRKSN1"}}, 40002, "device"},
		{"push with a bad async", "/auth/v2/auth", http.MethodPost, url.Values{"username": {UserApprove}, "factor": {"push"}, "device": {"auto"}, "async": {"yes"}}, 40002, "async"},
		{"passcode without passcode", "/auth/v2/auth", http.MethodPost, url.Values{"username": {UserApprove}, "factor": {"passcode"}}, 40001, "passcode"},
		{"auth_status without txid", "/auth/v2/auth_status", http.MethodGet, url.Values{}, 40001, "txid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			date := time.Now().UTC().Format(time.RFC1123Z)
			a := send(t, s, tt.method, tt.path, tt.params, signWith(s.IKey(), s.SKey(), date, tt.params))
			g.Expect(a.status).To(Equal(http.StatusBadRequest))
			g.Expect(a.Code).To(Equal(tt.wantCode))
			g.Expect(a.Detail).To(Equal(tt.wantDetail))
		})
	}
}

func TestSynchronousPushAnswersAtOnce(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	params := url.Values{"username": {UserFraud}, "factor": {"push"}, "device": {"auto"}}
	a := send(t, s, http.MethodPost, "/auth/v2/auth", params,
		signWith(s.IKey(), s.SKey(), time.Now().UTC().Format(time.RFC1123Z), params))
	g.Expect(a.Stat).To(Equal("OK"))
	g.Expect(string(a.Resp)).To(MatchJSON(`{"result":"deny","status":"fraud","status_msg":"Login request reported as fraudulent."}`))
}

func TestScriptedUserReplacesDefault(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t, WithUser(User{Username: UserApprove, Preauth: PreauthDeny, StatusMsg: "Go away"}))
	params := url.Values{"username": {UserApprove}}
	a := send(t, s, http.MethodPost, "/auth/v2/preauth", params,
		signWith(s.IKey(), s.SKey(), time.Now().UTC().Format(time.RFC1123Z), params))
	g.Expect(string(a.Resp)).To(MatchJSON(`{"result":"deny","status_msg":"Go away"}`))
}

func TestServerIsTrustedOnlyThroughItsCA(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	_, err := http.Get("https://" + s.APIHost() + "/auth/v2/ping")
	g.Expect(err).To(MatchError(ContainSubstring("certificate")))
	resp, err := httpClient(s).Get("https://" + s.APIHost() + "/auth/v2/ping")
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
}

func TestFailWithAnswersEveryRequest(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	s.FailWith(http.StatusServiceUnavailable)
	a := send(t, s, http.MethodGet, "/auth/v2/ping", url.Values{}, nil)
	g.Expect(a.status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(a.Stat).To(Equal("FAIL"))

	s.FailWith(0)
	g.Expect(send(t, s, http.MethodGet, "/auth/v2/ping", url.Values{}, nil).status).To(Equal(http.StatusOK))
}

func TestRateLimitAnswersAsDuoDoes(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	s.RateLimit(30 * time.Second)
	resp, err := httpClient(s).Get("https://" + s.APIHost() + "/auth/v2/ping")
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusTooManyRequests))
	g.Expect(resp.Header.Get("Retry-After")).To(Equal("30"))
	var a answer
	g.Expect(json.NewDecoder(resp.Body).Decode(&a)).To(Succeed())
	g.Expect(a.Stat).To(Equal("FAIL"))
	g.Expect(a.Code).To(Equal(42901))
	g.Expect(a.Msg).To(Equal("Too Many Requests"))

	s.FailWith(0)
	g.Expect(send(t, s, http.MethodGet, "/auth/v2/ping", url.Values{}, nil).status).To(Equal(http.StatusOK))
}

func TestUntrustedCertificateIsRefusedByClientsTrustingTheCA(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	s.PresentUntrustedCertificate(true)
	_, err := httpClient(s).Get("https://" + s.APIHost() + "/auth/v2/ping")
	g.Expect(err).To(MatchError(ContainSubstring("certificate signed by unknown authority")))

	s.PresentUntrustedCertificate(false)
	g.Expect(send(t, s, http.MethodGet, "/auth/v2/ping", url.Values{}, nil).status).To(Equal(http.StatusOK))
}

func TestHangHoldsRequestsUntilReleased(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	s.Hang(true)
	done := make(chan int, 1)
	go func() {
		resp, err := httpClient(s).Get("https://" + s.APIHost() + "/auth/v2/ping")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	g.Eventually(s.Hanging).Should(Equal(1))

	s.Hang(false)
	g.Eventually(done).Should(Receive(Equal(http.StatusOK)))
	g.Expect(s.Hanging()).To(Equal(0))
}

func TestStopMakesTheServerUnreachableUntilStart(t *testing.T) {
	g := NewWithT(t)
	s := NewServer(t)
	client := httpClient(s)
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.APIHost()+"/auth/v2/ping", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	g.Expect(ping()).To(Succeed())

	s.Stop()
	g.Expect(ping()).To(HaveOccurred())

	s.Start()
	g.Expect(ping()).To(Succeed())
	g.Expect(s.RequestsTo("/auth/v2/ping")).To(HaveLen(2))
}
