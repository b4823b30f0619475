package webhook

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/internal/hostname"
)

var testRedirectTargets = redirectTargets{
	hosts:        []string{"admin.example.com", "*.apps.example.net", "legacy.example.net:8443"},
	cookieDomain: "example.com",
	fallback:     "https://admin.example.com/",
}

const redirectFallback = "https://admin.example.com/"

func TestSanitizeRedirectAcceptsDeclaredTargets(t *testing.T) {
	cases := []struct {
		name, rd, want string
	}{
		{"policy host", "https://admin.example.com/users?page=2", "https://admin.example.com/users?page=2"},
		{"policy host over http", "http://admin.example.com/", "http://admin.example.com/"},
		{"policy host with another port", "https://admin.example.com:8080/x", "https://admin.example.com:8080/x"},
		{"fragment", "https://admin.example.com/app#/settings?tab=1", "https://admin.example.com/app#/settings?tab=1"},
		{"wildcard host, one label", "https://grafana.apps.example.net/d/abc", "https://grafana.apps.example.net/d/abc"},
		{"wildcard host, two labels: the wildcard serves it on /auth too", "https://a.b.apps.example.net/", "https://a.b.apps.example.net/"},
		{"trailing dot: the same host, in its one form", "https://admin.example.com./x", "https://admin.example.com/x"},
		{"default port: the same host, in its one form", "https://admin.example.com:443/x", "https://admin.example.com/x"},
		{"host with its declared port", "https://legacy.example.net:8443/login", "https://legacy.example.net:8443/login"},
		{"cookie domain itself", "https://example.com/", "https://example.com/"},
		{"cookie domain subdomain", "https://wiki.team.example.com/page", "https://wiki.team.example.com/page"},
		{"mixed-case scheme and host are normalised", "HtTpS://ADMIN.Example.COM/Path", "https://admin.example.com/Path"},
		{"encoded space in the path", "https://admin.example.com/my%20doc", "https://admin.example.com/my%20doc"},
		{"encoded query", "https://admin.example.com/s?q=a%26b%3Dc", "https://admin.example.com/s?q=a%26b%3Dc"},
		{"encoded slash inside an absolute path", "https://admin.example.com/a%2Fb", "https://admin.example.com/a%2Fb"},
		{"path only, resolved against the default host", "/reports/2026?x=1#top", "https://admin.example.com/reports/2026?x=1#top"},
		{"root path", "/", "https://admin.example.com/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(testRedirectTargets.sanitize(tc.rd)).To(Equal(tc.want))
		})
	}
}

func TestSanitizeRedirectRefusesEverythingElse(t *testing.T) {
	classes := map[string][]string{
		"empty or too long": {"", "https://admin.example.com/" + strings.Repeat("a", maxRedirectLength)},
		"other hosts": {
			"https://evil.com/", "https://admin.example.com.evil.com/", "https://evilexample.com/",
			"https://example.com.evil/", "https://apps.example.net/", "https://apps.example.net.evil.com/",
			"https://legacy.example.net/", "https://legacy.example.net:9443/", "https://admin.example.com../", "https://.admin.example.com/",
			"https://127.0.0.1/", "https://[::1]/", "https://2130706433/",
		},
		"network-path references": {"//evil.com", "//evil.com/path", "///evil.com", "////evil.com", "//admin.example.com@evil.com"},
		"backslashes":             {"/\\evil.com", "\\/evil.com", "\\\\evil.com", "https://admin.example.com\\@evil.com/", "https:\\\\evil.com", "/a\\b"},
		"userinfo": {
			"https://admin.example.com@evil.com/", "https://user:pass@admin.example.com/", "https://@admin.example.com/",
			"https://evil.com%40admin.example.com/", "https://admin.example.com:443@evil.com/",
		},
		"encoded slashes and backslashes": {
			"/%2f%2fevil.com", "/%2F/evil.com", "/%5cevil.com", "/%5C%5Cevil.com", "%2f%2fevil.com",
			"https://admin.example.com%2f@evil.com/", "https://evil.com%2fadmin.example.com/", "https://admin.example.com/%5c",
		},
		"double-encoded": {
			"/%252f%252fevil.com", "/%255cevil.com", "/%25252f%25252fevil.com", "%252f%252fevil.com",
			"https://admin.example.com/%255c", "/%2525252f",
		},
		"malformed escapes": {"/%zz", "https://admin.example.com/%", "/100%"},
		"whitespace and control characters": {
			" https://admin.example.com/", "https://admin.example.com/ ", "/\t/evil.com", "/\n/evil.com", "https://admin.example.com/a\rb",
			"\x00/evil", "/a\x7fb", "https://admin.example.com/\u2028", "https://admin.example.com/\u00a0", "/%0d%0aSet-Cookie:x",
			"/%09/evil.com", "https://admin.example.com/%00", "/\u200b/evil.com", "https://admin.example.com/\u202e",
		},
		"scripts and other schemes": {
			"javascript:alert(1)", "JaVaScRiPt:alert(1)", "javascript://admin.example.com/%0aalert(1)", "data:text/html,<script>x</script>",
			"vbscript:x", "file:///etc/passwd", "ftp://admin.example.com/", "mailto:a@example.com", "httpx://admin.example.com/",
		},
		"scheme without an authority":      {"https:evil.com", "https:/evil.com", "https:///evil.com", "http:admin.example.com"},
		"relative without a leading slash": {"evil.com", "admin.example.com/x", "./x", "../x", "?x=1", "#frag"},
		"IDN look-alikes": {
			"https://аdmin.example.com/", "https://admin.exаmple.com/", "https://ａdmin.example.com/", "https://admin。example.com/",
			"https://xn--dmin-5cd.example.net/", "https://admin.example.com／evil.com/", "https://wiki.ехample.com/",
		},
		"percent in the host": {"https://adm%69n.example.com/", "https://[fe80::1%25en0]/"},
		"bad ports":           {"https://admin.example.com:0/", "https://admin.example.com:65536/", "https://admin.example.com:08/", "https://admin.example.com:/", "https://admin.example.com:x/", "https://admin.example.com:1:2/"},
		"invalid UTF-8":       {"/\xff", "https://admin.example.com/\xc3"},
	}
	for class, rds := range classes {
		t.Run(class, func(t *testing.T) {
			g := NewWithT(t)
			for _, rd := range rds {
				g.Expect(testRedirectTargets.sanitize(rd)).To(Equal(redirectFallback), "rd %q", rd)
			}
		})
	}
}

func TestSanitizeRedirectAcceptsADeclaredNonASCIIHostOnlyExactly(t *testing.T) {
	g := NewWithT(t)
	targets := redirectTargets{hosts: []string{"bücher.example", "*.apps.example"}, cookieDomain: "example.org", fallback: redirectFallback}
	// Unicode and punycode are one host, given back in punycode.
	g.Expect(targets.sanitize("https://bücher.example/")).To(Equal("https://xn--bcher-kva.example/"))
	g.Expect(targets.sanitize("https://xn--bcher-kva.example/")).To(Equal("https://xn--bcher-kva.example/"))
	g.Expect(targets.sanitize("https://bûcher.example/")).To(Equal(redirectFallback))
	// A wildcard or the cookie domain never adds an internationalised label.
	g.Expect(targets.sanitize("https://bücher.apps.example/")).To(Equal(redirectFallback))
	g.Expect(targets.sanitize("https://аpp.example.org/")).To(Equal(redirectFallback))
	g.Expect(targets.sanitize("https://app.example.org/")).To(Equal("https://app.example.org/"))
}

func TestSanitizeRedirectWithoutCookieDomainAllowsPolicyHostsOnly(t *testing.T) {
	g := NewWithT(t)
	targets := redirectTargets{hosts: []string{"admin.example.com"}, fallback: redirectFallback}
	g.Expect(targets.sanitize("https://admin.example.com/x")).To(Equal("https://admin.example.com/x"))
	g.Expect(targets.sanitize("https://other.example.com/x")).To(Equal(redirectFallback))
}

func TestSanitizeRedirectCookieDomainWithLeadingDot(t *testing.T) {
	g := NewWithT(t)
	g.Expect(sanitizeRedirect("https://a.example.org/", nil, ".Example.org", redirectFallback)).To(Equal("https://a.example.org/"))
	g.Expect(sanitizeRedirect("https://example.org.evil/", nil, ".example.org", redirectFallback)).To(Equal(redirectFallback))
}

func TestDefaultRedirect(t *testing.T) {
	cases := []struct {
		name      string
		hosts     []string
		publicURL string
		want      string
	}{
		{"first host that is not a wildcard", []string{"*.apps.example.com", "Admin.example.com", "b.example.com"}, "https://auth.example.com", "https://admin.example.com/"},
		{"host with a port", []string{"app.example.com:8443"}, "", "https://app.example.com:8443/"},
		{"only wildcards: the public URL", []string{"*.apps.example.com"}, "https://auth.example.com/mfa", "https://auth.example.com/mfa"},
		{"no hosts: the public URL", nil, "https://auth.example.com", "https://auth.example.com"},
		{"nothing: the server root", nil, "", "/"},
		{"a public URL that is not http(s) is ignored", nil, "javascript:alert(1)", "/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(defaultRedirect(tc.hosts, tc.publicURL)).To(Equal(tc.want))
		})
	}
}

func FuzzSafeRedirect(f *testing.F) {
	for _, seed := range []string{
		"https://admin.example.com/x", "/path?q=1#f", "//evil.com", "/\\evil.com", "https://admin.example.com@evil.com",
		"/%2f%2fevil.com", "/%252f%252fevil.com", "HTTPS://GRAFANA.APPS.EXAMPLE.NET/", "javascript:alert(1)",
		"https://аdmin.example.com/", "https:/evil.com", "https://wiki.example.com:443/a%20b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := testRedirectTargets.sanitize(rd)
		if got == testRedirectTargets.fallback {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("sanitize(%q) = %q, which does not parse: %v", rd, got, err)
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			t.Fatalf("sanitize(%q) = %q: scheme %q", rd, got, u.Scheme)
		}
		if u.User != nil || u.Opaque != "" {
			t.Fatalf("sanitize(%q) = %q: userinfo or opaque part", rd, got)
		}
		host, err := hostname.Normalize(u.Host, u.Scheme)
		if err != nil || host != u.Host || !testRedirectTargets.allowedHost(host) {
			t.Fatalf("sanitize(%q) = %q: host %q is not allowed", rd, got, u.Host)
		}
		for _, r := range got {
			if r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) {
				t.Fatalf("sanitize(%q) = %q: contains %q", rd, got, r)
			}
		}
		// The result is stable: sanitizing it again changes nothing.
		if again := testRedirectTargets.sanitize(got); again != got {
			t.Fatalf("sanitize(%q) = %q, but sanitize(%q) = %q", rd, got, got, again)
		}
	})
}
