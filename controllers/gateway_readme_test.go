package controllers_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/examples"
)

// TestReadmeIstioExtensionProvider checks that README.md's Istio mesh
// config block is, entry for entry, what the controller shows in
// status.istioExtensionProvider for the README's policy apps/portal.
func TestReadmeIstioExtensionProvider(t *testing.T) {
	g := NewWithT(t)
	blocks, err := examples.YAML(filepath.Join(repoRoot, "README.md"))
	g.Expect(err).NotTo(HaveOccurred())
	var shown []any
	var portal *v1alpha1.MFAPolicy
	for _, b := range blocks {
		for _, doc := range b.Documents {
			var head struct {
				Kind       string
				Metadata   struct{ Name, Namespace string }
				MeshConfig *struct {
					ExtensionProviders []any `json:"extensionProviders"`
				} `json:"meshConfig"`
			}
			g.Expect(json.Unmarshal(doc, &head)).To(Succeed())
			switch {
			case head.MeshConfig != nil:
				shown = head.MeshConfig.ExtensionProviders
			case head.Kind == "MFAPolicy" && head.Metadata.Namespace == "apps" && head.Metadata.Name == "portal":
				portal = &v1alpha1.MFAPolicy{}
				g.Expect(json.Unmarshal(doc, portal)).To(Succeed())
			}
		}
	}
	g.Expect(portal).NotTo(BeNil(), "README.md has no MFAPolicy apps/portal")
	g.Expect(shown).NotTo(BeEmpty(), "README.md has no meshConfig block")
	var status struct {
		ExtensionProviders []any `json:"extensionProviders"`
	}
	g.Expect(yaml.Unmarshal([]byte(controllers.IstioExtensionProvider(opts, portal)), &status)).To(Succeed())
	g.Expect(shown).To(Equal(status.ExtensionProviders))
}
