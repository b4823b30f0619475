package duo_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/duo"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

func duoProvider(apiHost string, creds *policy.DuoCredentials) *policy.BundleProvider {
	return &policy.BundleProvider{
		Namespace: "apps", Name: "duo",
		Spec: v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderDuo, Duo: &v1alpha1.DuoSpec{APIHost: apiHost}},
		Duo:  creds,
	}
}

func TestClientsKeepAClientWhileItsHostAndKeysStay(t *testing.T) {
	g := NewWithT(t)
	cs := duo.NewClients()
	creds := policy.DuoCredentials{IntegrationKey: "DIXXXXXXXXXXXXXXXXXX", SecretKey: "secret"}
	first, err := cs.Get(duoProvider("api-12345678.duosecurity.com", &creds))
	g.Expect(err).NotTo(HaveOccurred())
	again, err := cs.Get(duoProvider("api-12345678.duosecurity.com", &policy.DuoCredentials{IntegrationKey: creds.IntegrationKey, SecretKey: creds.SecretKey}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(first), "the same host and keys (a reload) keep the client")

	rotated, err := cs.Get(duoProvider("api-12345678.duosecurity.com", &policy.DuoCredentials{IntegrationKey: creds.IntegrationKey, SecretKey: "rotated"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rotated).NotTo(BeIdenticalTo(first), "new keys build a new client")
	moved, err := cs.Get(duoProvider("api-87654321.duosecurity.com", &policy.DuoCredentials{IntegrationKey: creds.IntegrationKey, SecretKey: "rotated"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(moved).NotTo(BeIdenticalTo(rotated), "a new host builds a new client")
}

func TestClientsRefuseProvidersTheyCannotUse(t *testing.T) {
	g := NewWithT(t)
	cs := duo.NewClients()
	creds := &policy.DuoCredentials{IntegrationKey: "DIXXXXXXXXXXXXXXXXXX", SecretKey: "secret"}

	_, err := cs.Get(duoProvider("api-12345678.duosecurity.com", nil))
	g.Expect(err).To(MatchError(ContainSubstring("MFAProvider apps/duo has no Duo settings or credentials")))
	_, err = cs.Get(duoProvider("duo.example.com", creds))
	g.Expect(err).To(MatchError(ContainSubstring("is not a Duo API host and no caBundleRef is set")))
	_, err = cs.Get(duoProvider("api-12345678.duosecurity.com", &policy.DuoCredentials{IntegrationKey: "DIXXXXXXXXXXXXXXXXXX"}))
	g.Expect(err).To(MatchError(ContainSubstring("MFAProvider apps/duo: duo: the secret key is empty")))
}
