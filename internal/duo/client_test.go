package duo_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/duotest"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

func newClient(t *testing.T, s *duotest.Server, opts ...duo.Option) duo.Client {
	t.Helper()
	c, err := duo.New(s.APIHost(), s.Credentials(), opts...)
	if err != nil {
		t.Fatalf("duo.New: %v", err)
	}
	return c
}

func TestCheckAcceptsTheServersCredentials(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	g.Expect(newClient(t, s).Check(context.Background())).To(Succeed())

	reqs := s.RequestsTo("/auth/v2/check")
	g.Expect(reqs).To(HaveLen(1))
	g.Expect(reqs[0].Method).To(Equal(http.MethodGet))
	g.Expect(reqs[0].IKey).To(Equal(s.IKey()))
	g.Expect(reqs[0].HTTPStatus).To(Equal(http.StatusOK))
	g.Expect(reqs[0].UserAgent).To(HavePrefix("mfa-operator/"))
}

func TestCheckRefusedCredentialsAreTerminalAPIErrors(t *testing.T) {
	s := duotest.NewServer(t)
	tests := []struct {
		name     string
		creds    policy.DuoCredentials
		wantCode int
		wantMsg  string
	}{
		{"wrong secret key", policy.DuoCredentials{IntegrationKey: s.IKey(), SecretKey: s.SKey() + "x", CABundle: s.CAPEM()},
			40103, "Invalid signature in request credentials"},
		{"unknown integration key", policy.DuoCredentials{IntegrationKey: "DIXXXXXXXXXXXXXXXXXX", SecretKey: s.SKey(), CABundle: s.CAPEM()},
			40102, "Invalid integration key in request credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			c, err := duo.New(s.APIHost(), tt.creds)
			g.Expect(err).NotTo(HaveOccurred())
			err = c.Check(context.Background())

			var apiErr *duo.APIError
			g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "%v", err)
			g.Expect(apiErr.Code).To(Equal(tt.wantCode))
			g.Expect(apiErr.Message).To(Equal(tt.wantMsg))
			g.Expect(apiErr.HTTPStatus).To(Equal(http.StatusUnauthorized))
			g.Expect(apiErr.Terminal()).To(BeTrue())
			g.Expect(apiErr.BadCredentials()).To(BeTrue())
			g.Expect(duo.IsTerminal(err)).To(BeTrue())
			g.Expect(duo.IsUnreachable(err)).To(BeFalse())
			g.Expect(err.Error()).To(ContainSubstring("check the integration key, the secret key and the API host"))
			g.Expect(err.Error()).NotTo(ContainSubstring(s.SKey()))
		})
	}
}

func TestCheckWithSkewedClockIsRefusedWith40105(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t, duotest.WithClock(func() time.Time { return time.Now().Add(time.Hour) }))
	err := newClient(t, s).Check(context.Background())

	var apiErr *duo.APIError
	g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "%v", err)
	g.Expect(apiErr.Code).To(Equal(40105))
	g.Expect(err.Error()).To(ContainSubstring("check the system clock"))
}

func TestUnreachableDuoIsAnUnreachableError(t *testing.T) {
	tests := []struct {
		name    string
		host    func(s *duotest.Server) string
		prepare func(s *duotest.Server)
	}{
		{"unknown host", func(*duotest.Server) string { return "api-unknown.invalid" }, func(*duotest.Server) {}},
		{"stopped server", (*duotest.Server).APIHost, (*duotest.Server).Stop},
		{"HTTP 503", (*duotest.Server).APIHost, func(s *duotest.Server) { s.FailWith(http.StatusServiceUnavailable) }},
		{"HTTP 500", (*duotest.Server).APIHost, func(s *duotest.Server) { s.FailWith(http.StatusInternalServerError) }},
		{"HTTP 502", (*duotest.Server).APIHost, func(s *duotest.Server) { s.FailWith(http.StatusBadGateway) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := duotest.NewServer(t)
			tt.prepare(s)
			c, err := duo.New(tt.host(s), s.Credentials(), duo.WithTimeout(5*time.Second))
			g.Expect(err).NotTo(HaveOccurred())

			err = c.Check(context.Background())
			var u *duo.UnreachableError
			g.Expect(errors.As(err, &u)).To(BeTrue(), "%v", err)
			g.Expect(u.Terminal()).To(BeFalse())
			g.Expect(u.Op).To(Equal("check"))
			g.Expect(u.Host).To(Equal(tt.host(s)))
			g.Expect(duo.IsTerminal(err)).To(BeFalse())
		})
	}
}

// TestRefusalsAreAPIErrorsNeverUnreachable: whatever Duo refuses with, a
// 4xx is Duo saying no, never Duo being unreachable.
func TestRefusalsAreAPIErrorsNeverUnreachable(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		wantCode int
		terminal bool
	}{
		{"HTTP 400", http.StatusBadRequest, 40000, true},
		{"HTTP 401", http.StatusUnauthorized, 40100, true},
		{"HTTP 403", http.StatusForbidden, 40300, true},
		{"HTTP 404", http.StatusNotFound, 40400, true},
		{"HTTP 429", http.StatusTooManyRequests, 42901, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := duotest.NewServer(t)
			s.FailWith(tt.status)
			_, err := newClient(t, s).Preauth(context.Background(), duotest.UserApprove, "192.0.2.10")

			var apiErr *duo.APIError
			g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "%v", err)
			g.Expect(apiErr.Op).To(Equal("preauth"))
			g.Expect(apiErr.HTTPStatus).To(Equal(tt.status))
			g.Expect(apiErr.Code).To(Equal(tt.wantCode))
			g.Expect(apiErr.RateLimited()).To(Equal(tt.status == http.StatusTooManyRequests))
			g.Expect(duo.IsUnreachable(err)).To(BeFalse())
			g.Expect(duo.IsTerminal(err)).To(Equal(tt.terminal))
		})
	}
}

// TestDuoRateLimitIsARefusalNotRetriedByTheLibrary: a 429 is answered at
// once, with Duo's code and Retry-After, without the library's sleeping
// retries.
func TestDuoRateLimitIsARefusalNotRetriedByTheLibrary(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	s.RateLimit(30 * time.Second)
	err := newClient(t, s).Check(context.Background())

	var apiErr *duo.APIError
	g.Expect(errors.As(err, &apiErr)).To(BeTrue(), "%v", err)
	g.Expect(*apiErr).To(Equal(duo.APIError{Op: "check", HTTPStatus: http.StatusTooManyRequests, Code: 42901,
		Message: "Too Many Requests", RetryAfter: 30 * time.Second}))
	g.Expect(apiErr.RateLimited()).To(BeTrue())
	g.Expect(err.Error()).To(ContainSubstring("Duo is rate limiting this application, retry after 30s"))
	g.Expect(duo.IsUnreachable(err)).To(BeFalse())
	g.Expect(duo.IsTerminal(err)).To(BeFalse())
	g.Expect(s.Requests()).To(HaveLen(1))
}

// TestFailuresDoNotNameTheRequestURL: a GET's query names the push's
// transaction, which must not reach the logs through an error.
func TestFailuresDoNotNameTheRequestURL(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	s.Stop()
	const txid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	_, err := newClient(t, s).AuthStatus(context.Background(), txid)
	g.Expect(duo.IsUnreachable(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).NotTo(ContainSubstring(txid))
	g.Expect(err.Error()).NotTo(ContainSubstring("/auth/v2/"))
}

func TestStoppedServerAnswersAgainAfterStart(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	c := newClient(t, s)
	g.Expect(c.Check(context.Background())).To(Succeed())

	s.Stop()
	g.Expect(duo.IsUnreachable(c.Check(context.Background()))).To(BeTrue())

	s.Start()
	g.Expect(c.Check(context.Background())).To(Succeed())
}

// TestTLSFailuresAreNeverUnreachable: a peer at Duo's address that cannot
// prove it is Duo may be an interception. It is a TLSError, never
// UnreachableError, so that a fail-open provider does not open on it.
func TestTLSFailuresAreNeverUnreachable(t *testing.T) {
	s := duotest.NewServer(t)
	other := duotest.NewServer(t)
	tests := []struct {
		name     string
		caBundle string
		impostor bool
	}{
		{"system roots", "", false},
		{"another CA", other.CAPEM(), false},
		{"the right CA, an impostor's certificate", s.CAPEM(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s.PresentUntrustedCertificate(tt.impostor)
			c, err := duo.New(s.APIHost(), policy.DuoCredentials{IntegrationKey: s.IKey(), SecretKey: s.SKey(), CABundle: tt.caBundle})
			g.Expect(err).NotTo(HaveOccurred())

			err = c.Check(context.Background())
			var tlsErr *duo.TLSError
			g.Expect(errors.As(err, &tlsErr)).To(BeTrue(), "%v", err)
			g.Expect(tlsErr.Host).To(Equal(s.APIHost()))
			g.Expect(duo.IsUnreachable(err)).To(BeFalse())
			g.Expect(duo.IsTerminal(err)).To(BeFalse())
			var unknownCA x509.UnknownAuthorityError
			var verify *tls.CertificateVerificationError
			g.Expect(errors.As(err, &unknownCA) || errors.As(err, &verify)).To(BeTrue(), "%v", err)
			g.Expect(s.RequestsTo("/auth/v2/check")).To(BeEmpty())
		})
	}
	t.Run("its own certificate again", func(t *testing.T) {
		s.PresentUntrustedCertificate(false)
		NewWithT(t).Expect(newClient(t, s).Check(context.Background())).To(Succeed())
	})
}

// TestEgressProxyAnswers: a proxy that cannot reach Duo (5xx to CONNECT)
// is an outage; a proxy that refuses to connect is a configuration to fix,
// which fails closed.
func TestEgressProxyAnswers(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		unreachable bool
	}{
		{"502 bad gateway", http.StatusBadGateway, true},
		{"504 gateway timeout", http.StatusGatewayTimeout, true},
		{"403 forbidden", http.StatusForbidden, false},
		{"407 proxy authentication required", http.StatusProxyAuthRequired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := duotest.NewServer(t)
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(proxy.Close)
			proxyURL, err := url.Parse(proxy.URL)
			g.Expect(err).NotTo(HaveOccurred())

			err = newClient(t, s, duo.WithProxy(http.ProxyURL(proxyURL))).Check(context.Background())
			g.Expect(err).To(HaveOccurred())
			g.Expect(duo.IsUnreachable(err)).To(Equal(tt.unreachable), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("HTTP %d", tt.status)))
			if !tt.unreachable {
				var re *duo.ResponseError
				g.Expect(errors.As(err, &re)).To(BeTrue(), "%v", err)
			}
			g.Expect(s.Requests()).To(BeEmpty())
		})
	}
}

func TestNewRefusesInvalidConfiguration(t *testing.T) {
	good := policy.DuoCredentials{IntegrationKey: "DIXXXXXXXXXXXXXXXXXX", SecretKey: "secret"}
	tests := []struct {
		name    string
		host    string
		creds   policy.DuoCredentials
		wantErr string
	}{
		{"empty host", "", good, "is empty"},
		{"URL instead of host", "https://api-abcd1234.duosecurity.com", good, "is not a host name"},
		{"host with path", "api-abcd1234.duosecurity.com/auth", good, "is not a host name"},
		{"empty port", "api-abcd1234.duosecurity.com:", good, "empty port"},
		{"empty integration key", "api-abcd1234.duosecurity.com", policy.DuoCredentials{SecretKey: "s"}, "integration key is empty"},
		{"empty secret key", "api-abcd1234.duosecurity.com", policy.DuoCredentials{IntegrationKey: "i"}, "secret key is empty"},
		{"CA bundle without PEM", "api-abcd1234.duosecurity.com",
			policy.DuoCredentials{IntegrationKey: "i", SecretKey: "s", CABundle: "not a certificate"}, "CA bundle holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := duo.New(tt.host, tt.creds)
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		})
	}
}

func TestSlowDuoTimesOutAsUnreachable(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	s.Hang(true)
	c := newClient(t, s, duo.WithTimeout(300*time.Millisecond))

	err := c.Check(context.Background())
	g.Expect(duo.IsUnreachable(err)).To(BeTrue(), "%v", err)
	g.Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue(), "%v", err)
}

func TestCancelledCallerIsNotUnreachable(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	s.Hang(true)
	c := newClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Check(ctx) }()

	g.Eventually(s.Hanging).Should(Equal(1))
	cancel()
	var err error
	g.Eventually(done).Should(Receive(&err))
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "%v", err)
	g.Expect(duo.IsUnreachable(err)).To(BeFalse())
	g.Expect(duo.IsTerminal(err)).To(BeFalse())
}

func TestCallWithDoneContextDoesNotReachDuo(t *testing.T) {
	g := NewWithT(t)
	s := duotest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	cancel()
	err := newClient(t, s).Check(ctx)
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "%v", err)
	g.Expect(duo.IsUnreachable(err)).To(BeFalse())
	g.Expect(s.Requests()).To(BeEmpty())
}
