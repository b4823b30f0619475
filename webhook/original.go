package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

// originalRequest is the protected request an auth request asks about.
type originalRequest struct {
	// raw is the original URL as the front door sent it (X-Original-URL),
	// or empty when it came in parts (authority and target, the path and
	// query as sent): url() writes it then, only when asked, so that a
	// remembered user's request allocates no URL nothing reads.
	raw               string
	authority, target string
	// scheme is http or https; rawQuery is the query, undecoded.
	scheme, rawQuery string
	// host is the host name in its one form (internal/hostname), without
	// the port: what lookup, request.host and the assertion's audience use.
	host   string
	method string
	// path is request.path (see pathView).
	path string
}

// url is the original URL: http(s)://authority/path?query, as sent.
func (o *originalRequest) url() string {
	if o.raw != "" {
		return o.raw
	}
	return o.scheme + "://" + o.authority + o.target
}

// parseOriginal reads X-Original-URL and X-Original-Method. The caller has
// checked that the peer is trusted.
func parseOriginal(r *http.Request, _ string, paths pathMode, o *originalRequest) error {
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
	return parseOriginalURL(raw, method, paths, o)
}

// errSentTwice: a header the front door sets came twice with different
// values, so the request cannot be judged.
func errSentTwice(name string) error {
	return errors.New(name + " is sent more than once with different values; the front door must set it, replacing any the client sent")
}

// parseForwarded reads X-Forwarded-Proto, -Host, -Uri and -Method, as
// Traefik and Caddy send them. The caller has checked that the peer is
// trusted.
func parseForwarded(r *http.Request, _ string, paths pathMode, o *originalRequest) error {
	proto := lowerASCII(firstHeader(r.Header, "X-Forwarded-Proto"))
	host := firstHeader(r.Header, "X-Forwarded-Host")
	uri := firstHeader(r.Header, "X-Forwarded-Uri")
	method := firstHeader(r.Header, "X-Forwarded-Method")
	switch {
	case proto != "http" && proto != "https":
		return errors.New("X-Forwarded-Proto must be http or https; configure the front door to send the original request")
	case host == "" || notHost(host):
		return errors.New("X-Forwarded-Host is missing or not a host")
	case uri == "":
		uri = "/"
	case uri[0] != '/' || strings.HasPrefix(uri, "//"):
		return errors.New("X-Forwarded-Uri must be a path")
	}
	if method == "" {
		return errors.New("X-Forwarded-Method is missing; configure the front door to send it")
	}
	return parseOriginalParts(proto, host, uri, method, paths, o)
}

// notHost: s holds a character that ends or leaves an authority ('/',
// '\\', '?', '#') or names a user ('@'), so it is not a host.
func notHost(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', '\\', '@', '?', '#':
			return true
		}
	}
	return false
}

// parseOriginalParts reads an original request that came in parts: the
// scheme, the authority (checked by the caller to hold none of notHost's
// characters) and the request-target (a path starting with a single '/',
// and the query). It judges exactly what parseOriginalURL judges of
// scheme://authority+target; in their common, plain form (splitPlainURL's)
// the parts are read where they are, without writing the URL.
func parseOriginalParts(scheme, authority, target, method string, paths pathMode, o *originalRequest) error {
	path, query, ok := plainTarget(target)
	if !ok || !plainHost(authority) {
		return parseOriginalURL(scheme+"://"+authority+target, method, paths, o)
	}
	if err := o.judge(scheme, authority, path, query, method, paths); err != nil {
		return err
	}
	o.authority, o.target = authority, target
	return nil
}

// parseOriginalURL reads the original request's URL: scheme, host (in its
// one form) and the path the rules see (pathView, with the server's path
// mode). The host and path are read from raw's own text, not from what
// url.Parse decoded, so that a percent-encoded host or path is judged as
// the front door and the app receive it.
func parseOriginalURL(raw, method string, paths pathMode, o *originalRequest) error {
	scheme, authority, rawPath, query, ok := splitPlainURL(raw)
	if !ok {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
			return errors.New("X-Original-URL is not an absolute http(s) URL")
		}
		scheme, query = u.Scheme, u.RawQuery
		authority, rawPath = splitAuthority(raw)
	}
	if err := o.judge(scheme, authority, rawPath, query, method, paths); err != nil {
		return err
	}
	o.raw = raw
	return nil
}

// judge sets o from the original request's parts as sent: the host in its
// one form and the path the rules see (pathView, with the server's path
// mode). o's URL (raw, or authority and target) is the caller's to set.
func (o *originalRequest) judge(scheme, authority, rawPath, query, method string, paths pathMode) error {
	host, err := hostname.Normalize(authority, scheme)
	if err != nil {
		return fmt.Errorf("the original host %q is refused: %w", authority, err)
	}
	p, err := paths.view(rawPath)
	if err != nil {
		return err
	}
	*o = originalRequest{scheme: scheme, rawQuery: query, method: method, host: hostname.Name(host), path: p}
	return nil
}

// splitAuthority returns the authority and the path of raw as written,
// once url.Parse has accepted it as an absolute URL: the authority runs
// from "//" to the first "/", as url.Parse reads it, before any query or
// fragment.
func splitAuthority(raw string) (authority, path string) {
	s, _, _ := strings.Cut(raw, "#")
	s, _, _ = strings.Cut(s, "?")
	if i := strings.Index(s, "//"); i >= 0 {
		s = s[i+2:]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
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
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '/' || c == '?' {
			end = i
			break
		}
	}
	host = rest[:end]
	if !plainHost(host) {
		return "", "", "", "", false
	}
	if path, query, ok = plainTarget(rest[end:]); !ok {
		return "", "", "", "", false
	}
	return scheme, host, path, query, true
}

// plainHost: host is letters, digits, dots and dashes, with an optional
// port (a colon and digits).
func plainHost(host string) bool {
	colon := -1
	for i := 0; i < len(host); i++ {
		switch c := host[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-':
			if colon >= 0 && (c < '0' || c > '9') {
				return false
			}
		case c == ':' && colon < 0:
			colon = i
		default:
			return false
		}
	}
	return host != "" && colon != 0 && colon != len(host)-1
}

// plainTarget splits a path and query of printable ASCII without percent
// escapes, fragment or backslash at the first '?'.
func plainTarget(target string) (path, query string, ok bool) {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '#' || c == '\\' {
			return "", "", false
		}
	}
	path = target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, query = target[:i], target[i+1:]
	}
	return path, query, true
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
