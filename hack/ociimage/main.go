// Command ociimage builds the mfa-operator image without a container
// engine: one layer per platform holding the static binary, the CA
// certificates and a non-root user, an OCI image index over the
// platforms, written as an OCI image layout in a tar archive. It prints
// the index digest, which install.yaml pins.
//
// It is run by hack/release.sh (make release):
//
//	go run ./hack/ociimage -out dist/mfa-operator-v1.2.3.oci.tar \
//	  -binary linux/amd64=BIN -binary linux/arm64=BIN \
//	  -ca-certificates /etc/ssl/certs/ca-certificates.crt \
//	  -version v1.2.3 -revision COMMIT -source URL -created UNIX-SECONDS
//
// The build is reproducible: every timestamp is -created (the commit's
// time), so the same commit gives the same digests.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// binaries are the -binary flags: platform (os/arch[/variant]) to the
// binary built for it.
type binaries []platformBinary

type platformBinary struct {
	platform v1.Platform
	path     string
}

func (b *binaries) String() string { return fmt.Sprint(*b) }

func (b *binaries) Set(s string) error {
	plat, path, ok := strings.Cut(s, "=")
	if !ok || path == "" {
		return fmt.Errorf("%q: want os/arch=PATH, e.g. linux/amd64=bin/linux-amd64/mfa-operator", s)
	}
	p, err := v1.ParsePlatform(plat)
	if err != nil {
		return err
	}
	if p.OS == "" || p.Architecture == "" {
		return fmt.Errorf("%q: the platform needs an OS and an architecture, e.g. linux/arm64", plat)
	}
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8" // as registries and Docker name arm64
	}
	*b = append(*b, platformBinary{platform: *p, path: path})
	return nil
}

func main() {
	var (
		bins    binaries
		opts    imageOptions
		out     = flag.String("out", "", "the OCI image layout archive (.tar) to write")
		sbom    = flag.String("sbom", "", "also write an SPDX 2.3 JSON SBOM of the first binary's Go modules here")
		created = flag.Int64("created", 0, "creation time of the image and its files, in Unix seconds (the commit's time)")
	)
	flag.Var(&bins, "binary", "os/arch=PATH of a static binary, once per platform")
	flag.StringVar(&opts.caCertificates, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of the CA certificates to install")
	flag.StringVar(&opts.version, "version", "", "the version (org.opencontainers.image.version, the layout's ref name)")
	flag.StringVar(&opts.revision, "revision", "", "the source commit (org.opencontainers.image.revision)")
	flag.StringVar(&opts.source, "source", "", "the source repository URL (org.opencontainers.image.source)")
	flag.Parse()
	if *out == "" || len(bins) == 0 || opts.version == "" || opts.revision == "" || opts.source == "" {
		fmt.Fprintln(os.Stderr, "ociimage: -out, -binary, -version, -revision and -source are required")
		flag.Usage()
		os.Exit(2)
	}
	opts.created = time.Unix(*created, 0).UTC()
	if err := run(bins, opts, *out, *sbom); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(bins binaries, opts imageOptions, out, sbomPath string) error {
	idx, sizes, err := buildIndex(bins, opts)
	if err != nil {
		return err
	}
	if err := writeLayoutArchive(out, idx, opts); err != nil {
		return err
	}
	if sbomPath != "" {
		if err := writeSBOM(sbomPath, bins[0].path, opts); err != nil {
			return err
		}
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	for _, s := range sizes {
		fmt.Fprintf(os.Stderr, "%s: %d bytes compressed (manifest, config and layer), %d bytes unpacked\n", s.platform, s.compressed, s.unpacked)
	}
	fmt.Println(digest)
	return nil
}
