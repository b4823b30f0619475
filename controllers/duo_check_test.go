package controllers_test

import (
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duotest"
)

// These tests run the operator's real Duo check (CheckDuoCredentials)
// against a Duo Auth API test server on 127.0.0.1, trusted through the
// provider's caBundleRef: the suite's check hands every provider with a CA
// bundle to it.

// duoServerProvider is a Duo provider for s: its keys (the secret key
// replaced by skey when given) and CA in one Secret.
func duoServerProvider(t *testing.T, ns string, s *duotest.Server, skey string) *v1alpha1.MFAProvider {
	t.Helper()
	if skey == "" {
		skey = s.SKey()
	}
	create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": s.IKey(), "skey": skey, "ca.crt": s.CAPEM()}))
	p := duoProvider(ns, "duo", "duo-credentials")
	p.Spec.Duo.APIHost = s.APIHost()
	p.Spec.Duo.CABundleRef = &v1alpha1.SecretKeySelector{Name: "duo-credentials", Key: "ca.crt"}
	create(t, p)
	return p
}

// checksBy returns the /auth/v2/check requests signed with ikey.
func checksBy(s *duotest.Server, ikey string) []duotest.Request {
	var out []duotest.Request
	for _, r := range s.RequestsTo("/auth/v2/check") {
		if r.IKey == ikey {
			out = append(out, r)
		}
	}
	return out
}

func TestDuoProviderWithTheRightKeysIsReady(t *testing.T) {
	s := duotest.NewServer(t)
	ns := newNamespace(t)
	prov := duoServerProvider(t, ns, s, "")
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
		g.Expect(ready.Message).To(Equal("Duo accepted the credentials"))
	})
	g := NewWithT(t)
	checks := checksBy(s, s.IKey())
	g.Expect(checks).NotTo(BeEmpty())
	g.Expect(checks[0].Method).To(Equal(http.MethodGet))
	g.Expect(checks[0].HTTPStatus).To(Equal(http.StatusOK))
	t.Logf("Duo check as the test server saw it: %s %s params=%v ikey=%s status=%d user-agent=%q",
		checks[0].Method, checks[0].Path, checks[0].Params, checks[0].IKey, checks[0].HTTPStatus, checks[0].UserAgent)
}

func TestDuoProviderWithAWrongSecretKeyIsStalledWithDuosMessage(t *testing.T) {
	s := duotest.NewServer(t)
	ns := newNamespace(t)
	wrong := strings.Repeat("x", len(s.SKey()))
	prov := duoServerProvider(t, ns, s, wrong)
	var message string
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuoCheckFailed, stalled: true})
		message = ready.Message
	})
	g := NewWithT(t)
	g.Expect(message).To(ContainSubstring("40103 Invalid signature in request credentials"), "Duo's own code and message")
	g.Expect(message).To(ContainSubstring(s.APIHost()))
	g.Expect(message).To(ContainSubstring("spec.duo"))
	g.Expect(message).NotTo(ContainSubstring(wrong))
	g.Expect(message).NotTo(ContainSubstring(s.SKey()))
	g.Expect(checksBy(s, s.IKey())).NotTo(BeEmpty())
	g.Expect(checksBy(s, s.IKey())[0].Code).To(Equal(40103))
	expectWarningEvent(t, ns, prov.Name, v1alpha1.ReasonDuoCheckFailed, "Invalid signature in request credentials")
}

// TestDuoProviderBecomesReadyWhenDuoIsBack: an unreachable Duo is not the
// author's fault: Ready=False (not Stalled), retried with backoff, and Ready
// once Duo answers, with no change to any object.
func TestDuoProviderBecomesReadyWhenDuoIsBack(t *testing.T) {
	s := duotest.NewServer(t)
	s.Stop()
	ns := newNamespace(t)
	prov := duoServerProvider(t, ns, s, "")
	var generation int64
	var version string
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuoUnreachable})
		g.Expect(ready.Message).To(ContainSubstring("Duo at " + s.APIHost() + " could not be reached"))
		g.Expect(ready.Message).To(ContainSubstring("connection refused"))
		g.Expect(ready.Message).To(HaveSuffix("retrying"))
		generation = p.Generation
	})
	g := NewWithT(t)
	secret := duoSecret(ns, "duo-credentials", nil)
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	version = secret.ResourceVersion

	s.Start()
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	g.Expect(prov.Generation).To(Equal(generation), "the provider was not changed")
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	g.Expect(secret.ResourceVersion).To(Equal(version), "the Secret was not changed")
	g.Expect(checksBy(s, s.IKey())).NotTo(BeEmpty(), "the check that passed reached the server")
}

// TestDuoAPIHostMustBeDuosWithoutACABundle: an API host that Duo would not
// hand out is refused before any credentials are sent, unless the provider
// trusts its own CA for it.
func TestDuoAPIHostMustBeDuosWithoutACABundle(t *testing.T) {
	tests := []struct {
		name string
		host string
	}{
		{"an address and port", "127.0.0.1:8443"},
		{"a look-alike domain", "api-abcd1234.duosecurity.com.example.net"},
		{"another host", "duo.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": "DIHOSTCHECK", "skey": "s"}))
			prov := duoProvider(ns, "duo", "duo-credentials")
			prov.Spec.Duo.APIHost = tt.host
			create(t, prov)
			waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
				ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
					verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonInvalidSpec, stalled: true})
				g.Expect(ready.Message).To(HavePrefix("spec.duo.apiHost: "))
				g.Expect(ready.Message).To(ContainSubstring(tt.host))
				g.Expect(ready.Message).To(ContainSubstring("spec.duo.caBundleRef"))
			})
		})
	}
}

// TestDuoUnknownHostIsUnreachable: a host that does not resolve (with a CA
// bundle, so that it is allowed) is reported as Duo being unreachable,
// with the resolver's error.
func TestDuoUnknownHostIsUnreachable(t *testing.T) {
	s := duotest.NewServer(t)
	ns := newNamespace(t)
	create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": s.IKey(), "skey": s.SKey(), "ca.crt": s.CAPEM()}))
	prov := duoProvider(ns, "duo", "duo-credentials")
	// .invalid never resolves (RFC 6761).
	prov.Spec.Duo.APIHost = "api-unknown.invalid"
	prov.Spec.Duo.CABundleRef = &v1alpha1.SecretKeySelector{Name: "duo-credentials", Key: "ca.crt"}
	create(t, prov)
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuoUnreachable})
		g.Expect(ready.Message).To(ContainSubstring("Duo at api-unknown.invalid could not be reached"))
		g.Expect(ready.Message).To(ContainSubstring("lookup api-unknown.invalid"))
	})
}
