package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed settings: the binary is the entrypoint and the
// controller its default command, as in the Dockerfile.
const (
	binaryPath = "/mfa-operator"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	// nonroot, as distroless names 65532.
	userID = 65532
)

type imageOptions struct {
	caCertificates string
	version        string
	revision       string
	source         string
	created        time.Time
}

// labels are the OCI labels of each image config and the annotations of
// each manifest and of the index.
func (o imageOptions) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "mfa-operator",
		"org.opencontainers.image.description": "Kubernetes-native multi-factor authentication in front of any web app",
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.revision":    o.revision,
		"org.opencontainers.image.created":     o.created.Format(time.RFC3339),
	}
}

type imageSize struct {
	platform   string
	compressed int64
	unpacked   int64
}

// buildIndex builds one image per binary and the index over them.
func buildIndex(bins binaries, opts imageOptions) (v1.ImageIndex, []imageSize, error) {
	ca, err := os.ReadFile(opts.caCertificates)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CA certificates: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var sizes []imageSize
	for _, b := range bins {
		img, unpacked, err := buildImage(b, ca, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", b.platform, err)
		}
		size, err := compressedSize(img)
		if err != nil {
			return nil, nil, err
		}
		sizes = append(sizes, imageSize{platform: b.platform.String(), compressed: size, unpacked: unpacked})
		plat := b.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plat, Annotations: opts.labels()},
		})
	}
	return mutate.Annotations(idx, opts.labels()).(v1.ImageIndex), sizes, nil
}

func buildImage(b platformBinary, ca []byte, opts imageOptions) (v1.Image, int64, error) {
	bin, err := os.ReadFile(b.path)
	if err != nil {
		return nil, 0, err
	}
	rootfs, err := rootFS(bin, ca, opts.created)
	if err != nil {
		return nil, 0, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, 0, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   v1.Time{Time: opts.created},
		CreatedBy: "mfa-operator release: the static binary, CA certificates, user nonroot (65532)",
	}})
	if err != nil {
		return nil, 0, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, 0, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = b.platform.OS, b.platform.Architecture, b.platform.Variant
	cf.Created = v1.Time{Time: opts.created}
	cf.Author = ""
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", userID, userID),
		Entrypoint: []string{binaryPath},
		Cmd:        []string{"controller"},
		WorkingDir: "/",
		Env:        []string{"SSL_CERT_FILE=" + caPath},
		Labels:     maps.Clone(opts.labels()),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, 0, err
	}
	return mutate.Annotations(img, opts.labels()).(v1.Image), int64(len(rootfs)), nil
}

// compressedSize is what pulling the image transfers: manifest, config
// and layers.
func compressedSize(img v1.Image) (int64, error) {
	m, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	mf, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	total := int64(len(m)) + mf.Config.Size
	for _, l := range mf.Layers {
		total += l.Size
	}
	return total, nil
}
