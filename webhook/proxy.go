package webhook

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// peerAddr is the address of the TCP peer.
func peerAddr(r *http.Request) netip.Addr {
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

// trusted says whether addr is one of the configured proxies.
func (s *Server) trusted(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// fromTrustedProxy says whether the request's forwarded headers may be
// believed: only when the TCP peer is a configured proxy.
func (s *Server) fromTrustedProxy(r *http.Request) bool { return s.trusted(peerAddr(r)) }

// clientIP is the client's address: X-Real-IP (sent once), else the right-most
// X-Forwarded-For address that is not a trusted proxy, when the peer is a
// trusted proxy; otherwise the peer's own address. Headers from any other
// peer are ignored, whatever they say. A trusted proxy that names no client
// (or a garbled one) gives no address: its own address is not the client's,
// and taking it would let the front door's network match rules on
// request.ip (which fail closed on no address instead).
func (s *Server) clientIP(r *http.Request) netip.Addr {
	a, _ := s.clientAddr(r, peerAddr(r))
	return a
}

// clientAddr is clientIP for a peer already parsed, with the address's
// text: the header's own bytes when they are already in canonical form
// (the usual case), so that the rules' request.ip costs no allocation.
func (s *Server) clientAddr(r *http.Request, peer netip.Addr) (netip.Addr, string) {
	if !s.trusted(peer) {
		return peer, addrText(peer, "")
	}
	if v := firstHeader(r.Header, "X-Real-Ip"); v != "" {
		if a, err := netip.ParseAddr(v); err == nil {
			a = a.Unmap()
			return a, addrText(a, v)
		}
	}
	if a, text, ok := s.forwardedFor(r.Header["X-Forwarded-For"]); ok {
		return a, addrText(a, text)
	}
	return netip.Addr{}, ""
}

// addrText is a's canonical text; raw, the text it was parsed from, is
// returned as is when it already is that text.
func addrText(a netip.Addr, raw string) string {
	if !a.IsValid() {
		return ""
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
func (s *Server) forwardedFor(values []string) (netip.Addr, string, bool) {
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
			if !s.trusted(a) {
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

// originalRequest is the protected request an auth request asks about.
type originalRequest struct {
	raw string
	// scheme is http or https; rawQuery is the query, undecoded.
	scheme, rawQuery string
	// host is the lower-case host name without port; hostPort keeps the
	// port when the URL has one.
	host, hostPort string
	method         string
	path           string
}

// parseOriginal reads X-Original-URL and X-Original-Method. The caller has
// checked that the peer is trusted.
func parseOriginal(r *http.Request, o *originalRequest) error {
	raw := firstHeader(r.Header, "X-Original-Url")
	if raw == "" {
		if len(r.Header["X-Original-Url"]) > 1 {
			return errSentTwice("X-Original-URL")
		}
		return errors.New("X-Original-URL is missing; configure the front door to send the original URL (ingress-nginx does; with nginx: proxy_set_header X-Original-URL $scheme://$http_host$request_uri)")
	}
	method := firstHeader(r.Header, "X-Original-Method")
	if method == "" {
		if len(r.Header["X-Original-Method"]) > 1 {
			return errSentTwice("X-Original-Method")
		}
		return errors.New("X-Original-Method is missing; configure the front door to send it (with nginx: proxy_set_header X-Original-Method $request_method)")
	}
	return parseOriginalURL(raw, method, o)
}

// errSentTwice: a header the front door sets came twice with different
// values, so the request cannot be judged.
func errSentTwice(name string) error {
	return errors.New(name + " is sent more than once with different values; the front door must set it, replacing any the client sent")
}

// parseForwarded reads X-Forwarded-Proto, -Host, -Uri and -Method, as
// Traefik and Caddy send them. The caller has checked that the peer is
// trusted.
func parseForwarded(r *http.Request, o *originalRequest) error {
	proto := lowerASCII(firstHeader(r.Header, "X-Forwarded-Proto"))
	host := firstHeader(r.Header, "X-Forwarded-Host")
	uri := firstHeader(r.Header, "X-Forwarded-Uri")
	method := firstHeader(r.Header, "X-Forwarded-Method")
	switch {
	case proto != "http" && proto != "https":
		return errors.New("X-Forwarded-Proto must be http or https; configure the front door to send the original request")
	case host == "" || strings.ContainsAny(host, "/\\@?#"):
		return errors.New("X-Forwarded-Host is missing or not a host")
	case uri == "":
		uri = "/"
	case uri[0] != '/' || strings.HasPrefix(uri, "//"):
		return errors.New("X-Forwarded-Uri must be a path")
	}
	if method == "" {
		return errors.New("X-Forwarded-Method is missing; configure the front door to send it")
	}
	return parseOriginalURL(proto+"://"+host+uri, method, o)
}

func parseOriginalURL(raw, method string, o *originalRequest) error {
	scheme, host, p, query, ok := splitPlainURL(raw)
	if !ok {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
			return errors.New("X-Original-URL is not an absolute http(s) URL")
		}
		scheme, host, p, query = u.Scheme, u.Host, u.Path, u.RawQuery
	}
	if strings.IndexByte(p, '\\') >= 0 {
		// Some servers read a backslash as a slash, others as a name: the
		// rules could not see the path the app serves.
		return errors.New("X-Original-URL has a backslash in its path")
	}
	*o = originalRequest{raw: raw, scheme: scheme, rawQuery: query, method: method}
	o.hostPort = lowerASCII(host)
	hp := url.URL{Host: o.hostPort}
	o.host = hp.Hostname()
	o.path = cleanPath(p)
	return nil
}

// splitPlainURL reads the common form of an original URL without
// url.Parse's allocations: http(s)://host[:port][/path][?query], the host
// made of letters, digits, dots and dashes, the path and query of
// printable ASCII without percent escapes, fragment or backslash. For any
// other URL it answers !ok and url.Parse decides; for these, it gives what
// url.Parse gives (FuzzSplitPlainURL checks it).
func splitPlainURL(raw string) (scheme, host, path, query string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(raw, "https://"):
		scheme, rest = "https", raw[len("https://"):]
	case strings.HasPrefix(raw, "http://"):
		scheme, rest = "http", raw[len("http://"):]
	default:
		return "", "", "", "", false
	}
	end := len(rest)
	colon := -1
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '/' || c == '?' {
			end = i
			break
		}
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-':
			if colon >= 0 && (c < '0' || c > '9') {
				return "", "", "", "", false
			}
		case c == ':' && colon < 0:
			colon = i
		default:
			return "", "", "", "", false
		}
	}
	host, rest = rest[:end], rest[end:]
	if host == "" || colon == 0 || colon == len(host)-1 {
		return "", "", "", "", false
	}
	path = rest
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		path, query = rest[:i], rest[i+1:]
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '#' || c == '\\' {
			return "", "", "", "", false
		}
	}
	return scheme, host, path, query, true
}

// cleanPath gives rules the path the app will serve: path parameters
// ("/admin;jsessionid=x", "..;") dropped from each segment as Java servlet
// containers do, then dot segments and repeated slashes resolved, so that a
// rule on "/admin" also sees "/public/../admin", "/public/..;/admin" and
// "/admin;/x". The raw URL stays in request.url.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if !needsClean(p) {
		return p
	}
	if strings.IndexByte(p, ';') >= 0 {
		p = dropPathParams(p)
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func needsClean(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == ';' || p[i] == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
			return true
		}
	}
	return false
}

// dropPathParams removes ";..." from every segment of p.
func dropPathParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		b.WriteString(seg)
	}
	return b.String()
}

// lowerASCII lower-cases s without allocating when it already is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
