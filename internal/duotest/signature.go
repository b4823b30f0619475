package duotest

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"sort"
	"strings"
)

// canonicalRequest is the text Duo's v2 request signature covers (Duo Auth
// API, "Authentication"): the Date header, the method in upper case, the
// host in lower case, the path, and the parameters, each key and value
// percent-encoded per RFC 3986, sorted by key then value, joined by '&',
// all five lines joined by '\n'.
func canonicalRequest(date, method, host, path string, params url.Values) string {
	return strings.Join([]string{
		date,
		strings.ToUpper(method),
		strings.ToLower(host),
		path,
		canonicalParams(params),
	}, "\n")
}

func canonicalParams(params url.Values) string {
	type pair struct{ k, v string }
	var pairs []pair
	for k, vs := range params {
		for _, v := range vs {
			pairs = append(pairs, pair{rfc3986Escape(k), rfc3986Escape(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// rfc3986Escape leaves the unreserved characters (A-Z a-z 0-9 - . _ ~)
// and writes every other byte as %XX with upper-case hex.
func rfc3986Escape(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&0x0f])
	}
	return b.String()
}

// signature is the hex HMAC-SHA512 of the canonical request under skey.
func signature(skey, canonical string) string {
	mac := hmac.New(sha512.New, []byte(skey))
	mac.Write([]byte(canonical))
	return hex.EncodeToString(mac.Sum(nil))
}

// Authorization returns the value of the Authorization header Duo expects
// for a request: HTTP Basic with the integration key as user name and the
// signature as password. Tests use it to send hand-made requests.
func Authorization(ikey, skey, date, method, host, path string, params url.Values) string {
	sig := signature(skey, canonicalRequest(date, method, host, path, params))
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(ikey+":"+sig))
}
