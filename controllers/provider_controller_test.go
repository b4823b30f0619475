package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// TestProviderSecretErrorsAreStalledThenRecover: a missing Secret or key is
// a configuration error naming the field; creating or fixing the Secret
// (nothing else) makes the provider Ready.
func TestProviderSecretErrorsAreStalledThenRecover(t *testing.T) {
	tests := []struct {
		name    string
		secret  *corev1.Secret // created with the provider; nil for none
		reason  string
		message string
		fix     func(t *testing.T, ns string)
	}{
		{
			name:    "missing Secret, fixed by creating it",
			reason:  v1alpha1.ReasonSecretNotFound,
			message: `spec.duo.integrationKeyRef.name: Secret "duo-credentials" not found in namespace`,
			fix: func(t *testing.T, ns string) {
				create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": "DIGOODSECRET", "skey": "s"}))
			},
		},
		{
			name:    "missing key, fixed by adding it",
			secret:  &corev1.Secret{StringData: map[string]string{"ikey": "DIGOODKEY"}},
			reason:  v1alpha1.ReasonSecretKeyNotFound,
			message: `spec.duo.secretKeyRef.key: Secret "duo-credentials" in namespace`,
			fix: func(t *testing.T, ns string) {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "duo-credentials"}}
				update(t, s, func(s *corev1.Secret) { s.Data["skey"] = []byte("s") })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			if tt.secret != nil {
				tt.secret.Namespace, tt.secret.Name = ns, "duo-credentials"
				create(t, tt.secret)
			}
			prov := duoProvider(ns, "duo", "duo-credentials")
			create(t, prov)

			waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
				ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
					verdict{ready: metav1.ConditionFalse, reason: tt.reason, stalled: true})
				g.Expect(ready.Message).To(ContainSubstring(tt.message))
				g.Expect(p.Status.Multifactor).To(Equal(v1alpha1.MultifactorDuo))
			})
			expectWarningEvent(t, ns, prov.Name, tt.reason, tt.message)

			tt.fix(t, ns)
			waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
				ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
				g.Expect(ready.Message).To(Equal("Duo accepted the credentials"))
			})
		})
	}
}

// TestDuoCheckClassification: an error that says Terminal() is a
// configuration error (stalled, not retried); any other error is transient
// (not stalled, retried with backoff until Duo answers).
func TestDuoCheckClassification(t *testing.T) {
	tests := []struct {
		name    string
		ikey    string
		want    verdict
		message string
	}{
		{
			name:    "refused credentials are a configuration error",
			ikey:    "DIREFUSED1",
			want:    verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuoCheckFailed, stalled: true},
			message: "spec.duo: Duo at api-test.duosecurity.com refused the credentials: Duo answered 401: invalid signature; check spec.duo.apiHost and the integration and secret keys",
		},
		{
			name:    "unreachable Duo is transient",
			ikey:    "DIDOWN1",
			want:    verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuoUnreachable},
			message: "spec.duo: Duo at api-test.duosecurity.com could not be reached: dial tcp: connect: connection refused; retrying",
		},
		{
			name:    "accepted credentials are Ready",
			ikey:    "DIACCEPTED1",
			want:    isReady,
			message: "Duo accepted the credentials",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			prov := duoProvider(ns, "duo", "duo-credentials")
			create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": tt.ikey, "skey": "s"}), prov)
			waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
				ready := expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, tt.want)
				g.Expect(ready.Message).To(Equal(tt.message))
			})
		})
	}
}

// TestDuoTransientErrorIsRetried: with nothing changing in the cluster, a
// provider whose Duo check failed transiently is retried until Duo answers.
func TestDuoTransientErrorIsRetried(t *testing.T) {
	ns := newNamespace(t)
	prov := duoProvider(ns, "duo", "duo-credentials")
	create(t, duoSecret(ns, "duo-credentials", map[string]string{"ikey": "DIFLAKY1", "skey": "s"}), prov)
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	NewWithT(t).Expect(duo.callCount("DIFLAKY1")).To(BeNumerically(">=", 3), "two failed checks, then one that passed")
}

// TestSecretChangeReReconcilesDuoProvider: editing the Secret a Duo
// provider reads re-checks it; refused credentials never reach the bundle,
// where the last accepted ones stay until new ones are accepted.
func TestSecretChangeReReconcilesDuoProvider(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	prov := duoProvider(ns, "duo", "duo-credentials")
	secret := duoSecret(ns, "duo-credentials", map[string]string{"ikey": "DIFIRST", "skey": "first-secret"})
	create(t, secret, prov, mfaPolicy(ns, "admin", "false", "duo"))
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	ikeyInBundle := func(g Gomega) string {
		b, _ := bundleInForce(g)
		e := bundleProvider(b, ns, "duo")
		g.Expect(e).NotTo(BeNil())
		g.Expect(e.Duo).NotTo(BeNil())
		return e.Duo.IntegrationKey
	}
	g.Eventually(ikeyInBundle).WithTimeout(timeout).Should(Equal("DIFIRST"))

	update(t, secret, func(s *corev1.Secret) { s.Data["ikey"] = []byte("DIREFUSEDROTATION") })
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration,
			verdict{ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuoCheckFailed, stalled: true})
	})
	g.Expect(duo.callCount("DIREFUSEDROTATION")).To(BeNumerically(">=", 1))
	g.Consistently(ikeyInBundle).WithTimeout(time.Second).Should(Equal("DIFIRST"))

	update(t, secret, func(s *corev1.Secret) { s.Data["ikey"] = []byte("DISECOND") })
	waitFor(t, prov, func(g Gomega, p *v1alpha1.MFAProvider) {
		expectVerdict(g, p.Status.Conditions, p.Generation, p.Status.ObservedGeneration, isReady)
	})
	g.Eventually(ikeyInBundle).WithTimeout(timeout).Should(Equal("DISECOND"))
}
