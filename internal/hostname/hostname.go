// Package hostname is the one normalisation of host names: the challenge
// server's host lookup, the rules' request.host, the redirect check and the
// controller's conflict check all read hosts through it, so that two spellings
// of one host can never be told apart by one of them and not by another.
package hostname

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// The one form of a host:
//   - ASCII letters lower-cased;
//   - exactly one trailing dot removed ("admin.example.com." is
//     "admin.example.com"; two dots are refused);
//   - the scheme's default port removed (":443" for https, ":80" for http,
//     both for a policy host, which names no scheme); other ports are kept
//     as written, without leading zeros;
//   - internationalised names in their ASCII (punycode) form: "bücher.example"
//     is "xn--bcher-kva.example". Unicode must already be in the form a
//     registry would accept (IDNA2008, no mapping): upper-case or full-width
//     letters, look-alike dots and anything else a browser would have to map
//     first are refused, as are "xn--" labels that do not decode;
//   - IPv4 addresses in dotted decimal only (no "0x7f.1", "2130706433" or
//     leading zeros), IPv6 addresses bracketed and in their canonical text.
//
// Anything else is refused rather than guessed at: an empty host or label,
// spaces, control characters, "@", "/", "\", "%", "?", "#", a bad port.

// maxName bounds a host name, as DNS does.
const (
	maxName  = 253
	maxLabel = 63
)

// registration converts internationalised names: the strict IDNA2008
// profile, which maps nothing and refuses what would need mapping.
var registration = idna.Registration

// Normalize returns the one form of hostport, a host with or without a
// port, as a URL authority, a Host header or a policy's spec.hosts gives
// it. scheme is "http" or "https", whose default port is dropped, or ""
// (a policy host) to drop both 80 and 443. A host already in its one form
// is returned as is, without allocating.
func Normalize(hostport, scheme string) (string, error) {
	name, port, err := split(hostport)
	if err != nil {
		return "", err
	}
	n, err := normalizeName(name)
	if err != nil {
		return "", err
	}
	if port == "" || isDefaultPort(port, scheme) {
		return n, nil
	}
	if len(hostport) == len(n)+1+len(port) && hostport[:len(n)] == n {
		return hostport, nil
	}
	return n + ":" + port, nil
}

// NormalizePattern is Normalize for a policy host, which may also be a
// wildcard: "*.corp.example.com" names every host under corp.example.com,
// at any depth, but not corp.example.com itself. A wildcard needs at least
// two labels after "*." ("*.com" would claim a whole top-level domain) and
// cannot be an address.
func NormalizePattern(h string) (string, error) {
	rest, wild := strings.CutPrefix(h, "*.")
	n, err := Normalize(rest, "")
	if err != nil {
		return "", err
	}
	if !wild {
		return n, nil
	}
	name := Name(n)
	switch {
	case strings.HasPrefix(name, "["), isNumeric(lastLabel(name)):
		return "", errors.New("a wildcard cannot be an address")
	case !strings.Contains(name, "."):
		return "", fmt.Errorf("wildcard %q is too wide: name at least two labels after \"*.\"", h)
	}
	if len(h) == 2+len(n) && h[2:] == n {
		return h, nil
	}
	return "*." + n, nil
}

// Name returns a normalised host (or pattern) without its port.
func Name(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		return h[:i]
	}
	return h
}

// Port returns the port of a normalised host, "" when it has none.
func Port(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		return h[i+1:]
	}
	return ""
}

func isDefaultPort(port, scheme string) bool {
	switch scheme {
	case "http":
		return port == "80"
	case "https":
		return port == "443"
	case "":
		return port == "80" || port == "443"
	}
	return false
}

// split cuts "name", "name:port", "[v6]" or "[v6]:port". The port must be
// 1 to 65535 in decimal without a leading zero.
func split(hostport string) (name, port string, err error) {
	if hostport == "" {
		return "", "", errors.New("the host is empty")
	}
	if hostport[0] == '[' {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", "", errors.New("the host has \"[\" without \"]\"")
		}
		name, rest := hostport[:end+1], hostport[end+1:]
		if rest == "" {
			return name, "", nil
		}
		if rest[0] != ':' {
			return "", "", errors.New("the host has something other than a port after \"]\"")
		}
		return name, rest[1:], checkPort(rest[1:])
	}
	i := strings.IndexByte(hostport, ':')
	if i < 0 {
		return hostport, "", nil
	}
	if strings.IndexByte(hostport[i+1:], ':') >= 0 {
		return "", "", errors.New("the host has more than one \":\" (an IPv6 address must be bracketed)")
	}
	return hostport[:i], hostport[i+1:], checkPort(hostport[i+1:])
}

func checkPort(p string) error {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		n = n*10 + int(p[i]-'0')
	}
	if n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// Classes of the bytes of a host name.
const (
	classBad = iota
	className
	classUpper
	classDot
	classHigh
)

// nameClass is the class of each byte in a host name.
var nameClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = className
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = className
	}
	t['-'], t['_'] = className, className
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = classUpper
	}
	t['.'] = classDot
	for c := 0x80; c < 0x100; c++ {
		t[c] = classHigh
	}
	return t
}()

// normalizeName is the one form of a host name without its port.
func normalizeName(name string) (string, error) {
	if name == "" {
		return "", errors.New("the host name is empty")
	}
	if name[0] == '[' {
		return normalizeIPv6(name)
	}
	if strings.HasSuffix(name, ".") {
		name = name[:len(name)-1]
	}
	if name == "" || len(name) > 4*maxName {
		return "", errors.New("the host name is empty or far too long")
	}
	// One pass: the characters, the labels' lengths and whether a label is
	// an internationalised one ("xn--"), so that an ordinary name costs no
	// second look.
	// (Runs of letters, digits and hyphens, nearly all of every name, are
	// skipped by plainRun; "xn--" is looked for where labels start.)
	ascii, upper, badLabel := true, false, false
	idn := hasIDNPrefix(name)
	label := 0
	for i := 0; i < len(name); i++ {
		run := plainRun(name[i:])
		label += run
		if i += run; i == len(name) {
			break
		}
		switch c := name[i]; nameClass[c] {
		case classDot:
			badLabel = badLabel || label == 0 || label > maxLabel
			label = 0
			idn = idn || hasIDNPrefix(name[i+1:])
			continue
		case classUpper:
			upper = true
		case classHigh:
			ascii = false
		default:
			return "", fmt.Errorf("the host has a character %q that no host name has", c)
		}
		label++
	}
	badLabel = badLabel || label > maxLabel
	badLabel = badLabel || label == 0
	if upper {
		name = lowerASCII(name)
	}
	if !ascii || idn {
		return normalizeIDN(name)
	}
	if badLabel || len(name) > maxName {
		if err := checkLabels(name); err != nil {
			return "", err
		}
	}
	if isNumeric(lastLabel(name)) {
		// Browsers and resolvers read a name ending in a number as an IPv4
		// address, in forms (octal, hex, one number) that would escape a
		// comparison of the text: only the plain dotted form is accepted.
		a, err := netip.ParseAddr(name)
		if err != nil || !a.Is4() || a.String() != name {
			return "", errors.New("a host ending in a number must be an IPv4 address in dotted decimal")
		}
	}
	return name, nil
}

// plainRun is the length of the run of className bytes at the start of s.
func plainRun(s string) int {
	for i := 0; i < len(s); i++ {
		if nameClass[s[i]] != className {
			return i
		}
	}
	return len(s)
}

// hasIDNPrefix says whether the label at the start of s is an
// internationalised one: "xn--", in any case.
func hasIDNPrefix(s string) bool {
	return len(s) >= 4 && s[0]|0x20 == 'x' && s[1]|0x20 == 'n' && s[2] == '-' && s[3] == '-'
}

func normalizeIPv6(name string) (string, error) {
	a, err := netip.ParseAddr(name[1 : len(name)-1])
	if err != nil || !a.Is6() || a.Zone() != "" {
		return "", errors.New("the host in brackets is not an IPv6 address")
	}
	if s := a.String(); s != name[1:len(name)-1] {
		return "[" + s + "]", nil
	}
	return name, nil
}

// normalizeIDN converts an internationalised name, name already lower-cased
// in its ASCII letters, to punycode, refusing what does not convert or
// does not convert back to itself.
func normalizeIDN(name string) (string, error) {
	a, err := registration.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("the host is not a valid internationalised name: %v", err)
	}
	u, err := registration.ToUnicode(a)
	if err != nil {
		return "", fmt.Errorf("the host is not a valid internationalised name: %v", err)
	}
	if again, err := registration.ToASCII(u); err != nil || again != a {
		return "", errors.New("the host is not a valid internationalised name: it has more than one ASCII form")
	}
	if err := checkLabels(a); err != nil {
		return "", err
	}
	return a, nil
}

func checkLabels(name string) error {
	if len(name) > maxName {
		return fmt.Errorf("the host name is longer than %d characters", maxName)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("the host name has an empty label (two dots in a row, or a leading dot)")
		}
		if len(label) > maxLabel {
			return fmt.Errorf("the host name has a label longer than %d characters", maxLabel)
		}
	}
	return nil
}

func lastLabel(name string) string {
	return name[strings.LastIndexByte(name, '.')+1:]
}

// isNumeric says whether a label reads as a number: decimal digits, or
// "0x" and hex digits.
func isNumeric(label string) bool {
	if label == "" {
		return false
	}
	digits := label
	if len(label) > 1 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		digits = label[2:]
		for i := 0; i < len(digits); i++ {
			if c := digits[i] | 0x20; !('0' <= digits[i] && digits[i] <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
