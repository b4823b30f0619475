// Package testcrds installs the real CustomResourceDefinitions of the front
// doors mfa-operator writes objects for (Gateway API, Envoy Gateway,
// Traefik, Istio) into a test API server, taken from those projects' own Go
// modules, so that the API server validates what the controller writes
// against the schemas the front doors ship.
package testcrds

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// Set is the CRDs of one project: the files matching Glob in Dir of a Go
// module's zip.
type Set struct {
	Name            string
	Module, Version string
	Dir, Glob       string
}

// The front doors' CRDs, at the versions the product is tested with.
var (
	// GatewayAPI is the experimental channel: its HTTPRoute carries the
	// ExternalAuth filter.
	GatewayAPI = Set{Name: "Gateway API", Module: "sigs.k8s.io/gateway-api", Version: "v1.6.1",
		Dir: "config/crd/experimental", Glob: "gateway.networking*.yaml"}
	// EnvoyGateway's CRDs are Helm templates, each wrapped in one
	// {{- if }} ... {{- end }}.
	EnvoyGateway = Set{Name: "Envoy Gateway", Module: "github.com/envoyproxy/gateway", Version: "v1.9.1",
		Dir: "charts/gateway-crds-helm/templates/generated", Glob: "gateway.envoyproxy.io_*.yaml"}
	Traefik = Set{Name: "Traefik", Module: "github.com/traefik/traefik/v3", Version: "v3.6.12",
		Dir: "docs/content/reference/dynamic-configuration", Glob: "traefik.io_*.yaml"}
	Istio = Set{Name: "Istio", Module: "istio.io/api", Version: "v1.32.0",
		Dir: "kubernetes", Glob: "customresourcedefinitions.gen.yaml"}
)

// FrontDoors are every set above, Gateway API first.
var FrontDoors = []Set{GatewayAPI, EnvoyGateway, Traefik, Istio}

var (
	dirsMu sync.Mutex
	dirs   = map[string]string{}
)

// ModuleDir returns the directory of module@version in the Go module
// cache, downloading it (`go mod download -json`) when it is not there yet.
// The project's go.mod is not touched: the command runs outside it.
func ModuleDir(module, version string) (string, error) {
	key := module + "@" + version
	dirsMu.Lock()
	defer dirsMu.Unlock()
	if d, ok := dirs[key]; ok {
		return d, nil
	}
	cmd := exec.Command("go", "mod", "download", "-json", key)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	if err != nil || info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v %s %s", key, err, info.Error, strings.TrimSpace(stderr.String()))
	}
	dirs[key] = info.Dir
	return info.Dir, nil
}

// Files returns the CRD files of a set, sorted.
func (s Set) Files() ([]string, error) {
	dir, err := ModuleDir(s.Module, s.Version)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(s.Dir), s.Glob))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no file %s in %s@%s", s.Name, path.Join(s.Dir, s.Glob), s.Module, s.Version)
	}
	sort.Strings(files)
	return files, nil
}

// Load reads the CRDs of the sets. Other objects in the files (Gateway
// API ships a ValidatingAdmissionPolicy beside its CRDs) are left out.
func Load(sets ...Set) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, s := range sets {
		files, err := s.Files()
		if err != nil {
			return nil, err
		}
		n := len(crds)
		for _, f := range files {
			got, err := loadFile(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", s.Name, f, err)
			}
			crds = append(crds, got...)
		}
		if len(crds) == n {
			return nil, fmt.Errorf("%s: no CustomResourceDefinition in %d files", s.Name, len(files))
		}
	}
	return crds, nil
}

func loadFile(name string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stripTemplateLines(raw))))
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, err
		}
		if head.Kind != "CustomResourceDefinition" {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			return nil, err
		}
		out = append(out, crd)
	}
}

// stripTemplateLines drops the lines that are only a Helm action
// ("{{- if .Values.crds.envoyGateway.enabled }}", "{{- end }}"): the
// CRD files of a chart's templates are otherwise plain YAML. A file with
// an action inside a line would fail to parse, which says so.
func stripTemplateLines(raw []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if bytes.HasPrefix(t, []byte("{{")) && bytes.HasSuffix(t, []byte("}}")) {
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}

// Install creates the CRDs of the sets in the API server of cfg and waits
// until they are served. CRDs already there are updated.
func Install(cfg *rest.Config, sets ...Set) error {
	crds, err := Load(sets...)
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: crds})
	return err
}
