package webhook

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// Fuzz targets for what the front door and the browser hand the challenge
// server: cookies, the original URL and method, forwarded client
// addresses, identity headers and JWTs. None may panic, none may be
// answered with anything but 200, 401 or 403, and none may let through
// what a genuine cookie or token does not. (rd is fuzzed by
// FuzzSafeRedirect in redirect_test.go.) hack/fuzz.sh runs each for a
// while; `go test` runs their seeds, here and in testdata/fuzz.

// FuzzSessionCookie sends arbitrary Cookie headers with ana's identity to
// a RequireMFA rule: only a value that decodes to the sealed bytes of a
// cookie the server issued may pass.
func FuzzSessionCookie(f *testing.F) {
	fx := newCoreServer(f, coreAdminPolicyYAML, func(o *Options) { o.Logger = discardLogger() })
	issued := fx.issue(headerIdentity(ana), "apps", "admin", "billing", "apps/google-authenticator", session.Verified)
	genuine := map[string][]byte{}
	var line []string
	for _, c := range issued {
		b, err := base64.RawURLEncoding.DecodeString(c.Value)
		if err != nil {
			f.Fatal(err)
		}
		genuine[c.Name] = b
		line = append(line, c.Name+"="+c.Value)
	}
	whole := strings.Join(line, "; ")
	sess := line[0]
	for _, seed := range []string{
		whole, sess, sess[:len(sess)-1], sess + "A", `mfa_session="` + strings.TrimPrefix(sess, "mfa_session=") + `"`,
		"other=1; " + whole, "mfa_session=; mfa_remember=", "mfa_session=" + strings.Repeat("A", 200),
		"mfa_session=x; mfa_session=y; mfa_session=z; mfa_session=w; " + sess, strings.Repeat("mfa_session=AQIDBAUGBwgJ; ", 20) + sess, ";;;=;", "mfa_session2=" + strings.TrimPrefix(sess, "mfa_session="),
		" MFA_SESSION=" + strings.TrimPrefix(sess, "mfa_session="), "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cookie string) {
		r := authRequest("/auth/apps/admin", "https://admin.example.com/billing", map[string]string{"X-Auth-Request-Email": ana})
		r.Header["Cookie"] = []string{cookie}
		w := fx.serve(r)
		if w.Code != http.StatusOK && w.Code != http.StatusUnauthorized {
			t.Fatalf("Cookie %q: status %d", cookie, w.Code)
		}
		opened := false
		kr := fx.s.config.snapshot().Keyring
		for _, name := range []string{session.CookieName, session.RememberCookieName} {
			var values [session.MaxValuesPerName]string
			n := session.CookieValues(r, name, values[:])
			for _, v := range values[:n] {
				b, err := base64.RawURLEncoding.DecodeString(v)
				if err != nil {
					continue
				}
				if _, err := kr.Open(keyring.PurposeCookie, b, []byte(name)); err != nil {
					continue
				}
				if string(b) != string(genuine[name]) {
					t.Fatalf("cookie %s=%q opened but is not the issued one", name, v)
				}
				opened = true
			}
		}
		if w.Code == http.StatusOK && !opened {
			t.Fatalf("Cookie %q: allowed without an issued cookie", cookie)
		}
	})
}

// FuzzOriginalRequest sends arbitrary X-Original-URL and X-Original-Method
// for a user without a cookie: the only answers are 403 (cannot judge or
// denied), 401 (to the challenge, naming the URL) and 200 where the policy
// allows: the /public rule, or the default for OPTIONS.
func FuzzOriginalRequest(f *testing.F) {
	fx := newCoreServer(f, coreAdminPolicyYAML, func(o *Options) { o.Logger = discardLogger() })
	for _, seed := range [][2]string{
		{"https://admin.example.com/public/x", "GET"}, {"https://admin.example.com/billing", "GET"}, {"https://admin.example.com/", "OPTIONS"},
		{"https://admin.example.com/public/../billing", "GET"}, {"https://admin.example.com/public/%2e%2e/billing", "GET"},
		{"https://admin.example.com/public%2f..%2fbilling", "GET"}, {"https://admin.example.com//public", "GET"},
		{"https://user:pw@admin.example.com/public", "GET"}, {"//admin.example.com/public", "GET"}, {"/public", "GET"},
		{"HTTPS://ADMIN.EXAMPLE.COM/public", "get"}, {"https://admin.example.com:443/public?x#y", "HEAD"},
		{"https://admin.example.com/%", "GET"}, {"ftp://admin.example.com/public", "GET"}, {"https://[::1]/public", "GET"},
		{"https://admin.example.com/public/..", "GET"}, {"https://admin.example.com/./public/./../public", "GET"}, {"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, raw, method string) {
		var o originalRequest
		parsed := parseOriginalURL(raw, method, pathsStrict, &o) == nil
		if parsed {
			if o.scheme != "http" && o.scheme != "https" || o.host == "" || strings.ContainsAny(o.host, "@:%/") && !strings.HasPrefix(o.host, "[") {
				t.Fatalf("parseOriginalURL(%q) accepted scheme %q host %q", raw, o.scheme, o.host)
			}
			if !strings.HasPrefix(o.path, "/") || cleanPath(o.path) != o.path || strings.Contains(o.path, "//") ||
				strings.Contains(o.path+"/", "/../") || strings.Contains(o.path+"/", "/./") {
				t.Fatalf("parseOriginalURL(%q): path %q is not clean", raw, o.path)
			}
		}
		for _, path := range []string{"/auth/apps/admin", "/auth"} {
			r := authRequest(path, "", map[string]string{"X-Auth-Request-Email": ana})
			r.Header["X-Original-Url"] = []string{raw}
			r.Header["X-Original-Method"] = []string{method}
			w := fx.serve(r)
			switch w.Code {
			case http.StatusForbidden:
			case http.StatusUnauthorized:
				want := "https://auth.example.com/challenge/apps/admin?rd=" + url.QueryEscape(strings.TrimSpace(raw))
				if got := w.Header().Get("Location"); got != want {
					t.Fatalf("%s, X-Original-URL %q: Location %q, want %q", path, raw, got, want)
				}
			case http.StatusOK:
				var o originalRequest
				if parseOriginalURL(strings.TrimSpace(raw), strings.TrimSpace(method), pathsStrict, &o) != nil {
					t.Fatalf("%s: allowed an X-Original-URL that does not parse: %q", path, raw)
				}
				if !strings.HasPrefix(o.path, "/public") && o.method != "OPTIONS" {
					t.Fatalf("%s: allowed %s %q (path %q) without a second factor", path, method, raw, o.path)
				}
				if path == "/auth" && o.host != "admin.example.com" {
					t.Fatalf("/auth: allowed host %q, which no policy lists", o.host)
				}
			default:
				t.Fatalf("%s, X-Original-URL %q, method %q: status %d", path, raw, method, w.Code)
			}
		}
	})
}

// FuzzSplitPlainURL: whatever the fast reading of an original URL accepts,
// url.Parse reads the same way.
func FuzzSplitPlainURL(f *testing.F) {
	for _, seed := range []string{
		"https://admin.example.com/public/x", "http://a.example.com:8080/x?y=1&z", "https://Admin.Example.COM",
		"https://a.example.com?q", "https://a.example.com:/x", "https://a:b:80/", "https://:80/", "https://a.example.com/%41",
		"https://a.example.com/x#f", "https://user@a.example.com/", "https://[::1]:8443/", "HTTPS://a.example.com/",
		"https://a.example.com/a b", "https://a.example.com/a\\b", "https://a_b.example.com/", "https://a.example.com:99999999999999999999/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		scheme, host, path, query, ok := splitPlainURL(raw)
		if !ok {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("splitPlainURL(%q) accepted what url.Parse refuses: %v", raw, err)
		}
		got := []string{scheme, host, path, query}
		want := []string{u.Scheme, u.Host, u.Path, u.RawQuery}
		if !slices.Equal(got, want) || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("splitPlainURL(%q) = %q, url.Parse: %q (user %v, fragment %q, opaque %q)", raw, got, want, u.User, u.Fragment, u.Opaque)
		}
	})
}

// FuzzClientAddress sends arbitrary X-Real-IP and X-Forwarded-For (two
// header lines) from a trusted proxy and from an untrusted peer: an
// untrusted peer's headers are never believed, and a trusted proxy's
// answer is an address its headers name, or none.
func FuzzClientAddress(f *testing.F) {
	fx := newCoreServer(f, "", func(o *Options) {
		o.Logger = discardLogger()
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("fd00::/8")}
	})
	for _, seed := range [][3]string{
		{"198.51.100.20", "", ""}, {"", "1.1.1.1, 198.51.100.20, 10.9.0.7", ""}, {"", "10.0.0.1", "198.51.100.20"},
		{"nope", "198.51.100.20", ""}, {"::ffff:198.51.100.20", "", ""}, {"", "1.1.1.1, not-an-ip, 10.9.0.7", ""},
		{"", "10.9.0.7, 10.9.0.8", ""}, {"", " , ,", ""}, {"fe80::1%eth0", "", ""}, {"", "[::1]:80", "198.51.100.20:443"},
		{"10.1.2.3", "", ""}, {"", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], true)
		f.Add(seed[0], seed[1], seed[2], false)
	}
	f.Fuzz(func(t *testing.T, realIP, xff1, xff2 string, trusted bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = coreClientAddr
		if trusted {
			r.RemoteAddr = coreProxyAddr
		}
		if realIP != "" {
			r.Header["X-Real-Ip"] = []string{realIP}
		}
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				r.Header["X-Forwarded-For"] = append(r.Header["X-Forwarded-For"], v)
			}
		}
		got := fx.s.pages.proxies.clientIP(r)
		if !trusted {
			if got != netip.MustParseAddr("203.0.113.7") {
				t.Fatalf("untrusted peer: client %s from X-Real-IP %q, X-Forwarded-For %q %q", got, realIP, xff1, xff2)
			}
			return
		}
		if !got.IsValid() {
			return
		}
		named := map[netip.Addr]bool{}
		for _, v := range []string{realIP, xff1, xff2} {
			for part := range strings.SplitSeq(v, ",") {
				if a, err := netip.ParseAddr(strings.TrimSpace(part)); err == nil {
					named[a.Unmap()] = true
				}
			}
		}
		if !named[got] {
			t.Fatalf("trusted proxy: client %s is not named by X-Real-IP %q, X-Forwarded-For %q %q", got, realIP, xff1, xff2)
		}
	})
}

// FuzzHeaderIdentity sends arbitrary identity headers (the user header
// possibly twice): an identity is only ever the trimmed, unambiguous user
// header, groups are trimmed and never empty, and an untrusted peer gets
// none.
func FuzzHeaderIdentity(f *testing.F) {
	fx := newCoreServer(f, coreAdminPolicyYAML, func(o *Options) { o.Logger = discardLogger() })
	e := fx.s.config.snapshot().byName[policyName{"apps", "admin"}]
	for _, seed := range [][4]string{
		{ana, "", "ops, admins", "Ana"}, {" ana@example.com ", "", " , ,ops,, ", ""}, {ana, "mallory@example.com", "", ""},
		{ana, ana, "a", "b"}, {"", ana, "", ""}, {"\t", "", "", ""}, {"@example.com", "", "", ""}, {"ana", "", ",", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], true)
		f.Add(seed[0], seed[1], seed[2], seed[3], false)
	}
	f.Fuzz(func(t *testing.T, user, user2, groups, name string, trusted bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = coreClientAddr
		if trusted {
			r.RemoteAddr = coreProxyAddr
		}
		r.Header["X-Auth-Request-Email"] = []string{user}
		if user2 != "" {
			r.Header["X-Auth-Request-Email"] = append(r.Header["X-Auth-Request-Email"], user2)
		}
		r.Header["X-Auth-Request-Groups"] = []string{groups}
		r.Header["X-Auth-Request-User"] = []string{name}
		id, err := identifyAt(fx.s, r, e)
		if err != nil {
			t.Fatalf("header identity: error %v", err)
		}
		if id == nil {
			return
		}
		switch {
		case !trusted:
			t.Fatalf("identity %q from an untrusted peer", id.User.ID)
		case id.User.ID == "" || id.User.ID != strings.TrimSpace(user):
			t.Fatalf("user %q from header %q", id.User.ID, user)
		case user2 != "" && strings.TrimSpace(user2) != id.User.ID:
			t.Fatalf("user %q taken from two different user headers %q and %q", id.User.ID, user, user2)
		case id.User.Email != "" && (id.User.Email != id.User.ID || strings.IndexByte(id.User.ID, '@') <= 0):
			t.Fatalf("email %q for user %q", id.User.Email, id.User.ID)
		case slices.ContainsFunc(id.User.Groups, func(g string) bool { return g == "" || g != strings.TrimSpace(g) || strings.Contains(g, ",") }):
			t.Fatalf("groups %q from header %q", id.User.Groups, groups)
		}
	})
}

// FuzzJWTIdentity sends arbitrary bearer tokens to a JWT policy whose
// issuer's keys are loaded: only tokens the issuer signed identify anyone.
func FuzzJWTIdentity(f *testing.F) {
	idp := newCoreIssuer(f)
	fx := newCoreServer(f, coreProvidersYAML+idp.policyYAML(coreJWTRules), func(o *Options) { o.Logger = discardLogger() })
	idp.clock = fx.clock
	now := fx.clock.Now()
	valid := idp.sign(f, jwt.MapClaims{"sub": "ana", "groups": []string{"ops"}})
	e := fx.s.config.snapshot().byName[policyName{"apps", "jwt-app"}]
	// Load the issuer's keys once; with the clock fixed they are never
	// fetched again, so fuzzing does no I/O.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+valid)
	if id, err := identifyAt(fx.s, r, e); err != nil || id == nil || id.User.ID != "ana" {
		f.Fatalf("the genuine token does not identify ana: %v", err)
	}
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid, parts[0] + "." + parts[1] + ".", parts[0] + "." + parts[1], "e30.e30.", valid + "x", strings.ToUpper(valid),
		idp.signWith(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "ec-1", jwt.MapClaims{"sub": "mallory"}),
		idp.sign(f, jwt.MapClaims{"sub": "ana", "exp": now.Add(-time.Hour).Unix()}),
		idp.sign(f, jwt.MapClaims{"sub": "ana", "aud": "elsewhere"}),
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"ec-1"}`)) + "." + parts[1] + "." + parts[2],
		base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"../../etc"}`)) + "." + parts[1] + "." + parts[2],
		"", ".", "..", "a.b.c.d",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{"Bearer " + token}
		id, _ := identifyAt(fx.s, r, e)
		if id != nil && id.User.ID != "ana" {
			t.Fatalf("token %q identifies %q", token, id.User.ID)
		}
		r = authRequest("/auth/apps/jwt-app", "https://app.example.com/", nil)
		r.Header["Authorization"] = []string{"Bearer " + token}
		if w := fx.serve(r); w.Code != http.StatusOK && w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden {
			t.Fatalf("token %q: status %d", token, w.Code)
		}
	})
}
