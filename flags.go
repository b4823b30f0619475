package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// envOr returns the environment variable MFA_<NAME> (flag name upper-cased,
// dashes as underscores) or def, so every flag can come from the
// environment too.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv("MFA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

// stringFlag declares a string flag whose default may come from the environment.
func stringFlag(fs *flag.FlagSet, name, def, usage string) *string {
	return fs.String(name, envOr(name, def), usage+" (env MFA_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+")")
}

// boolFlag declares a bool flag whose default may come from the environment.
func boolFlag(fs *flag.FlagSet, name string, def bool, usage string) *bool {
	v := envOr(name, "")
	if v != "" {
		def = v == "true" || v == "1"
	}
	return fs.Bool(name, def, usage+" (env MFA_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+")")
}

// commonFlags are shared by both modes: the controller passes them on to the
// challenge Deployment it owns.
type commonFlags struct {
	namespace      *string
	publicURL      *string
	cookieDomain   *string
	trustedProxies *string
	insecureCookie *bool
	identityHdrs   *string
	trustXRealIP   *bool
	ambiguousPaths *bool
}

func addCommonFlags(fs *flag.FlagSet) *commonFlags {
	return &commonFlags{
		namespace:      stringFlag(fs, "namespace", "mfa-system", "namespace of the challenge server, its bundle, keyring and enrolment Secrets"),
		publicURL:      stringFlag(fs, "public-url", "", "external URL of the challenge server, e.g. https://auth.example.com"),
		cookieDomain:   stringFlag(fs, "cookie-domain", "", "domain of the MFA cookies, e.g. example.com (empty: host-only)"),
		trustedProxies: stringFlag(fs, "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-*/X-Original-* headers are believed"),
		insecureCookie: boolFlag(fs, "insecure-cookies", false, "drop the Secure attribute of cookies (local http demos only)"),
		identityHdrs: stringFlag(fs, "identity-headers", strings.Join(policy.DefaultIdentityHeaders, ","),
			"comma-separated header names that MFAPolicy header identities may name (headers your front door's first factor sets and overwrites); * allows any"),
		trustXRealIP: boolFlag(fs, "trust-x-real-ip", false, "take the client address from X-Real-IP (from --trusted-proxies) before X-Forwarded-For; "+
			"only for a front door that sets X-Real-IP itself, replacing the client's (ingress-nginx, nginx), never for Traefik or Caddy, which pass the client's own on"),
		ambiguousPaths: boolFlag(fs, "allow-ambiguous-paths", false, "judge original paths that servers read differently (encoded slashes or dots, dot segments, \";\", double encoding) "+
			"on their decoded and cleaned form instead of refusing them (403); only when the front door normalises paths the same way before the app sees them"),
	}
}

// identityHeaders is --identity-headers as a list; nil for "*" (any).
func (c *commonFlags) identityHeaders() ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(*c.identityHdrs, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
			continue
		case part == "*":
			return nil, nil
		case !validHeaderName(part):
			return nil, fmt.Errorf("--identity-headers: %q is not a header name", part)
		}
		out = append(out, http.CanonicalHeaderKey(part))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--identity-headers is empty: list the headers your first factor sets, or * to allow any")
	}
	return out, nil
}

// validHeaderName says whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	for _, c := range s {
		if c > 0x7e || c <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return false
		}
	}
	return s != ""
}
