package webhook

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"
)

// pathMode says which original paths are judged and what request.path is.
type pathMode int

const (
	// pathsStrict, the default: request.path is the original path with its
	// percent-escapes decoded, nothing else changed, and a path that
	// servers read differently is refused (403), so that the path the
	// rules see is the path the app serves, whatever the app. Refused:
	//   - encoded slashes, backslashes, dots and semicolons (%2F, %5C, %2E,
	//     %3B, either case): some servers decode them before routing,
	//     others after;
	//   - dot segments ("/./", "/../", a trailing "/." or "/..") and empty
	//     segments ("//"): some servers resolve or merge them, others not;
	//   - ";" (path parameters, "/admin;x=y"): servlet containers drop
	//     ";..." from every segment before routing ("/..;/" is "/../"),
	//     other servers keep it as part of the name;
	//   - double encoding ("%25" followed by two hex digits): a server that
	//     decodes twice reads another path;
	//   - a backslash, control characters (raw or encoded, NUL included),
	//     malformed escapes and bytes that do not decode to UTF-8.
	// For every path accepted, decoding it, resolving it (path.Clean),
	// decoding it again or dropping path parameters gives request.path
	// (up to a trailing slash): FuzzPathView checks it.
	pathsStrict pathMode = iota
	// pathsAmbiguousAllowed (--allow-ambiguous-paths) judges those paths
	// too, as before the strict mode: request.path is the original path
	// percent-decoded, then ";..." dropped from every segment, then dot
	// segments and repeated slashes resolved (path.Clean, a trailing slash
	// kept). Backslashes, control characters, malformed escapes and bytes
	// that are not UTF-8 are still refused. An app that routes on the raw
	// path ("/admin/..%2Fpublic" under /admin) may then be reached with a
	// path the rules read as another one: only for front doors that
	// normalise the path the same way before the app sees it.
	pathsAmbiguousAllowed
)

// Why a path is refused in the strict mode; the body of the 403 says it.
var (
	errPathEncodedDelimiter = errors.New("the original path has an encoded slash, backslash, dot or semicolon (%2F, %5C, %2E, %3B), which servers read differently; it is refused (see --allow-ambiguous-paths)")
	errPathDotSegment       = errors.New("the original path has a dot segment (/./ or /../) or an empty one (//), which servers resolve differently; it is refused (see --allow-ambiguous-paths)")
	errPathParams           = errors.New("the original path has a \";\" (a path parameter), which servlet containers drop and other servers keep; it is refused (see --allow-ambiguous-paths)")
	errPathDoubleEncoded    = errors.New("the original path is encoded twice (%25 followed by an escape), which a server decoding twice reads as another path; it is refused (see --allow-ambiguous-paths)")
	errPathBackslash        = errors.New("the original path has a backslash, which some servers read as a slash; it is refused")
	errPathControl          = errors.New("the original path has a control character, raw or encoded; it is refused")
	errPathEscape           = errors.New("the original path has a malformed percent-escape or bytes that are not UTF-8; it is refused")
)

// view is request.path for the path of the original URL as written (raw,
// undecoded; "" for none), or why the path is refused. An ordinary path
// (no escapes, dots, semicolons or repeated slashes) is returned as is,
// without allocating.
func (m pathMode) view(raw string) (string, error) {
	if raw == "" {
		return "/", nil
	}
	if raw[0] != '/' {
		return "", errors.New("the original path does not start with /")
	}
	if m == pathsAmbiguousAllowed {
		return lenientPath(raw)
	}
	return strictPath(raw)
}

// pathSpecial marks the bytes strictPath looks at; every other byte of a
// path is passed over with one table load.
var pathSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	for c := 0x7f; c < 0x100; c++ {
		t[c] = true
	}
	for _, c := range []byte{'\\', ';', '/', '%'} {
		t[c] = true
	}
	return t
}()

// strictPath is view in the strict mode.
func strictPath(raw string) (string, error) {
	escapes, ascii := false, true
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !pathSpecial[c] {
			continue
		}
		switch {
		case c < 0x20 || c == 0x7f:
			return "", errPathControl
		case c == '\\':
			return "", errPathBackslash
		case c == ';':
			return "", errPathParams
		case c >= 0x80:
			ascii = false
		case c == '/':
			if dotOrEmptySegment(raw[i+1:]) {
				return "", errPathDotSegment
			}
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", errPathEscape
			}
			switch b := unhex(raw[i+1])<<4 | unhex(raw[i+2]); {
			case b == '/' || b == '\\' || b == '.' || b == ';':
				return "", errPathEncodedDelimiter
			case b < 0x20 || b == 0x7f:
				return "", errPathControl
			case b == '%' && i+4 < len(raw) && isHex(raw[i+3]) && isHex(raw[i+4]):
				return "", errPathDoubleEncoded
			case b >= 0x80:
				ascii = false
			}
			escapes = true
			i += 2
		}
	}
	view := raw
	if escapes {
		var err error
		if view, err = url.PathUnescape(raw); err != nil {
			return "", errPathEscape
		}
	}
	if !ascii && !utf8.ValidString(view) {
		return "", errPathEscape
	}
	return view, nil
}

// dotOrEmptySegment says whether the segment rest starts with (the text
// after a slash) is empty, "." or "..". The segment after a final slash is
// not: "/admin/" is a directory, not an empty segment.
func dotOrEmptySegment(rest string) bool {
	switch {
	case rest == "":
		return false
	case rest[0] == '/':
		return true
	case rest[0] != '.':
		return false
	case len(rest) == 1 || rest[1] == '/':
		return true
	}
	return rest[1] == '.' && (len(rest) == 2 || rest[2] == '/')
}

// lenientPath is view with --allow-ambiguous-paths.
func lenientPath(raw string) (string, error) {
	decoded, err := url.PathUnescape(raw)
	if err != nil || !utf8.ValidString(decoded) {
		return "", errPathEscape
	}
	for i := 0; i < len(decoded); i++ {
		switch c := decoded[i]; {
		case c < 0x20 || c == 0x7f:
			return "", errPathControl
		case c == '\\':
			return "", errPathBackslash
		}
	}
	return cleanPath(decoded), nil
}

// cleanPath drops path parameters ("/admin;jsessionid=x", "..;") from each
// segment as Java servlet containers do, then resolves dot segments and
// repeated slashes, so that a rule on "/admin" also sees
// "/public/../admin", "/public/..;/admin" and "/admin;/x".
func cleanPath(p string) string {
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

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
