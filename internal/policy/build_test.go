package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// selfSignedPEM returns a fresh self-signed certificate in PEM.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func totpProvider(ns, name string) v1alpha1.MFAProvider {
	return v1alpha1.MFAProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec:       v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderTOTP, TOTP: &v1alpha1.TOTPSpec{Issuer: "Example"}},
	}
}

func duoProvider(ns, name, secret string) v1alpha1.MFAProvider {
	return v1alpha1.MFAProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec: v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderDuo, Duo: &v1alpha1.DuoSpec{
			APIHost:           "api-test.duosecurity.com",
			IntegrationKeyRef: v1alpha1.SecretKeySelector{Name: secret, Key: "ikey"},
			SecretKeyRef:      v1alpha1.SecretKeySelector{Name: secret, Key: "skey"},
		}},
	}
}

func withCA(p v1alpha1.MFAProvider, secret, key string) v1alpha1.MFAProvider {
	p.Spec.Duo.CABundleRef = &v1alpha1.SecretKeySelector{Name: secret, Key: key}
	return p
}

func withPeriod(p v1alpha1.MFAProvider, d time.Duration) v1alpha1.MFAProvider {
	p.Spec.TOTP.Period = &metav1.Duration{Duration: d}
	return p
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func secrets(ss ...*corev1.Secret) map[types.NamespacedName]*corev1.Secret {
	m := map[types.NamespacedName]*corev1.Secret{}
	for _, s := range ss {
		m[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	return m
}

// mfaPolicy is a policy of generation gen whose first rule has `when` and
// whose second rule requires the given providers.
func mfaPolicy(ns, name string, gen int64, when string, providers ...string) v1alpha1.MFAPolicy {
	return v1alpha1.MFAPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: gen},
		Spec: v1alpha1.MFAPolicySpec{
			Identity: v1alpha1.IdentitySpec{Header: &v1alpha1.HeaderIdentity{User: "X-User"}},
			Rules: []v1alpha1.Rule{
				{Name: "office", When: when, Action: v1alpha1.ActionAllow},
				{Name: "everyone-else", When: "true", Action: v1alpha1.ActionRequireMFA,
					Multifactor: &v1alpha1.MultifactorSpec{Providers: providers}},
			},
		},
	}
}

func bundleOf(pols []v1alpha1.MFAPolicy, provs []v1alpha1.MFAProvider, ss map[types.NamespacedName]*corev1.Secret) *Bundle {
	b, _ := BuildBundle(pols, provs, ss, nil, BuildOptions{})
	return b
}

func TestBuildBundle(t *testing.T) {
	const ns = "apps"
	goodSecret := secret(ns, "duo", map[string]string{"ikey": "DIXXXXXXXXXXXXXXXXXX\n", "skey": "s3cr3t"})
	rotatedSecret := secret(ns, "duo", map[string]string{"ikey": "DIYYYYYYYYYYYYYYYYYY", "skey": "n3w"})
	noSkey := secret(ns, "duo", map[string]string{"ikey": "DIXXXXXXXXXXXXXXXXXX"})
	emptySkey := secret(ns, "duo", map[string]string{"ikey": "DIXXXXXXXXXXXXXXXXXX", "skey": " "})
	goodWhen := `request.path.startsWith("/admin")`
	badWhen := `request.path.startsWith("/admin") &&`
	refuse := func(p *v1alpha1.MFAProvider, e *BundleProvider) error {
		if e.Duo != nil {
			return &FieldError{Field: "spec.duo", Reason: v1alpha1.ReasonDuoCheckFailed, Message: "refused"}
		}
		return nil
	}

	type want struct {
		policies  map[string]int64  // key -> generation in force
		providers map[string]string // key -> integration key ("" for totp)
		verdicts  map[string]string // "policy/ns/name" or "provider/ns/name" -> reason ("" valid)
		messages  map[string]string // same keys -> substring of the error
	}
	tests := []struct {
		name      string
		policies  []v1alpha1.MFAPolicy
		providers []v1alpha1.MFAProvider
		secrets   map[types.NamespacedName]*corev1.Secret
		previous  *Bundle
		checks    []ProviderCheck
		want      want
	}{
		{
			name:      "valid policy and totp provider are in force",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "google-authenticator")},
			providers: []v1alpha1.MFAProvider{totpProvider(ns, "google-authenticator")},
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/google-authenticator": ""},
				verdicts:  map[string]string{"policy/apps/admin": "", "provider/apps/google-authenticator": ""},
			},
		},
		{
			name:      "duo credentials are resolved from the secret and trimmed",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")},
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(goodSecret),
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/duo": "DIXXXXXXXXXXXXXXXXXX"},
				verdicts:  map[string]string{"policy/apps/admin": "", "provider/apps/duo": ""},
			},
		},
		{
			name:      "duo secret in another namespace is not found",
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(secret("other", "duo", map[string]string{"ikey": "a", "skey": "b"})),
			want: want{
				verdicts: map[string]string{"provider/apps/duo": v1alpha1.ReasonSecretNotFound},
				messages: map[string]string{"provider/apps/duo": `spec.duo.integrationKeyRef.name: Secret "duo" not found in namespace "apps"`},
			},
		},
		{
			name:      "missing secret key names the field and the key",
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(noSkey),
			want: want{
				verdicts: map[string]string{"provider/apps/duo": v1alpha1.ReasonSecretKeyNotFound},
				messages: map[string]string{"provider/apps/duo": `spec.duo.secretKeyRef.key: Secret "duo" in namespace "apps" has no key "skey"`},
			},
		},
		{
			name:      "empty secret value is refused",
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(emptySkey),
			want: want{
				verdicts: map[string]string{"provider/apps/duo": v1alpha1.ReasonSecretKeyNotFound},
				messages: map[string]string{"provider/apps/duo": `key "skey" of Secret "duo" in namespace "apps" is empty`},
			},
		},
		{
			name:      "a CA bundle that is not PEM is refused",
			providers: []v1alpha1.MFAProvider{withCA(duoProvider(ns, "duo", "duo"), "ca", "ca.crt")},
			secrets:   secrets(goodSecret, secret(ns, "ca", map[string]string{"ca.crt": "not a certificate"})),
			want: want{
				verdicts: map[string]string{"provider/apps/duo": v1alpha1.ReasonInvalidSpec},
				messages: map[string]string{"provider/apps/duo": "spec.duo.caBundleRef"},
			},
		},
		{
			name:      "a PEM CA bundle is carried with the credentials",
			providers: []v1alpha1.MFAProvider{withCA(duoProvider(ns, "duo", "duo"), "duo", "ca.crt")},
			secrets:   secrets(secret(ns, "duo", map[string]string{"ikey": "DIXXXXXXXXXXXXXXXXXX", "skey": "s", "ca.crt": selfSignedPEM(t)})),
			want: want{
				providers: map[string]string{"apps/duo": "DIXXXXXXXXXXXXXXXXXX"},
				verdicts:  map[string]string{"provider/apps/duo": ""},
			},
		},
		{
			name:      "a totp period that is not whole seconds is refused",
			providers: []v1alpha1.MFAProvider{withPeriod(totpProvider(ns, "totp"), 1500*time.Millisecond)},
			want: want{
				verdicts: map[string]string{"provider/apps/totp": v1alpha1.ReasonInvalidSpec},
				messages: map[string]string{"provider/apps/totp": "spec.totp.period"},
			},
		},
		{
			name:      "invalid CEL never valid is absent, with rule, field and position",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, badWhen, "totp")},
			providers: []v1alpha1.MFAProvider{totpProvider(ns, "totp")},
			want: want{
				providers: map[string]string{"apps/totp": ""},
				verdicts:  map[string]string{"policy/apps/admin": v1alpha1.ReasonInvalidExpression, "provider/apps/totp": ""},
				messages:  map[string]string{"policy/apps/admin": `rule "office" (spec.rules[0].when): ERROR: <input>:1:37`},
			},
		},
		{
			name:      "invalid CEL keeps the last good policy in force",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 2, badWhen, "totp")},
			providers: []v1alpha1.MFAProvider{totpProvider(ns, "totp")},
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "totp")}, []v1alpha1.MFAProvider{totpProvider(ns, "totp")}, nil),
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/totp": ""},
				verdicts:  map[string]string{"policy/apps/admin": v1alpha1.ReasonInvalidExpression, "provider/apps/totp": ""},
			},
		},
		{
			name:      "a valid update replaces the previous policy",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 3, goodWhen, "totp")},
			providers: []v1alpha1.MFAProvider{totpProvider(ns, "totp")},
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, "true", "totp")}, []v1alpha1.MFAProvider{totpProvider(ns, "totp")}, nil),
			want: want{
				policies:  map[string]int64{"apps/admin": 3},
				providers: map[string]string{"apps/totp": ""},
				verdicts:  map[string]string{"policy/apps/admin": "", "provider/apps/totp": ""},
			},
		},
		{
			name:      "a deleted policy disappears",
			providers: []v1alpha1.MFAProvider{totpProvider(ns, "totp")},
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "totp")}, []v1alpha1.MFAProvider{totpProvider(ns, "totp")}, nil),
			want: want{
				providers: map[string]string{"apps/totp": ""},
				verdicts:  map[string]string{"provider/apps/totp": ""},
			},
		},
		{
			name:     "an unknown provider is named with the rule and field",
			policies: []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "totp", "nope")},
			providers: []v1alpha1.MFAProvider{
				totpProvider(ns, "totp"),
				totpProvider("other", "nope"), // same name, other namespace: not visible
			},
			want: want{
				providers: map[string]string{"apps/totp": "", "other/nope": ""},
				verdicts:  map[string]string{"policy/apps/admin": v1alpha1.ReasonProviderNotFound, "provider/apps/totp": "", "provider/other/nope": ""},
				messages:  map[string]string{"policy/apps/admin": `rule "everyone-else" (spec.rules[1].multifactor.providers[1]): MFAProvider "nope" not found in namespace "apps"`},
			},
		},
		{
			name:      "an invalid provider keeps its last good entry and its policy",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")},
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(noSkey),
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")}, []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")}, secrets(goodSecret)),
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/duo": "DIXXXXXXXXXXXXXXXXXX"},
				verdicts:  map[string]string{"policy/apps/admin": v1alpha1.ReasonProviderNotReady, "provider/apps/duo": v1alpha1.ReasonSecretKeyNotFound},
			},
		},
		{
			name:      "a rotated secret replaces the credentials",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")},
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(rotatedSecret),
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")}, []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")}, secrets(goodSecret)),
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/duo": "DIYYYYYYYYYYYYYYYYYY"},
				verdicts:  map[string]string{"policy/apps/admin": "", "provider/apps/duo": ""},
			},
		},
		{
			name:      "a failed extra check keeps the last good credentials",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")},
			providers: []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")},
			secrets:   secrets(rotatedSecret),
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "duo")}, []v1alpha1.MFAProvider{duoProvider(ns, "duo", "duo")}, secrets(goodSecret)),
			checks:    []ProviderCheck{refuse},
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/duo": "DIXXXXXXXXXXXXXXXXXX"},
				verdicts:  map[string]string{"policy/apps/admin": v1alpha1.ReasonProviderNotReady, "provider/apps/duo": v1alpha1.ReasonDuoCheckFailed},
			},
		},
		{
			name:     "a kept policy whose provider was deleted is dropped",
			policies: []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 2, badWhen, "totp")},
			previous: bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "totp")}, []v1alpha1.MFAProvider{totpProvider(ns, "totp")}, nil),
			want: want{
				verdicts: map[string]string{"policy/apps/admin": v1alpha1.ReasonInvalidExpression},
			},
		},
		{
			name:      "a policy listed twice is refused, its last good entry kept",
			policies:  []v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 2, goodWhen, "totp"), mfaPolicy(ns, "admin", 2, "false", "totp")},
			providers: []v1alpha1.MFAProvider{totpProvider(ns, "totp")},
			previous:  bundleOf([]v1alpha1.MFAPolicy{mfaPolicy(ns, "admin", 1, goodWhen, "totp")}, []v1alpha1.MFAProvider{totpProvider(ns, "totp")}, nil),
			want: want{
				policies:  map[string]int64{"apps/admin": 1},
				providers: map[string]string{"apps/totp": ""},
				verdicts:  map[string]string{"policy/apps/admin": v1alpha1.ReasonInvalidSpec, "provider/apps/totp": ""},
				messages:  map[string]string{"policy/apps/admin": "defined more than once"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b, v := BuildBundle(tt.policies, tt.providers, tt.secrets, tt.previous, BuildOptions{Checks: tt.checks})

			gotPolicies := map[string]int64{}
			for _, p := range b.Policies {
				gotPolicies[p.Key()] = p.Generation
			}
			gotProviders := map[string]string{}
			for _, p := range b.Providers {
				ikey := ""
				if p.Duo != nil {
					ikey = p.Duo.IntegrationKey
				}
				gotProviders[p.Key()] = ikey
			}
			gotVerdicts := map[string]string{}
			gotErrs := map[string]error{}
			for k, err := range v.Policies {
				gotVerdicts["policy/"+k.String()] = reasonOf(err)
				gotErrs["policy/"+k.String()] = err
			}
			for k, err := range v.Providers {
				gotVerdicts["provider/"+k.String()] = reasonOf(err)
				gotErrs["provider/"+k.String()] = err
			}

			g.Expect(gotPolicies).To(Equal(orEmpty(tt.want.policies)))
			g.Expect(gotProviders).To(Equal(orEmpty(tt.want.providers)))
			g.Expect(gotVerdicts).To(Equal(orEmpty(tt.want.verdicts)))
			for k, msg := range tt.want.messages {
				g.Expect(gotErrs[k]).To(MatchError(ContainSubstring(msg)), k)
			}
		})
	}
}

func TestBuildBundleDoesNotAliasItsInputs(t *testing.T) {
	g := NewWithT(t)
	pols := []v1alpha1.MFAPolicy{mfaPolicy("apps", "admin", 1, "true", "totp")}
	b, _ := BuildBundle(pols, []v1alpha1.MFAProvider{totpProvider("apps", "totp")}, nil, nil, BuildOptions{})
	pols[0].Spec.Rules[0].When = "false"
	g.Expect(b.Policies[0].Spec.Rules[0].When).To(Equal("true"))
}

func TestBuildBundleIsCanonical(t *testing.T) {
	g := NewWithT(t)
	pols := []v1alpha1.MFAPolicy{mfaPolicy("b", "p", 1, "true", "totp"), mfaPolicy("a", "p", 1, "true", "totp")}
	provs := []v1alpha1.MFAProvider{totpProvider("b", "totp"), totpProvider("a", "totp")}
	b1, _ := BuildBundle(pols, provs, nil, nil, BuildOptions{})
	b2, _ := BuildBundle([]v1alpha1.MFAPolicy{pols[1], pols[0]}, []v1alpha1.MFAProvider{provs[1], provs[0]}, nil, nil, BuildOptions{})
	_, h1, err := b1.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	_, h2, err := b2.Marshal()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h1).To(Equal(h2))
}

func TestNamesForIndexes(t *testing.T) {
	g := NewWithT(t)
	p := withCA(duoProvider("apps", "duo", "duo"), "ca", "ca.crt")
	g.Expect(SecretNames(&p.Spec)).To(Equal([]string{"duo", "ca"}))
	totp := totpProvider("apps", "t")
	g.Expect(SecretNames(&totp.Spec)).To(BeEmpty())

	pol := mfaPolicy("apps", "admin", 1, "true", "totp", "duo")
	pol.Spec.Rules = append(pol.Spec.Rules, v1alpha1.Rule{Name: "again", When: "true", Action: v1alpha1.ActionRequireMFA,
		Multifactor: &v1alpha1.MultifactorSpec{Providers: []string{"duo"}}})
	g.Expect(ProviderNames(&pol.Spec)).To(Equal([]string{"totp", "duo"}))
}

func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return "unclassified: " + err.Error()
}

func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

func TestCheckPolicyRefusesHostsThatAreNotHostNames(t *testing.T) {
	ready := func(types.NamespacedName, string) ProviderState { return ProviderReady }
	for _, h := range []string{"a..example.com", "*.com", "admin.example.com:0", "a.*.example.com", "2130706433"} {
		g := NewWithT(t)
		p := mfaPolicy("apps", "admin", 1, "true", "totp")
		p.Spec.Hosts = []string{"ok.example.com", h}
		_, err := CheckPolicy(&p, Tenancy{Provider: ready})
		var fe *FieldError
		g.Expect(errors.As(err, &fe)).To(BeTrue(), "host %q: %v", h, err)
		g.Expect(fe.Field).To(Equal("spec.hosts[1]"))
		g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonInvalidSpec))
		g.Expect(fe.Message).To(ContainSubstring(h))
	}
	g := NewWithT(t)
	p := mfaPolicy("apps", "admin", 1, "true", "totp")
	p.Spec.Hosts = []string{"admin.example.com", "admin.example.com:443", "*.apps.example.com", "bücher.example.com", "legacy.example.com:8443"}
	_, err := CheckPolicy(&p, Tenancy{Provider: ready})
	g.Expect(err).NotTo(HaveOccurred())
}
