package duo

import "strings"

// apiHostDomains are the domains of the API hosts Duo hands out:
// duosecurity.com (commercial), duofederal.com (Duo Federal) and duo.com.
var apiHostDomains = []string{".duosecurity.com", ".duofederal.com", ".duo.com"}

// ValidAPIHost reports whether host looks like a Duo API host:
// "api-" followed by letters and digits, in one of Duo's domains, all
// lower-case, without scheme, port or path, e.g. api-xxxxxxxx.duosecurity.com.
// Clients for other hosts (a private proxy, a test server) can still be
// built with New; this tells a typo from a real account host.
func ValidAPIHost(host string) bool {
	for _, domain := range apiHostDomains {
		label, ok := strings.CutSuffix(host, domain)
		if !ok {
			continue
		}
		id, ok := strings.CutPrefix(label, "api-")
		if !ok || len(id) < 4 || len(id) > 32 {
			return false
		}
		for _, r := range id {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
				return false
			}
		}
		return true
	}
	return false
}
