//go:build e2e

package release

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
)

// ociLayout unpacks the release's image archive and returns its index:
// the one image index that index.json names with the version.
func ociLayout(t *testing.T) v1.ImageIndex {
	t.Helper()
	g := NewWithT(t)
	dir := t.TempDir()
	f, err := os.Open(filepath.Join(distDir, "mfa-operator-"+releaseVersion+".oci.tar"))
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(h.Name).NotTo(ContainSubstring(".."))
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			g.Expect(os.MkdirAll(p, 0o755)).To(Succeed())
			continue
		}
		b, err := io.ReadAll(tr)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(os.WriteFile(p, b, 0o644)).To(Succeed())
	}
	root, err := layout.ImageIndexFromPath(dir)
	g.Expect(err).NotTo(HaveOccurred())
	rm, err := root.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rm.Manifests).To(HaveLen(1))
	g.Expect(rm.Manifests[0].Annotations).To(HaveKeyWithValue("org.opencontainers.image.ref.name", releaseVersion))
	idx, err := root.ImageIndex(rm.Manifests[0].Digest)
	g.Expect(err).NotTo(HaveOccurred())
	// install.yaml pins this very index.
	g.Expect(image).To(HaveSuffix("@" + rm.Manifests[0].Digest.String()))
	return idx
}

// platformImage is the image for os/arch in the index.
func platformImage(t *testing.T, idx v1.ImageIndex, arch string) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == arch {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no linux/%s image in the index", arch)
	return nil
}

// imageFiles reads the image's filesystem: its one layer.
func imageFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	files, _ := readLayer(t, img, "")
	return files
}

// readLayer lists the layer's entries and returns the content of want.
func readLayer(t *testing.T, img v1.Image, want string) (map[string]*tar.Header, []byte) {
	t.Helper()
	g := NewWithT(t)
	layers, err := img.Layers()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(layers).To(HaveLen(1))
	rc, err := layers[0].Uncompressed()
	g.Expect(err).NotTo(HaveOccurred())
	defer rc.Close()
	files := map[string]*tar.Header{}
	var content []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		g.Expect(err).NotTo(HaveOccurred())
		files[h.Name] = h
		if h.Name == want {
			content, err = io.ReadAll(tr)
			g.Expect(err).NotTo(HaveOccurred())
		}
	}
	return files, content
}

// TestImageIndexHoldsBothArchitectures: linux/amd64 and linux/arm64, each
// with a config for its platform.
func TestImageIndexHoldsBothArchitectures(t *testing.T) {
	g := NewWithT(t)
	idx := ociLayout(t)
	im, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	g.Expect(platforms).To(ConsistOf("linux/amd64", "linux/arm64/v8"))
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		img := platformImage(t, idx, arch)
		cf, err := img.ConfigFile()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cf.OS).To(Equal("linux"))
		g.Expect(cf.Architecture).To(Equal(arch))
		_, bin := readLayer(t, img, "mfa-operator")
		ef, err := elf.NewFile(bytes.NewReader(bin))
		g.Expect(err).NotTo(HaveOccurred(), "the %s binary", arch)
		g.Expect(ef.Machine).To(Equal(machine), "the %s binary", arch)
		// Static: no interpreter to load it.
		g.Expect(ef.Section(".interp")).To(BeNil(), "the %s binary is static", arch)
	}
}

// TestImageConfigRunsTheBinaryAsNonRoot: user 65532, the binary as
// entrypoint, the controller as default command, the OCI labels.
func TestImageConfigRunsTheBinaryAsNonRoot(t *testing.T) {
	idx := ociLayout(t)
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			g := NewWithT(t)
			img := platformImage(t, idx, arch)
			cf, err := img.ConfigFile()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cf.Config.User).To(Equal("65532:65532"))
			g.Expect(cf.Config.Entrypoint).To(Equal([]string{"/mfa-operator"}))
			g.Expect(cf.Config.Cmd).To(Equal([]string{"controller"}))
			rev := makeVar("REVISION")
			g.Expect(cf.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.version", releaseVersion))
			g.Expect(cf.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.revision", rev))
			g.Expect(cf.Config.Labels).To(HaveKeyWithValue("org.opencontainers.image.source", "https://github.com/mfa-operator/mfa-operator"))
			m, err := img.Manifest()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(m.MediaType)).To(Equal("application/vnd.oci.image.manifest.v1+json"))
			g.Expect(m.Annotations).To(HaveKeyWithValue("org.opencontainers.image.revision", rev))
		})
	}
}

// TestImageFilesystemIsStaticAndReadOnlyFriendly: the binary, the CA
// certificates of this machine's ca-certificates package, the nonroot
// user; nothing for a shell, and nothing the user may write outside its
// home and /tmp.
func TestImageFilesystemIsStaticAndReadOnlyFriendly(t *testing.T) {
	g := NewWithT(t)
	img := platformImage(t, ociLayout(t), "amd64")
	files, ca := readLayer(t, img, "etc/ssl/certs/ca-certificates.crt")
	want, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ca).To(Equal(want))
	var names []string
	for name, h := range files {
		names = append(names, name)
		g.Expect(h.Uid == 0 || name == "home/nonroot/").To(BeTrue(), "%s belongs to %d", name, h.Uid)
		if h.Typeflag == tar.TypeReg {
			g.Expect(h.Mode&0o022).To(BeZero(), "%s is writable by others than root", name)
		}
	}
	g.Expect(names).To(ConsistOf("etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/",
		"etc/ssl/certs/ca-certificates.crt", "home/", "home/nonroot/", "mfa-operator", "tmp/"))
	g.Expect(files["mfa-operator"].Mode & 0o111).NotTo(BeZero())
	_, passwd := readLayer(t, img, "etc/passwd")
	g.Expect(strings.Split(string(passwd), "\n")).To(ContainElement(HavePrefix("nonroot:x:65532:65532:")))
}

// TestChecksumsListEveryFile: sha256sum -c checksums.txt passes and
// names every file of the release.
func TestChecksumsListEveryFile(t *testing.T) {
	g := NewWithT(t)
	sums := string(distFile(t, "checksums.txt"))
	entries, err := os.ReadDir(distDir)
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		if e.Name() != "checksums.txt" {
			names = append(names, e.Name())
			g.Expect(sums).To(ContainSubstring("  "+e.Name()+"\n"), "checksums.txt names %s", e.Name())
		}
	}
	g.Expect(names).To(ConsistOf("crds.yaml", "install.yaml", "mfa-operator-0.0.0-e2e.tgz",
		"mfa-operator-"+releaseVersion+".oci.tar", "mfa-operator-"+releaseVersion+".spdx.json"))
	out, err := runIn(distDir, "sha256sum", "-c", "checksums.txt")
	g.Expect(err).NotTo(HaveOccurred(), out)
}

// TestSBOMListsTheBinarysModules: the SPDX document names the operator and
// the modules compiled into it, with the versions go.mod requires.
func TestSBOMListsTheBinarysModules(t *testing.T) {
	g := NewWithT(t)
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name    string `json:"name"`
			Version string `json:"versionInfo"`
		} `json:"packages"`
	}
	g.Expect(json.Unmarshal(distFile(t, "mfa-operator-"+releaseVersion+".spdx.json"), &doc)).To(Succeed())
	g.Expect(doc.SPDXVersion).To(Equal("SPDX-2.3"))
	pkgs := map[string]string{}
	for _, p := range doc.Packages {
		pkgs[p.Name] = p.Version
	}
	g.Expect(pkgs).To(HaveKeyWithValue("github.com/mfa-operator/mfa-operator", releaseVersion))
	g.Expect(pkgs).To(HaveKeyWithValue("sigs.k8s.io/controller-runtime", "v0.25.2"))
	g.Expect(pkgs).To(HaveKeyWithValue("github.com/duosecurity/duo_api_golang", "v0.3.0"))
}

// TestImagePushesToARegistry: the index goes to a registry (ggcr's, in
// process) and comes back by digest for each platform, as crane push of
// the unpacked layout does.
func TestImagePushesToARegistry(t *testing.T) {
	g := NewWithT(t)
	idx := ociLayout(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/mfa-operator:" + releaseVersion)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.WriteIndex(ref, idx)).To(Succeed())
	want, err := idx.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	desc, err := remote.Get(ref)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(desc.Digest).To(Equal(want))
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img, err := remote.Image(ref, remote.WithPlatform(p))
		g.Expect(err).NotTo(HaveOccurred())
		cf, err := img.ConfigFile()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cf.Architecture).To(Equal(p.Architecture))
	}
}
