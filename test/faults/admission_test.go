//go:build e2e

package faults

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/test/e2e/harness"
)

func badPolicy(name, spec string) string {
	return "apiVersion: mfa.operator.dev/v1alpha1\nkind: MFAPolicy\nmetadata: {name: " + name + ", namespace: apps}\nspec:\n" + spec
}

func badProvider(name, spec string) string {
	return "apiVersion: mfa.operator.dev/v1alpha1\nkind: MFAProvider\nmetadata: {name: " + name + ", namespace: apps}\nspec:\n" + spec
}

const (
	headerIdentity = "  identity: {header: {user: X-Auth-Request-Email}}\n"
	// tooExpensive compares every header with every other as a regex.
	tooExpensive = `request.headers.all(k, request.headers.all(k2, request.headers[k].matches(request.headers[k2])))`
)

// TestAdmissionRefusesBadObjects applies bad MFAPolicy and MFAProvider
// objects with kubectl, as a user would. What the schema can check, the
// API server refuses with a message naming the field; what only the
// controller can check (CEL types and cost, references) is accepted and
// marked Ready=False with the message. The controller keeps running and
// reconciling good objects throughout.
func TestAdmissionRefusesBadObjects(t *testing.T) {
	env := harness.Start(t, harness.Options{Components: []string{harness.Controller}})
	env.Apply(t, namespaceYAML+objectsYAML(""))
	env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/admin", "mfaprovider/google-authenticator")
	controllerPID := env.PID(t, harness.Controller)

	t.Run("refused by the API server", func(t *testing.T) {
		for _, tc := range []struct {
			name, object string
			// stderr is what kubectl prints, in the order it prints it.
			stderr []string
		}{
			{"action outside the enum", badPolicy("bad-action", headerIdentity+"  rules: [{name: a, when: 'true', action: Maybe}]\n"),
				[]string{`The MFAPolicy "bad-action" is invalid:`, `spec.rules[0].action: Unsupported value: "Maybe": supported values: "Allow", "RequireMFA", "Deny"`}},
			{"default outside the enum", badPolicy("bad-default", headerIdentity+"  rules: [{name: a, when: 'true', action: Allow}]\n  default: RequireMFA\n"),
				[]string{`The MFAPolicy "bad-default" is invalid:`, `spec.default: Unsupported value: "RequireMFA": supported values: "Allow", "Deny"`}},
			{"provider type outside the enum", badProvider("bad-type", "  type: sms\n"),
				[]string{`The MFAProvider "bad-type" is invalid:`, `spec.type: Unsupported value: "sms": supported values: "totp", "duo"`}},
			{"TOTP algorithm outside the enum", badProvider("bad-algorithm", "  type: totp\n  totp: {algorithm: MD5}\n"),
				[]string{`spec.totp.algorithm: Unsupported value: "MD5": supported values: "SHA1", "SHA256", "SHA512"`}},
			{"TOTP digits 7", badProvider("bad-digits", "  type: totp\n  totp: {digits: 7}\n"),
				[]string{`The MFAProvider "bad-digits" is invalid:`, `spec.totp.digits: Unsupported value: 7: supported values: "6", "8"`}},
			{"Duo fail mode outside the enum", badProvider("bad-failmode", "  type: duo\n  duo: {apiHost: api-x.duosecurity.com, integrationKeyRef: {name: d, key: i}, secretKeyRef: {name: d, key: s}, failMode: maybe}\n"),
				[]string{`spec.duo.failMode: Unsupported value: "maybe": supported values: "closed", "open"`}},
			{"Duo factor outside the enum", badProvider("bad-factor", "  type: duo\n  duo: {apiHost: api-x.duosecurity.com, integrationKeyRef: {name: d, key: i}, secretKeyRef: {name: d, key: s}, factors: [sms]}\n"),
				[]string{`spec.duo.factors[0]: Unsupported value: "sms": supported values: "push", "passcode"`}},
			{"type duo without spec.duo", badProvider("bad-duo", "  type: duo\n"),
				[]string{`The MFAProvider "bad-duo" is invalid:`, `spec: Invalid value: spec.duo is required when type is duo`}},
			{"negative rememberFor", badPolicy("bad-remember", headerIdentity+"  rules: [{name: a, when: 'true', action: RequireMFA, multifactor: {providers: [google-authenticator], rememberFor: -5m}}]\n"),
				[]string{`spec.rules[0].multifactor.rememberFor: Invalid value: "-5m": rememberFor must be a duration between 1m and 8760h, e.g. 720h`}},
			{"negative TOTP period", badProvider("bad-period", "  type: totp\n  totp: {period: -30s}\n"),
				[]string{`spec.totp.period: Invalid value: "-30s": period must be a duration between 1s and 10m, e.g. 30s`}},
			{"negative skew", badProvider("bad-skew", "  type: totp\n  totp: {skew: -1}\n"),
				[]string{`spec.totp.skew: Invalid value: -1: spec.totp.skew in body should be greater than or equal to 0`}},
			{"empty rules", badPolicy("bad-empty", headerIdentity+"  rules: []\n"),
				[]string{`The MFAPolicy "bad-empty" is invalid:`, `spec.rules: Invalid value: 0: spec.rules in body should have at least 1 items`}},
			{"no rules", badPolicy("bad-norules", headerIdentity),
				[]string{`The MFAPolicy "bad-norules" is invalid:`, `spec.rules: Required value`}},
			{"empty when", badPolicy("bad-when", headerIdentity+"  rules: [{name: a, when: '', action: Allow}]\n"),
				[]string{`spec.rules[0].when: Invalid value: "": spec.rules[0].when in body should be at least 1 chars long`}},
			{"duplicate rule names", badPolicy("bad-dup", headerIdentity+"  rules: [{name: a, when: 'true', action: Allow}, {name: a, when: 'false', action: Deny}]\n"),
				[]string{`The MFAPolicy "bad-dup" is invalid:`, `spec.rules[1]: Duplicate value: {"name":"a"}`}},
			{"RequireMFA without multifactor", badPolicy("bad-mfa", headerIdentity+"  rules: [{name: a, when: 'true', action: RequireMFA}]\n"),
				[]string{`The MFAPolicy "bad-mfa" is invalid:`, `spec.rules[0]: Invalid value: a RequireMFA rule needs multifactor.providers`}},
			{"RequireMFA with no providers", badPolicy("bad-providers", headerIdentity+"  rules: [{name: a, when: 'true', action: RequireMFA, multifactor: {providers: []}}]\n"),
				[]string{`spec.rules[0].multifactor.providers: Invalid value: 0: spec.rules[0].multifactor.providers in body should have at least 1 items`}},
			{"rule name that is not a DNS label", badPolicy("bad-name", headerIdentity+"  rules: [{name: Office_Hours, when: 'true', action: Allow}]\n"),
				[]string{`spec.rules[0].name: Invalid value: "Office_Hours": spec.rules[0].name in body should match`}},
			{"host that is not a host", badPolicy("bad-host", "  hosts: [evil.com/x]\n"+headerIdentity+"  rules: [{name: a, when: 'true', action: Allow}]\n"),
				[]string{`spec.hosts[0]: Invalid value: "evil.com/x": spec.hosts[0] in body should match`}},
			{"both identity sources", badPolicy("bad-identity", "  identity: {header: {user: X-User}, jwt: {issuer: i, audiences: [a], jwksURL: 'https://i/jwks'}}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
				[]string{`The MFAPolicy "bad-identity" is invalid:`, `spec.identity: Invalid value: set exactly one of identity.header, identity.jwt and identity.forwardAuth`}},
			{"JWKS URL that is not http(s)", badPolicy("bad-jwks", "  identity: {jwt: {issuer: i, audiences: [a], jwksURL: 'ftp://i/jwks'}}\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
				[]string{`spec.identity.jwt.jwksURL: Invalid value: "ftp://i/jwks": spec.identity.jwt.jwksURL in body should match '^https?://'`}},
			{"unknown field", badPolicy("bad-field", headerIdentity+"  rulez: []\n  rules: [{name: a, when: 'true', action: Allow}]\n"),
				[]string{`Error from server (BadRequest)`, `strict decoding error: unknown field "spec.rulez"`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := NewWithT(t)
				_, err := env.Kubectl(tc.object, "apply", "-f", "-")
				g.Expect(err).To(HaveOccurred(), "kubectl apply of %s must fail", tc.name)
				var ke *harness.KubectlError
				g.Expect(errors.As(err, &ke)).To(BeTrue())
				if !strings.Contains(tc.object, "rulez") {
					kind, name := objectKindName(tc.object)
					g.Expect(ke.Stderr).To(HavePrefix(`The %s "%s" is invalid:`, kind, name))
				}
				for _, want := range tc.stderr {
					g.Expect(ke.Stderr).To(ContainSubstring(want))
				}
				t.Logf("kubectl: %s", ke.Stderr)
			})
		}
	})

	t.Run("accepted, then marked Ready=False by the controller", func(t *testing.T) {
		for _, tc := range []struct {
			name, kind, object, reason, message string
		}{
			{"CEL that is not a bool", "mfapolicy", badPolicy("cel-int", headerIdentity+"  rules: [{name: size, when: 'request.path.size()', action: Deny}]\n"),
				"InvalidExpression", `rule "size" (spec.rules[0].when): expression must be of type bool, not int`},
			{"CEL over the cost limit", "mfapolicy", badPolicy("cel-cost", headerIdentity+"  rules: [{name: costly, when: '"+tooExpensive+"', action: Deny}]\n"),
				"InvalidExpression", `rule "costly" (spec.rules[0].when): expression is too expensive: estimated cost`},
			{"CEL that does not parse", "mfapolicy", badPolicy("cel-syntax", headerIdentity+"  rules: [{name: broken, when: 'request.path ==', action: Deny}]\n"),
				"InvalidExpression", `rule "broken" (spec.rules[0].when): ERROR: <input>:1:16: Syntax error`},
			{"CEL naming an unknown variable", "mfapolicy", badPolicy("cel-var", headerIdentity+"  rules: [{name: typo, when: 'requets.path == \"/\"', action: Deny}]\n"),
				"InvalidExpression", `undeclared reference to 'requets'`},
			{"a provider that does not exist", "mfapolicy", badPolicy("no-provider", headerIdentity+"  rules: [{name: a, when: 'true', action: RequireMFA, multifactor: {providers: [nope]}}]\n"),
				"ProviderNotFound", `MFAProvider "nope" not found in namespace "apps"; create it or fix the name`},
			{"a TOTP period that is not whole seconds", "mfaprovider", badProvider("period-ms", "  type: totp\n  totp: {period: 1500ms}\n"),
				"InvalidSpec", `period 1.5s must be a whole number of seconds`},
			{"a Duo provider whose Secret is missing", "mfaprovider", badProvider("duo-nosecret", "  type: duo\n  duo: {apiHost: api-x.duosecurity.com, integrationKeyRef: {name: missing, key: i}, secretKeyRef: {name: missing, key: s}}\n"),
				"SecretNotFound", `Secret "missing"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := NewWithT(t)
				env.Apply(t, tc.object)
				_, name := objectKindName(tc.object)
				var got string
				eventually(t, time.Minute, tc.kind+" "+name+" judged", func() bool {
					got, _ = env.Kubectl("", "-n", "apps", "get", tc.kind, name, "-o",
						`jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}`)
					return got != "" && got != "/" && !strings.HasSuffix(got, "/Progressing")
				})
				g.Expect(got).To(Equal("False/" + tc.reason))
				// What `kubectl get -o wide` shows the user.
				wide := env.MustKubectl(t, "", "-n", "apps", "get", tc.kind, name, "-o", "wide")
				g.Expect(wide).To(ContainSubstring(tc.reason))
				msg := env.MustKubectl(t, "", "-n", "apps", "get", tc.kind, name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].message}`)
				g.Expect(msg).To(ContainSubstring(tc.message))
				t.Logf("Ready=False %s: %s", tc.reason, msg)
			})
		}
	})

	t.Run("the controller kept running and reconciles a good object", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(env.PID(t, harness.Controller)).To(Equal(controllerPID))
		g.Expect(httpStatus(t, env.Setting("DEMO_PROBE_URL")+"/readyz")).To(Equal(http.StatusOK))
		env.Apply(t, badPolicy("good-after", headerIdentity+"  rules: [{name: a, when: 'request.path.startsWith(\"/x\")', action: Deny}]\n"))
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/good-after")
		// A bad policy fixed becomes Ready too.
		env.Apply(t, badPolicy("cel-cost", headerIdentity+"  rules: [{name: costly, when: 'size(request.headers) > 100', action: Deny}]\n"))
		env.MustKubectl(t, "", "-n", "apps", "wait", "--for=condition=Ready", "--timeout=60s", "mfapolicy/cel-cost")
		g.Expect(env.Log(harness.Controller)).NotTo(ContainSubstring("panic"))
		g.Expect(env.PID(t, harness.Controller)).To(Equal(controllerPID))
	})
}

// objectKindName reads the kind and name of one of the objects above.
func objectKindName(object string) (kind, name string) {
	kind = "MFAProvider"
	if strings.Contains(object, "kind: MFAPolicy") {
		kind = "MFAPolicy"
	}
	name = object[strings.Index(object, "name: ")+6:]
	return kind, name[:strings.IndexAny(name, ",}")]
}
