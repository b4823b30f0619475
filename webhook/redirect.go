package webhook

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// maxRedirectLength bounds the rd parameter; longer values are refused.
const maxRedirectLength = 4096

// maxRedirectDecodings is how many rounds of percent-decoding are looked
// through. A value still changing after that many rounds is refused.
const maxRedirectDecodings = 3

// safeRedirect returns where the browser may be sent after the challenge:
// rd when it points at a host the operator declared (the policy's hosts or
// the cookie domain), otherwise the policy's default target (see
// defaultRedirect). A return address /auth would refuse under paths is
// refused too.
func safeRedirect(rd string, p *policy.CompiledPolicy, cookieDomain, publicURL string, paths pathMode) string {
	var hosts []string
	if p != nil {
		hosts = p.Spec.Hosts
	}
	t := redirectTargets{
		hosts:        hosts,
		cookieDomain: cookieDomain,
		fallback:     defaultRedirect(hosts, publicURL),
	}
	out := t.sanitize(rd)
	// A return address /auth would refuse (a path servers read
	// differently) is not one to take a second factor for.
	var o originalRequest
	if out != t.fallback && strings.Contains(out, "://") && parseOriginalURL(out, http.MethodGet, paths, &o) != nil {
		return t.fallback
	}
	return out
}

// defaultRedirect is where a refused or missing rd leads: the https root of
// the first policy host that is not a wildcard, else the public URL, else
// the root of the challenge server.
func defaultRedirect(hosts []string, publicURL string) string {
	for _, h := range hosts {
		if p, err := hostname.NormalizePattern(h); err == nil && !strings.HasPrefix(p, "*") {
			return "https://" + p + "/"
		}
	}
	if u, err := url.Parse(publicURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil {
		return u.String()
	}
	return "/"
}

// redirectTargets says which rd values are acceptable.
type redirectTargets struct {
	// hosts are the policy's spec.hosts, read as host-based lookup reads
	// them (internal/hostname): "app.example.com" (any port; ":443" and
	// ":80" are the same host), "app.example.com:8443" (that port only) or
	// "*.example.com" (every host under example.com).
	hosts []string
	// cookieDomain accepts itself and every subdomain.
	cookieDomain string
	// fallback is returned for anything refused.
	fallback string
}

// sanitizeRedirect is redirectTargets.sanitize as a plain function.
func sanitizeRedirect(rd string, hosts []string, cookieDomain, fallback string) string {
	return redirectTargets{hosts: hosts, cookieDomain: cookieDomain, fallback: fallback}.sanitize(rd)
}

// sanitize returns rd, normalised, when it is an absolute http(s) URL of an
// allowed host or a path-only URL (resolved against the fallback, so it
// lands on the same site); otherwise the fallback.
//
// Browsers are lenient where url.Parse is strict and the other way round
// (backslashes as slashes, tabs and newlines dropped, "https:/host",
// percent-encoded delimiters decoded by some hop), so rather than guess how
// a client will read an odd URL, anything odd is refused: whitespace,
// control and format characters, backslashes, userinfo, percent signs in the
// authority, non-ASCII hosts that are not declared as such, and any value
// whose percent-decoded forms would point elsewhere.
func (t redirectTargets) sanitize(rd string) string {
	out, ok := t.check(rd)
	if !ok {
		return t.fallback
	}
	return out
}

func (t redirectTargets) check(rd string) (string, bool) {
	if rd == "" || len(rd) > maxRedirectLength || !cleanRedirectChars(rd, false) {
		return "", false
	}
	if strings.HasPrefix(rd, "/") {
		return t.checkPath(rd)
	}
	return t.checkAbsolute(rd)
}

// checkPath accepts "/path?query#fragment" and resolves it against the
// fallback.
func (t redirectTargets) checkPath(rd string) (string, bool) {
	if !pathOnly(rd) {
		return "", false
	}
	decoded, ok := decodings(rd)
	if !ok {
		return "", false
	}
	for _, d := range decoded {
		if !cleanRedirectChars(d, true) || !pathOnly(d) {
			return "", false
		}
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	base, err := url.Parse(t.fallback)
	if err != nil {
		return "", false
	}
	return base.ResolveReference(u).String(), true
}

// pathOnly reports whether s starts with exactly one slash: "//host" and
// "/\host" are network-path references to another host.
func pathOnly(s string) bool {
	return len(s) > 0 && s[0] == '/' && (len(s) == 1 || (s[1] != '/' && s[1] != '\\'))
}

// checkAbsolute accepts "http(s)://host[:port]/..." for an allowed host.
func (t redirectTargets) checkAbsolute(rd string) (string, bool) {
	colon := strings.IndexByte(rd, ':')
	if colon <= 0 {
		return "", false
	}
	scheme := strings.ToLower(rd[:colon])
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	rest := rd[colon+1:]
	if !strings.HasPrefix(rest, "//") {
		// "https:host" and "https:/host" are read as https://host by browsers.
		return "", false
	}
	authority := authorityOf(rest)
	if authority == "" || strings.ContainsAny(authority, "@%") {
		return "", false
	}
	decoded, ok := decodings(rd)
	if !ok {
		return "", false
	}
	for _, d := range decoded[1:] {
		// Once decoded, the value must still name the same authority.
		if !cleanRedirectChars(d, true) || len(d) < colon+1 || authorityOf(d[colon+1:]) != authority {
			return "", false
		}
	}
	u, err := url.Parse(scheme + ":" + rest)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" {
		return "", false
	}
	if !strings.EqualFold(u.Host, authority) {
		return "", false
	}
	host, err := hostname.Normalize(authority, scheme)
	if err != nil || !t.allowedHost(host) {
		return "", false
	}
	// Rebuilt by hand with the host in its one form (url.URL.String
	// would percent-encode a non-ASCII one).
	u.Scheme, u.Host = "", ""
	return scheme + "://" + host + u.String(), true
}

// authorityOf returns the authority of "//authority/path...".
func authorityOf(rest string) string {
	if !strings.HasPrefix(rest, "//") {
		return ""
	}
	a := rest[2:]
	if i := strings.IndexAny(a, "/?#\\"); i >= 0 {
		a = a[:i]
	}
	return a
}

// allowedHost reports whether host (normalised, with its port when it is
// not the default) is declared: a policy host, or the cookie domain or one
// of its subdomains. The labels a wildcard or the cookie domain adds must
// not be internationalised ("xn--"), so that a look-alike of a declared
// name ("аdmin" in Cyrillic) never passes; an internationalised host is
// allowed where a policy lists it.
func (t redirectTargets) allowedHost(host string) bool {
	name, port := hostname.Name(host), hostname.Port(host)
	for _, h := range t.hosts {
		p, err := hostname.NormalizePattern(h)
		if err != nil {
			continue
		}
		if pp := hostname.Port(p); pp != "" && pp != port {
			continue
		}
		pattern := hostname.Name(p)
		if pattern == name || hostname.Match(pattern, name) && asciiLabels(name[:len(name)-len(pattern)+1]) {
			return true
		}
	}
	d := strings.TrimPrefix(strings.TrimSpace(t.cookieDomain), ".")
	if d == "" {
		return false
	}
	domain, err := hostname.Normalize(d, "")
	if err != nil {
		return false
	}
	domain = hostname.Name(domain)
	return name == domain || hostname.Match("*."+domain, name) && asciiLabels(name[:len(name)-len(domain)])
}

// asciiLabels says whether no label of the host name part s is
// internationalised.
func asciiLabels(s string) bool {
	return !strings.HasPrefix(s, "xn--") && !strings.Contains(s, ".xn--")
}

// decodings returns s followed by each distinct percent-decoding of it.
// It fails on a malformed escape or on a value that is still changing after
// maxRedirectDecodings rounds.
func decodings(s string) ([]string, bool) {
	out := []string{s}
	cur := s
	for range maxRedirectDecodings {
		d, err := url.PathUnescape(cur)
		if err != nil {
			return nil, false
		}
		if d == cur {
			return out, true
		}
		out = append(out, d)
		cur = d
	}
	return nil, false
}

// cleanRedirectChars refuses invalid UTF-8, backslashes, control and format
// characters (bidi overrides, zero-width characters) and whitespace.
// decoded relaxes the rule for a plain space, which "%20" legitimately
// decodes to.
func cleanRedirectChars(s string, decoded bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == ' ' && decoded:
		case r == '\\', r < 0x20, r == 0x7f, r == ' ':
			return false
		case r >= 0x80 && (unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError):
			return false
		}
	}
	return true
}
