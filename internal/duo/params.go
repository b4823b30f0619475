package duo

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxPushInfoBytes: Duo takes a URL-encoded pushinfo of less than 20,000
// bytes.
const maxPushInfoBytes = 20000

// maxUsernameBytes bounds a username sent to Duo.
const maxUsernameBytes = 256

func setUsername(op string, params url.Values, username string) error {
	if err := checkText(op, "username", username, maxUsernameBytes); err != nil {
		return err
	}
	params.Set("username", username)
	return nil
}

// setIPAddr sets ipaddr when given; an IPv4-mapped IPv6 address is sent as
// IPv4, as Duo's policies and logs expect.
func setIPAddr(op string, params url.Values, ipaddr string) error {
	if ipaddr == "" {
		return nil
	}
	addr, err := netip.ParseAddr(ipaddr)
	if err != nil || addr.Zone() != "" {
		return &InputError{Op: op, Field: "ipaddr", Reason: fmt.Sprintf("%q is not an IP address", ipaddr)}
	}
	params.Set("ipaddr", addr.Unmap().String())
	return nil
}

// checkText refuses an empty value, invalid UTF-8, control characters and
// values longer than max bytes.
func checkText(op, field, value string, max int) error {
	switch {
	case value == "":
		return &InputError{Op: op, Field: field, Reason: "is empty"}
	case len(value) > max:
		return &InputError{Op: op, Field: field, Reason: fmt.Sprintf("is longer than %d bytes", max)}
	case !utf8.ValidString(value):
		return &InputError{Op: op, Field: field, Reason: "is not valid UTF-8"}
	case strings.IndexFunc(value, unicode.IsControl) >= 0:
		return &InputError{Op: op, Field: field, Reason: "holds a control character"}
	}
	return nil
}

// encodePushInfo URL-encodes pushinfo as Duo documents it
// (from=login%20portal&domain=example.com): keys sorted, spaces as %20.
func encodePushInfo(info url.Values) string {
	// Encode writes a space as '+' and a literal '+' as %2B, so this
	// replacement only touches spaces.
	return strings.ReplaceAll(info.Encode(), "+", "%20")
}
