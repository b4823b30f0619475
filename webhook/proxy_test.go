package webhook

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	. "github.com/onsi/gomega"
)

func TestClientIPBelievesForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	f := newCoreServer(t, "", func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	})
	trustRealIP := newCoreServer(t, "", func(o *Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("fd00::/8")}
		o.TrustXRealIP = true
	})
	tests := []struct {
		name   string
		s      *Server
		peer   string
		realIP string
		xff    []string
		want   string
	}{
		{"untrusted peer: X-Real-IP ignored", f.s, coreClientAddr, "10.1.1.1", nil, "203.0.113.7"},
		{"untrusted peer: X-Real-IP ignored, even with --trust-x-real-ip", trustRealIP.s, coreClientAddr, "10.1.1.1", nil, "203.0.113.7"},
		{"untrusted peer: X-Forwarded-For ignored", f.s, coreClientAddr, "", []string{"10.1.1.1"}, "203.0.113.7"},
		{"trusted peer: X-Real-IP ignored by default (Caddy and Traefik pass the client's on)", f.s, coreProxyAddr, "10.1.1.1", []string{"198.51.100.20"}, "198.51.100.20"},
		{"trusted peer: X-Real-IP alone names no client by default", f.s, coreProxyAddr, "10.1.1.1", nil, "invalid IP"},
		{"trusted peer: X-Real-IP with --trust-x-real-ip", trustRealIP.s, coreProxyAddr, "198.51.100.20", []string{"192.0.2.1"}, "198.51.100.20"},
		{"trusted peer: garbled X-Real-IP falls back with --trust-x-real-ip", trustRealIP.s, coreProxyAddr, "nope", []string{"198.51.100.20"}, "198.51.100.20"},
		{"trusted peer: right-most untrusted X-Forwarded-For hop", f.s, coreProxyAddr, "", []string{"1.1.1.1, 198.51.100.20, 10.9.0.7"}, "198.51.100.20"},
		{"trusted peer: right-most untrusted hop over several header lines", f.s, coreProxyAddr, "", []string{"10.0.0.1, 192.0.2.9", "198.51.100.20, 10.9.0.7", "10.9.0.8"}, "198.51.100.20"},
		{"trusted peer: spoofed left-most hop not believed", f.s, coreProxyAddr, "", []string{"10.0.0.1", "198.51.100.20"}, "198.51.100.20"},
		{"trusted peer: garbled hop leaves the client unknown", f.s, coreProxyAddr, "", []string{"1.1.1.1, not-an-ip, 10.9.0.7"}, "invalid IP"},
		{"trusted peer: no header, no client address (not the proxy's)", f.s, coreProxyAddr, "", nil, "invalid IP"},
		{"trusted IPv6 peer, IPv4-mapped client", f.s, "[fd00::1]:443", "", []string{"::ffff:198.51.100.20"}, "198.51.100.20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.peer
			if tt.realIP != "" {
				r.Header.Set("X-Real-IP", tt.realIP)
			}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			g.Expect(tt.s.pages.proxies.clientIP(r).String()).To(Equal(tt.want))
		})
	}
}

func TestUntrustedPeerGetsNoHeaderIdentity(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	e := f.s.config.snapshot().entry("apps", "admin")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Auth-Request-Email", ana)

	r.RemoteAddr = coreClientAddr
	id, err := identifyAt(f.s, r, e)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id).To(BeNil())

	r.RemoteAddr = coreProxyAddr
	id, err = identifyAt(f.s, r, e)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.User.ID).To(Equal(ana))
	g.Expect(id.Source).To(Equal(sourceHeader))
}

func TestSpoofedHeadersFromUntrustedPeerCannotReachAnAllowRule(t *testing.T) {
	g := NewWithT(t)
	f := newCoreServer(t, coreAdminPolicyYAML)
	// From the VPN, via the trusted proxy: allowed.
	ok := authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana, "X-Forwarded-For": "10.1.2.3"})
	g.Expect(f.serve(ok).Code).To(Equal(http.StatusOK))
	// The same headers straight from a client: refused, whatever they say.
	spoofed := authRequest("/auth/apps/admin", "https://admin.example.com/public/", map[string]string{
		"X-Auth-Request-Email": ana, "X-Real-IP": "10.1.2.3", "X-Forwarded-For": "10.1.2.3"})
	spoofed.RemoteAddr = coreClientAddr
	w := f.serve(spoofed)
	g.Expect(w.Code).To(Equal(http.StatusForbidden))
	g.Expect(w.Header().Get(headerUser)).To(BeEmpty())
}

// TestAddrTextIsTheCanonicalText: the text a client address is given to
// the rules in is the address's canonical text, whatever form it came in
// (the header's own text is kept only when it already is that text).
func TestAddrTextIsTheCanonicalText(t *testing.T) {
	g := NewWithT(t)
	for _, raw := range []string{
		"192.0.2.10", "0.0.0.0", "255.255.255.255", "10.9.0.2",
		"::ffff:192.0.2.10", "::FFFF:192.0.2.10", "2001:db8::1", "2001:DB8:0:0::1", "2001:0db8::1",
		"fe80::1%eth0", "::1", "::ffff:0:0", "64:ff9b::192.0.2.10",
	} {
		a, err := netip.ParseAddr(raw)
		g.Expect(err).NotTo(HaveOccurred(), raw)
		a = a.Unmap()
		g.Expect(addrText(a, raw)).To(Equal(a.String()), raw)
	}
	g.Expect(addrText(netip.MustParseAddr("192.0.2.10"), "")).To(Equal("192.0.2.10"))
	g.Expect(addrText(netip.Addr{}, "192.0.2.10")).To(BeEmpty())
}

// TestPeerAddrOfAConnectionIsRemoteAddrs: the peer address a connection's
// context records is the one RemoteAddr names, for every request of a
// keep-alive connection, and a request without it (built by hand, or by
// another server) is read from RemoteAddr.
func TestPeerAddrOfAConnectionIsRemoteAddrs(t *testing.T) {
	g := NewWithT(t)
	type seen struct {
		fromContext bool
		peer, text  netip.Addr
	}
	got := make(chan seen, 3)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := r.Context().Value(peerContextKey{}).(netip.Addr)
		got <- seen{fromContext: ok, peer: peerAddr(r), text: netip.MustParseAddrPort(r.RemoteAddr).Addr().Unmap()}
	}))
	srv.Config.ConnContext = withPeer
	srv.Start()
	defer srv.Close()
	for range 3 {
		resp, err := srv.Client().Get(srv.URL)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		s := <-got
		g.Expect(s.fromContext).To(BeTrue())
		g.Expect(s.peer).To(Equal(s.text))
		g.Expect(s.peer.IsLoopback()).To(BeTrue())
	}
	r := httptest.NewRequest(http.MethodGet, "/auth", nil)
	r.RemoteAddr = "[::ffff:10.9.0.2]:41000"
	g.Expect(peerAddr(r)).To(Equal(netip.MustParseAddr("10.9.0.2")))
}
