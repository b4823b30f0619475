// Package duo is the Duo Security Auth API v2 client: check the
// credentials, ask Duo what to do with a user (preauth), send a push and
// poll its status, verify a passcode.
//
// Requests are signed and sent by github.com/duosecurity/duo_api_golang
// (DuoApi.SignedCall). That library takes no context.Context, so each call
// gets a copy of the library's DuoApi whose HTTP client carries the call's
// context (with a per-call timeout) into every request it makes, and turns
// HTTP 429/5xx into transport errors so the library's sleeping retry loop
// never runs: callers retry with their own backoff.
//
// Failures are classified (see errors.go) so that only an outage, never a
// refusal or an unverified peer, can count as Duo being unreachable.
//
// The User-Agent of every request is this product's token, with the
// build's version (internal/version), followed by what duo_api_golang
// v0.3.0 appends to it (NewDuoApi), e.g. from the controller
//
//	mfa-operator/v1.2.3 duo_api_golang/0.3.0 ca_bundle/1.0 (ca_pinning=disabled)
//
// and "mfa-operator-webhook/v1.2.3 ..." from the challenge server. Duo refuses
// requests from client library versions it has deprecated (error 40301),
// so the library names its own version, as it writes it; a test holds the
// string above to the version go.mod requires. ca_pinning=disabled is the
// truth: the library's pinned Duo roots are not used, this client verifies
// Duo against the system roots or the provider's CA bundle (see New).
package duo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	duoapi "github.com/duosecurity/duo_api_golang"

	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/version"
)

// Client talks to Duo's Auth API v2 on behalf of one Duo Auth API
// application. It is safe for concurrent use.
type Client interface {
	// Check verifies the integration key, secret key and API host
	// (/auth/v2/check).
	Check(ctx context.Context) error
	// Preauth asks Duo whether the user must answer a second factor, and
	// with which devices (/auth/v2/preauth).
	Preauth(ctx context.Context, username, ipaddr string) (*PreauthResult, error)
	// Push sends a push to the user's device without waiting for the
	// answer and returns the transaction ID to poll with AuthStatus
	// (/auth/v2/auth, factor=push, async=1).
	Push(ctx context.Context, req PushRequest) (txid string, err error)
	// Passcode verifies a passcode (Duo Mobile, hardware token, SMS or
	// bypass code) synchronously (/auth/v2/auth, factor=passcode).
	Passcode(ctx context.Context, username, passcode, ipaddr string) (*AuthResult, error)
	// AuthStatus returns the state of a push (/auth/v2/auth_status).
	AuthStatus(ctx context.Context, txid string) (*AuthResult, error)
}

const (
	// DefaultTimeout bounds every call to Duo unless WithTimeout says
	// otherwise.
	DefaultTimeout = 10 * time.Second

	defaultUserAgent = "mfa-operator"
	// maxResponseBytes bounds what is read from Duo; its answers are a
	// few hundred bytes.
	maxResponseBytes = 1 << 20
)

// Option configures a Client.
type Option func(*options)

type options struct {
	timeout   time.Duration
	userAgent string
	proxy     func(*http.Request) (*url.URL, error)
}

// WithTimeout bounds every call (connection, TLS handshake, request and
// answer). Values <= 0 are ignored.
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// WithUserAgent sets the product name of the User-Agent header, e.g.
// "mfa-operator-webhook"; the build's version follows it, and the library
// appends its own name and version (see the package documentation).
func WithUserAgent(ua string) Option {
	return func(o *options) {
		if ua != "" {
			o.userAgent = ua
		}
	}
}

// WithProxy sets the HTTP CONNECT proxy function; the default is
// http.ProxyFromEnvironment (HTTPS_PROXY, NO_PROXY).
func WithProxy(proxy func(*http.Request) (*url.URL, error)) Option {
	return func(o *options) { o.proxy = proxy }
}

type client struct {
	host    string
	timeout time.Duration
	// signer holds the keys and host and signs requests; its own HTTP
	// client is never used, each call works on a copy.
	signer    *duoapi.DuoApi
	transport *http.Transport
}

// New returns a Client for the Duo application whose API host and keys
// are given. When creds.CABundle is set, its PEM certificates are the only
// roots trusted for apiHost; otherwise the system roots are. TLS
// verification cannot be turned off.
func New(apiHost string, creds policy.DuoCredentials, opts ...Option) (Client, error) {
	o := options{timeout: DefaultTimeout, userAgent: defaultUserAgent, proxy: http.ProxyFromEnvironment}
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkHostPort(apiHost); err != nil {
		return nil, err
	}
	if strings.TrimSpace(creds.IntegrationKey) == "" {
		return nil, errors.New("duo: the integration key is empty: set it to the Auth API application's integration key")
	}
	if strings.TrimSpace(creds.SecretKey) == "" {
		return nil, errors.New("duo: the secret key is empty: set it to the Auth API application's secret key")
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if creds.CABundle != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(creds.CABundle)) {
			return nil, errors.New("duo: the CA bundle holds no PEM certificate: give PEM-encoded CA certificates or leave it unset to trust the system roots")
		}
		tlsConfig.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: o.timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                  o.proxy,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    o.timeout,
		ResponseHeaderTimeout:  o.timeout,
		OnProxyConnectResponse: onProxyConnectResponse,
		ForceAttemptHTTP2:      true,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
	}
	// The library's own transport, with its pinned Duo roots, is never
	// used (see call): SetCAPinning(false) keeps its User-Agent truthful.
	signer := duoapi.NewDuoApi(creds.IntegrationKey, creds.SecretKey, apiHost, version.Product(o.userAgent), duoapi.SetCAPinning(false))
	return &client{
		host:      apiHost,
		timeout:   o.timeout,
		signer:    signer,
		transport: transport,
	}, nil
}

// checkHostPort accepts host or host:port, nothing else (no scheme, path,
// user info or query).
func checkHostPort(apiHost string) error {
	bad := func(why string) error {
		return fmt.Errorf("duo: API host %q %s: give the host name alone, e.g. api-xxxxxxxx.duosecurity.com", apiHost, why)
	}
	if apiHost == "" {
		return bad("is empty")
	}
	if strings.ContainsAny(apiHost, "/?#@ \t\r\n") {
		return bad("is not a host name")
	}
	host := apiHost
	if h, port, err := net.SplitHostPort(apiHost); err == nil {
		if port == "" {
			return bad("has an empty port")
		}
		host = h
	}
	if host == "" || strings.ContainsAny(host, ":[]") {
		return bad("is not a host name")
	}
	return nil
}

func (c *client) Check(ctx context.Context) error {
	return c.call(ctx, "check", http.MethodGet, "/auth/v2/check", url.Values{}, nil)
}

type preauthResponse struct {
	Result          string `json:"result"`
	StatusMsg       string `json:"status_msg"`
	EnrollPortalURL string `json:"enroll_portal_url"`
	Devices         []struct {
		Device       string   `json:"device"`
		Type         string   `json:"type"`
		Name         string   `json:"name"`
		DisplayName  string   `json:"display_name"`
		Number       string   `json:"number"`
		Capabilities []string `json:"capabilities"`
	} `json:"devices"`
}

func (c *client) Preauth(ctx context.Context, username, ipaddr string) (*PreauthResult, error) {
	const op = "preauth"
	params := url.Values{}
	if err := setUsername(op, params, username); err != nil {
		return nil, err
	}
	if err := setIPAddr(op, params, ipaddr); err != nil {
		return nil, err
	}
	var resp preauthResponse
	if err := c.call(ctx, op, http.MethodPost, "/auth/v2/preauth", params, &resp); err != nil {
		return nil, err
	}
	switch resp.Result {
	case PreauthAuth, PreauthAllow, PreauthDeny, PreauthEnroll:
	default:
		return nil, &ResponseError{Op: op, Reason: fmt.Sprintf("unknown result %q", resp.Result)}
	}
	out := &PreauthResult{Result: resp.Result, StatusMsg: resp.StatusMsg, EnrollPortalURL: resp.EnrollPortalURL}
	for _, d := range resp.Devices {
		out.Devices = append(out.Devices, Device{
			ID: d.Device, Type: d.Type, Name: d.Name, DisplayName: d.DisplayName,
			Number: d.Number, Capabilities: d.Capabilities,
		})
	}
	return out, nil
}

func (c *client) Push(ctx context.Context, req PushRequest) (string, error) {
	const op = "auth"
	params := url.Values{"factor": {"push"}, "async": {"1"}}
	if err := setUsername(op, params, req.Username); err != nil {
		return "", err
	}
	if err := setIPAddr(op, params, req.IPAddr); err != nil {
		return "", err
	}
	device := req.Device
	if device == "" {
		device = DeviceAuto
	}
	if err := checkText(op, "device", device, 64); err != nil {
		return "", err
	}
	params.Set("device", device)
	if len(req.PushInfo) > 0 {
		info := encodePushInfo(req.PushInfo)
		if len(info) >= maxPushInfoBytes {
			return "", &InputError{Op: op, Field: "pushinfo", Reason: fmt.Sprintf("is %d bytes once encoded, Duo takes less than %d", len(info), maxPushInfoBytes)}
		}
		params.Set("pushinfo", info)
	}
	if req.Type != "" {
		if err := checkText(op, "type", req.Type, 64); err != nil {
			return "", err
		}
		params.Set("type", req.Type)
	}
	if req.DisplayUsername != "" {
		if err := checkText(op, "display_username", req.DisplayUsername, 256); err != nil {
			return "", err
		}
		params.Set("display_username", req.DisplayUsername)
	}
	var resp struct {
		Txid string `json:"txid"`
	}
	if err := c.call(ctx, op, http.MethodPost, "/auth/v2/auth", params, &resp); err != nil {
		return "", err
	}
	if resp.Txid == "" {
		return "", &ResponseError{Op: op, Reason: "no txid in an asynchronous push answer"}
	}
	return resp.Txid, nil
}

type authResponse struct {
	Result    string `json:"result"`
	Status    string `json:"status"`
	StatusMsg string `json:"status_msg"`
}

func (r *authResponse) result(op string) (*AuthResult, error) {
	switch r.Result {
	case ResultAllow, ResultDeny, ResultWaiting:
		return &AuthResult{Result: r.Result, Status: r.Status, StatusMsg: r.StatusMsg}, nil
	}
	return nil, &ResponseError{Op: op, Reason: fmt.Sprintf("unknown result %q", r.Result)}
}

func (c *client) Passcode(ctx context.Context, username, passcode, ipaddr string) (*AuthResult, error) {
	const op = "auth"
	params := url.Values{"factor": {"passcode"}}
	if err := setUsername(op, params, username); err != nil {
		return nil, err
	}
	passcode = strings.TrimSpace(passcode)
	if err := checkText(op, "passcode", passcode, 64); err != nil {
		return nil, err
	}
	params.Set("passcode", passcode)
	if err := setIPAddr(op, params, ipaddr); err != nil {
		return nil, err
	}
	var resp authResponse
	if err := c.call(ctx, op, http.MethodPost, "/auth/v2/auth", params, &resp); err != nil {
		return nil, err
	}
	return resp.result(op)
}

func (c *client) AuthStatus(ctx context.Context, txid string) (*AuthResult, error) {
	const op = "auth_status"
	if err := checkText(op, "txid", txid, 128); err != nil {
		return nil, err
	}
	var resp authResponse
	if err := c.call(ctx, op, http.MethodGet, "/auth/v2/auth_status", url.Values{"txid": {txid}}, &resp); err != nil {
		return nil, err
	}
	return resp.result(op)
}

// call signs and sends one request with the library and decodes Duo's
// answer into out (the "response" member) when stat is OK.
func (c *client) call(ctx context.Context, op, method, path string, params url.Values, out any) error {
	if err := ctx.Err(); err != nil {
		// Duo was not even tried: not an unreachable Duo.
		return fmt.Errorf("duo %s: %w", op, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rt := &callTransport{ctx: callCtx, next: c.transport}
	api := *c.signer
	api.SetCustomHTTPClient(&http.Client{
		Transport: rt,
		// Duo's API never redirects; an answer that does is not Duo's.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	})
	_, body, err := api.SignedCall(method, path, params)
	if err != nil {
		return c.failure(ctx, op, rt, err)
	}
	err = c.decode(op, rt.status, body, out)
	if a, ok := err.(*APIError); ok {
		a.RetryAfter = rt.retryAfter
	}
	return err
}
