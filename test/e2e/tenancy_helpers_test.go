//go:build e2e

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

// The two teams' objects and routes, and the probes the tenancy test asks
// them with.

// The hosts of the two teams. The platform team (team-a) protects
// a.example.test; the tenant team-b owns b.example.test and may write
// MFAPolicies and MFAProviders in its namespace only.
const (
	hostA        = "a.example.test"
	hostB        = "b.example.test"
	hostBorrowed = "borrowed.b.example.test"
	hostEvil     = "evil.b.example.test"
	// tenantB is the user team-b's objects are written as (kubectl --as).
	tenantB = "tenant-b@example.test"
)

// teamAYAML is the platform team's namespace, its TOTP provider (shared
// with the namespace shop, not with team-b) and its policy for
// a.example.test; team-b's namespace, where tenantB may edit MFAPolicies and
// MFAProviders through the product's editor roles.
const teamAYAML = `apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: google-authenticator, namespace: team-a}
spec:
  type: totp
  totp: {issuer: Team A}
  allowedNamespaces: [shop]
---
apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: app, namespace: team-a}
spec:
  hosts: [a.example.test]
  identity:
    header: {user: X-Auth-Request-Email}
  rules:
  - name: everyone
    when: "true"
    action: RequireMFA
    multifactor: {providers: [google-authenticator]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-policies, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mfa-operator-mfapolicy-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ` + tenantB + `}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tenant-providers, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: mfa-operator-mfaprovider-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: ` + tenantB + `}
`

// teamBProviderYAML is team-b's own TOTP provider, named like team-a's.
const teamBProviderYAML = `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAProvider
metadata: {name: google-authenticator, namespace: team-b}
spec:
  type: totp
  totp: {issuer: Team B}
`

// teamBPolicy is an MFAPolicy of team-b: its hosts, the header its identity
// is read from, and the providers its one rule accepts.
func teamBPolicy(name string, hosts []string, userHeader string, providers ...string) string {
	q := func(s []string) string {
		out := make([]string, len(s))
		for i, v := range s {
			out[i] = strconv.Quote(v)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	return `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: {name: ` + name + `, namespace: team-b}
spec:
  hosts: ` + q(hosts) + `
  identity:
    header: {user: ` + userHeader + `}
  rules:
  - name: everyone
    when: "true"
    action: RequireMFA
    multifactor: {providers: ` + q(providers) + `}
`
}

// caddyRoute sends the requests under path ("" for the rest) to the
// challenge server's forward-auth URL of policy (namespace/name).
type caddyRoute struct{ path, policy string }

// tenantCaddySite is a Caddy site in front of the sample app with basic
// auth as the first factor (its user passed as X-Auth-Request-Email,
// replacing the client's) and forward_auth to the challenge server.
// The challenge pages are the challenge server's public URL (nginx's host).
func tenantCaddySite(host string, port int, user, hash, webhook, app string, routes ...caddyRoute) string {
	var b strings.Builder
	fmt.Fprintf(&b, "http://%s:%d {\n\troute {\n\t\tbasicauth {\n\t\t\t%s %s\n\t\t}\n", host, port, user, hash)
	b.WriteString("\t\trequest_header X-Auth-Request-Email {http.auth.user.id}\n")
	for _, r := range routes {
		if r.path == "" {
			b.WriteString("\t\thandle {\n")
		} else {
			fmt.Fprintf(&b, "\t\thandle %s {\n", r.path)
		}
		fmt.Fprintf(&b, "\t\t\tforward_auth %s {\n\t\t\t\turi /forward-auth/%s\n", webhook, r.policy)
		b.WriteString("\t\t\t\tcopy_headers X-Mfa-User X-Mfa-Multifactor X-Mfa-Assertion\n\t\t\t}\n")
		fmt.Fprintf(&b, "\t\t\treverse_proxy %s\n\t\t}\n", app)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// tenantApp is what the sample app saw of a request (its JSON answer).
type tenantApp struct {
	User              string `json:"user"`
	Multifactor       string `json:"multifactor"`
	Assertion         string `json:"assertion"`
	AssertionVerified bool   `json:"assertionVerified"`
	AssertionError    string `json:"assertionError"`
	Host              string `json:"host"`
}

// authAnswer is the challenge server's answer to an auth request.
type authAnswer struct {
	Status int
	Body   string
	Header http.Header
}

// askAuth sends what a front door in --trusted-proxies sends to path
// (/auth/{ns}/{policy}, or /auth to choose by host) about a GET of
// original by client c: its first-factor user in X-Auth-Request-Email (and
// in the headers of extra), and its cookies for original.
func askAuth(t *testing.T, env *harness.Env, path, original string, c *harness.Client, extra map[string]string) authAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.WebhookURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Original-URL", original)
	req.Header.Set("X-Original-Method", http.MethodGet)
	req.Header.Set("X-Auth-Request-Email", c.User)
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	u, err := url.Parse(original)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return authAnswer{Status: resp.StatusCode, Body: string(b), Header: resp.Header}
}

// readyJSONPath reads generation, the Ready condition's observed
// generation, status, reason and message.
const readyJSONPath = `jsonpath={.metadata.generation}|{.status.conditions[?(@.type=="Ready")].observedGeneration}|` +
	`{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}|` +
	`{.status.conditions[?(@.type=="Ready")].message}`

// readyOf returns "Status/Reason" of an MFAPolicy's Ready condition, its
// message, and whether it describes the current generation.
func readyOf(env *harness.Env, ns, name string) (verdict, message string, current bool) {
	out, err := env.Kubectl("", "-n", ns, "get", "mfapolicy", name, "-o", readyJSONPath)
	if err != nil {
		return "", err.Error(), false
	}
	f := strings.SplitN(out, "|", 4)
	if len(f) != 4 {
		return "", out, false
	}
	return f[2], f[3], f[0] != "" && f[0] == f[1]
}

// decidedVerdict waits until the controller has judged the current
// generation of an MFAPolicy (not waiting on a provider becoming Ready)
// and returns "Status/Reason" of its Ready condition and its message.
func decidedVerdict(t *testing.T, env *harness.Env, ns, name string) (string, string) {
	t.Helper()
	var verdict, message string
	NewWithT(t).Eventually(func() bool {
		var current bool
		verdict, message, current = readyOf(env, ns, name)
		_, reason, _ := strings.Cut(verdict, "/")
		return current && reason != "" && reason != v1alpha1.ReasonProgressing && reason != v1alpha1.ReasonProviderNotReady
	}).WithTimeout(90*time.Second).WithPolling(250*time.Millisecond).
		Should(BeTrue(), "the controller has not judged MFAPolicy %s/%s: %s %s", ns, name, verdict, message)
	return verdict, message
}

// codeOfNoStep is a well-formed TOTP code that is none of the codes of the
// time steps around now.
func codeOfNoStep(t *testing.T, otp *harness.OTP) string {
	t.Helper()
	now := otp.Step(time.Now())
	valid := map[string]bool{}
	for s := now - 3; s <= now+3; s++ {
		valid[otp.CodeAt(t, s)] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

// jwtPayload is the decoded payload (claims) of a JWT, for messages.
func jwtPayload(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return strconv.Quote(token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return strconv.Quote(token)
	}
	return string(b)
}

// lockoutAudits returns the providers of the lockouts the challenge
// server's audit log records.
func lockoutAudits(log string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["audit"] != true || rec["event"] != "lockout" {
			continue
		}
		p, _ := rec["provider"].(string)
		out = append(out, p)
	}
	return out
}
