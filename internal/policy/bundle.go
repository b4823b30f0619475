package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// Names of the Secrets the controller writes in its namespace and the
// challenge server reads. A bundle Secret holds a manifest (ManifestKey,
// see shards.go) or, written by earlier versions and still read, the
// whole bundle under BundleKey.
const (
	BundleSecretName  = "mfa-bundle"
	BundleKey         = "bundle.json"
	BundleHashKey     = "hash"
	KeyringSecretName = "mfa-keyring"
	KeyringKey        = "keyring.json"
)

// Bundle is every Ready policy and provider, compiled by the controller for
// the challenge server.
type Bundle struct {
	Policies  []BundlePolicy   `json:"policies"`
	Providers []BundleProvider `json:"providers"`
}

// BundlePolicy is one MFAPolicy in force.
type BundlePolicy struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Generation int64  `json:"generation,omitempty"`
	// Created is the MFAPolicy's creationTimestamp (zero when unknown):
	// the older of two policies claiming a host across namespaces keeps it.
	Created time.Time              `json:"created,omitzero"`
	Spec    v1alpha1.MFAPolicySpec `json:"spec"`
	// ForwardAuthCA is the PEM CA bundle of spec.identity.forwardAuth,
	// read from its caBundleRef Secret.
	ForwardAuthCA string `json:"forwardAuthCA,omitempty"`
}

// BundleProvider is one MFAProvider in force, with its credentials resolved.
type BundleProvider struct {
	Namespace string                   `json:"namespace"`
	Name      string                   `json:"name"`
	Spec      v1alpha1.MFAProviderSpec `json:"spec"`
	Duo       *DuoCredentials          `json:"duo,omitempty"`
	// Created is the MFAProvider's creationTimestamp (zero when unknown:
	// objects read from files).
	Created time.Time `json:"created,omitzero"`
	// SelectedNamespaces are the namespaces of the bundle's policies that
	// spec.allowedNamespaceSelector admitted when the bundle was built.
	SelectedNamespaces []string `json:"selectedNamespaces,omitempty"`
}

// DuoCredentials are a Duo provider's keys, read from its Secrets.
type DuoCredentials struct {
	IntegrationKey string `json:"integrationKey"`
	SecretKey      string `json:"secretKey"`
	CABundle       string `json:"caBundle,omitempty"`
}

// Key returns namespace/name.
func (p *BundlePolicy) Key() string { return p.Namespace + "/" + p.Name }

// Key returns namespace/name.
func (p *BundleProvider) Key() string { return p.Namespace + "/" + p.Name }

// Marshal returns the bundle's canonical JSON (sorted by namespace/name)
// and its content hash.
func (b *Bundle) Marshal() (data []byte, hash string, err error) {
	sortBundle(b)
	data, err = json.Marshal(b)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

// ParseBundle decodes a bundle and checks that it is whole: every policy
// compiles and every provider it names is present. A bundle that fails is
// refused as a whole so that the last good one stays in force.
func ParseBundle(data []byte) (*Bundle, error) {
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("decoding bundle: %w", err)
	}
	return &b, nil
}
