package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// peerContextKey keys the TCP peer's address in a connection's context
// (withPeer).
type peerContextKey struct{}

// withPeer is the http.Server's ConnContext: it records the peer's
// address, taken from the connection itself, in the connection's context,
// so that the requests of a keep-alive connection do not each parse
// RemoteAddr (the same address, as text) again.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return context.WithValue(ctx, peerContextKey{}, tcp.AddrPort().Addr().Unmap())
	}
	return ctx
}

// peerAddr is the address of the TCP peer: the one withPeer recorded,
// else RemoteAddr's.
func peerAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(peerContextKey{}).(netip.Addr); ok {
		return a
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// RemoteAddr without a port (some test harnesses, unix sockets).
		a, err := netip.ParseAddr(r.RemoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// proxies are the front door's proxies: the peers whose forwarded
// headers (X-Forwarded-*, X-Original-*, identity headers) are believed.
type proxies struct {
	trusted []netip.Prefix
	// trustXRealIP believes X-Real-IP first (Options.TrustXRealIP).
	trustXRealIP bool
}

// isTrusted says whether addr is one of the configured proxies.
func (px *proxies) isTrusted(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	for _, p := range px.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// fromTrustedProxy says whether the request's forwarded headers may be
// believed: only when the TCP peer is a configured proxy.
func (px *proxies) fromTrustedProxy(r *http.Request) bool { return px.isTrusted(peerAddr(r)) }

// clientIP is the client's address. From a peer that is not a trusted
// proxy it is the peer's own address, whatever the headers say. From a
// trusted proxy it is the right-most X-Forwarded-For address that is not a
// trusted proxy: each proxy appends the address it got the request from,
// so that entry was written by the last proxy the operator trusts, and
// everything left of it by whoever the client is. X-Real-IP is believed
// first only with trustXRealIP (Options.TrustXRealIP), for front doors that set it
// themselves: Traefik and Caddy pass on the X-Real-IP the client sent, so
// believing it would let the client choose request.ip. A trusted proxy
// that names no client (or a garbled one) gives no address: its own
// address is not the client's, and taking it would let the front door's
// network match rules on request.ip (which fail closed on no address
// instead).
func (px *proxies) clientIP(r *http.Request) netip.Addr {
	a, _ := px.clientAddr(r, peerAddr(r))
	return a
}

// clientAddr is clientIP for a peer already parsed, with the address's
// text: the header's own bytes when they are already in canonical form
// (the usual case), so that the rules' request.ip costs no allocation.
func (px *proxies) clientAddr(r *http.Request, peer netip.Addr) (netip.Addr, string) {
	if !px.isTrusted(peer) {
		return peer, addrText(peer, "")
	}
	return px.forwardedClient(r)
}

// forwardedClient is clientAddr for a peer already known to be a trusted
// proxy: the client its headers name.
func (px *proxies) forwardedClient(r *http.Request) (netip.Addr, string) {
	if px.trustXRealIP {
		if v := firstHeader(r.Header, "X-Real-Ip"); v != "" {
			if a, err := netip.ParseAddr(v); err == nil {
				a = a.Unmap()
				return a, addrText(a, v)
			}
		}
	}
	if a, text, ok := px.forwardedFor(r.Header["X-Forwarded-For"]); ok {
		return a, addrText(a, text)
	}
	return netip.Addr{}, ""
}

// envoyExternalAddress is the client Envoy names in
// X-Envoy-External-Address (set by Envoy for a request from outside its
// trusted hops), read for the Envoy dialects when X-Forwarded-For names no
// client; the peer is already known to be a trusted proxy.
func (px *proxies) envoyExternalAddress(r *http.Request) string {
	v := firstHeader(r.Header, "X-Envoy-External-Address")
	if v == "" {
		return ""
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	return addrText(a, v)
}

// addrText is a's canonical text; raw, the text it was parsed from, is
// returned as is when it already is that text.
func addrText(a netip.Addr, raw string) string {
	if !a.IsValid() {
		return ""
	}
	// An IPv4 address parsed from text without ":" was written in dotted
	// decimal, the only IPv4 form netip.ParseAddr takes (four fields, no
	// leading zeros): its canonical text.
	if a.Is4() && raw != "" && strings.IndexByte(raw, ':') < 0 {
		return raw
	}
	var buf [64]byte
	if b := a.AppendTo(buf[:0]); string(b) == raw {
		return raw
	}
	return a.String()
}

// forwardedFor walks X-Forwarded-For from the right, skipping trusted
// proxies: the first other address is the client. Addresses left of it were
// written by the client and are not believed; a hop that does not parse
// leaves the client unknown.
func (px *proxies) forwardedFor(values []string) (netip.Addr, string, bool) {
	var leftmost netip.Addr
	var leftText string
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var part string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				part, v = v, ""
			}
			part = strings.TrimSpace(part)
			a, err := netip.ParseAddr(part)
			if err != nil {
				// A garbled hop: nothing left of it can be believed, and
				// what is right of it are proxies.
				return netip.Addr{}, "", false
			}
			a = a.Unmap()
			if !px.isTrusted(a) {
				return a, part, true
			}
			leftmost, leftText = a, part
		}
	}
	return leftmost, leftText, leftmost.IsValid()
}

// errUntrustedPeer: the auth request did not come from a trusted proxy, so
// nothing it says about the original request can be believed.
var errUntrustedPeer = errors.New("the peer is not in --trusted-proxies, so its X-Original-URL cannot be believed; add the front door's address to --trusted-proxies")
