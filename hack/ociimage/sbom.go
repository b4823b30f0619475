package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// writeSBOM writes an SPDX 2.3 document of the Go modules compiled into
// the binary, as the Go toolchain recorded them (go version -m): the
// image holds nothing else but the CA certificates.
func writeSBOM(path, binary string, opts imageOptions) error {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("reading the build info of %s: %w", binary, err)
	}
	type externalRef struct {
		Category string `json:"referenceCategory"`
		Type     string `json:"referenceType"`
		Locator  string `json:"referenceLocator"`
	}
	type pkg struct {
		SPDXID           string        `json:"SPDXID"`
		Name             string        `json:"name"`
		Version          string        `json:"versionInfo"`
		DownloadLocation string        `json:"downloadLocation"`
		FilesAnalyzed    bool          `json:"filesAnalyzed"`
		ExternalRefs     []externalRef `json:"externalRefs"`
	}
	type relationship struct {
		Element string `json:"spdxElementId"`
		Type    string `json:"relationshipType"`
		Related string `json:"relatedSpdxElement"`
	}
	purl := func(path, version string) externalRef {
		return externalRef{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/" + path + "@" + version}
	}
	mainID := "SPDXRef-Package-mfa-operator"
	pkgs := []pkg{{
		SPDXID: mainID, Name: info.Main.Path, Version: opts.version,
		DownloadLocation: opts.source, ExternalRefs: []externalRef{purl(info.Main.Path, opts.version)},
	}}
	rels := []relationship{{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: mainID}}
	for i, dep := range info.Deps {
		m := dep
		if dep.Replace != nil {
			m = dep.Replace
		}
		p := pkg{
			SPDXID: fmt.Sprintf("SPDXRef-Package-%d", i), Name: m.Path, Version: m.Version,
			DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
			ExternalRefs:     []externalRef{purl(m.Path, m.Version)},
		}
		pkgs = append(pkgs, p)
		rels = append(rels, relationship{Element: mainID, Type: "DEPENDS_ON", Related: p.SPDXID})
	}
	ns := sha256.Sum256([]byte(opts.source + "@" + opts.revision + "/" + opts.version))
	doc := map[string]any{
		"spdxVersion":       "SPDX-2.3",
		"dataLicense":       "CC0-1.0",
		"SPDXID":            "SPDXRef-DOCUMENT",
		"name":              "mfa-operator-" + opts.version,
		"documentNamespace": "https://spdx.org/spdxdocs/mfa-operator-" + opts.version + "-" + hex.EncodeToString(ns[:8]),
		"creationInfo": map[string]any{
			"created":  opts.created.Format(time.RFC3339),
			"creators": []string{"Tool: mfa-operator hack/ociimage", "Organization: mfa-operator"},
		},
		"packages":      pkgs,
		"relationships": rels,
		"comment":       "Go " + info.GoVersion + "; the image adds the CA certificates of " + opts.caCertificates,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
