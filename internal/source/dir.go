package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/keyring"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

const (
	// configPollInterval is how often the config directory is checked for
	// changes (names, sizes and modification times).
	configPollInterval = time.Second
	// KeyringFileName is the standalone keyring in Dir.DataDir.
	KeyringFileName    = "keyring.json"
	maxConfigFileBytes = 4 << 20
)

// Dir is standalone mode's configuration: MFAPolicy, MFAProvider and
// Secret objects read from YAML/JSON files in ConfigDir, built into a
// bundle as the controller builds it, and a keyring file in DataDir,
// generated when absent. Both are polled for changes.
type Dir struct {
	// ConfigDir holds the objects' files.
	ConfigDir string
	// DataDir holds the keyring (KeyringFileName, generated 0600).
	DataDir string
	// IdentityHeaders are the only identity headers policies may name
	// (nil: any), as the controller's --identity-headers.
	IdentityHeaders []string
	// GeoIP: the server has a GeoIP database (--geoip-db), so policies may
	// read request.geo.
	GeoIP bool
	// Now is the clock of generated keys.
	Now func() time.Time
	// Log receives the objects found invalid and a generated keyring.
	Log *slog.Logger

	// last is the last bundle put in force: objects that turn invalid
	// keep their version from it.
	last *policy.Bundle
	// invalid is whether the last read of the config directory found
	// anything not valid, to say when it is valid again.
	invalid bool
}

// Run implements Source: it loads the config directory and the keyring
// file, then polls both for changes until ctx ends.
func (d *Dir) Run(ctx context.Context, sink Sink) error {
	var last uint64
	t := time.NewTicker(configPollInterval)
	defer t.Stop()
	for {
		fp := d.fingerprint()
		if fp != last {
			last = fp
			d.Reload(sink)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Reload loads the keyring file (generating it when absent) and the
// objects of the config directory into sink, once. Errors are recorded
// by sink and logged; whatever is refused leaves the last good in force.
func (d *Dir) Reload(sink Sink) {
	if raw, err := d.ReadOrCreateKeyring(); err != nil {
		sink.RefuseKeyring(err)
	} else {
		_ = sink.ApplyKeyring(raw, filepath.Join(d.DataDir, KeyringFileName))
	}

	objs, err := readConfigDir(d.ConfigDir)
	if err != nil {
		d.invalid = true
		sink.RefuseBundle(fmt.Errorf("config directory %s refused: %w", d.ConfigDir, err))
		return
	}
	policy.Precompile(objs.policies)
	b, verdicts := objs.BuildWith(d.last, policy.BuildOptions{IdentityHeaders: d.IdentityHeaders, GeoIP: d.GeoIP})
	refused := d.logVerdicts(verdicts)
	if objSink, ok := sink.(ObjectSink); ok {
		objSink.RefuseObjects(refused)
	}
	_, hash, err := b.Marshal()
	if err != nil {
		d.invalid = true
		sink.RefuseBundle(fmt.Errorf("encoding the bundle: %w", err))
		return
	}
	if sink.ApplyBundle(b, hash, "config directory "+d.ConfigDir) != nil {
		d.invalid = true
		return
	}
	d.last = b
	if d.invalid && len(refused) == 0 {
		d.Log.Info("configuration valid again", "configDir", d.ConfigDir)
	}
	d.invalid = len(refused) > 0
}

// logVerdicts logs the objects found invalid and returns them.
func (d *Dir) logVerdicts(v policy.Verdicts) []RefusedObject {
	var refused []RefusedObject
	for _, k := range sortedKeys(v.Providers) {
		if err := v.Providers[k]; err != nil {
			d.Log.Error("MFAProvider is not valid and is not in force (a previous valid version stays)", "provider", k.String(), "error", err)
			refused = append(refused, RefusedObject{Kind: "MFAProvider", Name: k, Err: err})
		}
	}
	for _, k := range sortedKeys(v.Policies) {
		if err := v.Policies[k]; err != nil {
			d.Log.Error("MFAPolicy is not valid and is not in force (a previous valid version stays)", "policy", k.String(), "error", err)
			refused = append(refused, RefusedObject{Kind: "MFAPolicy", Name: k, Err: err})
		}
	}
	return refused
}

func sortedKeys(m map[types.NamespacedName]error) []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}

// fingerprint hashes the names, sizes and modification times of the
// config files and of the keyring file (following symlinks, as in a
// mounted ConfigMap), to notice changes without reading them.
func (d *Dir) fingerprint() uint64 {
	h := fnv.New64a()
	add := func(path string) {
		fi, err := os.Stat(path)
		if err != nil {
			fmt.Fprintf(h, "%s:missing;", path)
			return
		}
		fmt.Fprintf(h, "%s:%d:%d:%d;", path, fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
	}
	entries, err := os.ReadDir(d.ConfigDir)
	if err != nil {
		fmt.Fprintf(h, "error:%v;", err)
	}
	for _, e := range entries {
		add(filepath.Join(d.ConfigDir, e.Name()))
	}
	add(filepath.Join(d.DataDir, KeyringFileName))
	return h.Sum64()
}

// ReadOrCreateKeyring reads DataDir/keyring.json, generating it (0600)
// when it does not exist.
func (d *Dir) ReadOrCreateKeyring() ([]byte, error) {
	if d.DataDir == "" {
		return nil, errors.New("no --data-dir for the keyring")
	}
	path := filepath.Join(d.DataDir, KeyringFileName)
	raw, err := os.ReadFile(path)
	if err == nil {
		return raw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading keyring %s: %w", path, err)
	}
	if err := os.MkdirAll(d.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", d.DataDir, err)
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	kd, err := keyring.Generate(now())
	if err != nil {
		return nil, fmt.Errorf("generating keyring: %w", err)
	}
	raw, err = kd.Marshal()
	if err != nil {
		return nil, err
	}
	// O_EXCL: two servers sharing a data dir never overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing keyring %s: %w", path, err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing keyring %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing keyring %s: %w", path, err)
	}
	d.Log.Info("generated a new keyring", "path", path)
	return raw, nil
}

// Objects are the objects read from the config directory.
type Objects struct {
	policies  []v1alpha1.MFAPolicy
	providers []v1alpha1.MFAProvider
	secrets   map[types.NamespacedName]*corev1.Secret
	// namespaceLabels are the labels of the Namespace objects, for
	// providers' allowedNamespaceSelector.
	namespaceLabels map[string]map[string]string
	// policyOrigins and providerOrigins say where each policy and
	// provider was read (same index); at is the document being read.
	policyOrigins, providerOrigins []Origin
	at                             Origin
}

// NewObjects returns an empty set of objects.
func NewObjects() *Objects {
	return &Objects{secrets: map[types.NamespacedName]*corev1.Secret{}, namespaceLabels: map[string]map[string]string{}}
}

// Build compiles the objects into a bundle as the controller does;
// previous holds the last valid version of objects that turned invalid,
// identityHeaders the headers policies may name (nil: any).
func (o *Objects) Build(previous *policy.Bundle, identityHeaders []string) (*policy.Bundle, policy.Verdicts) {
	return o.BuildWith(previous, policy.BuildOptions{IdentityHeaders: identityHeaders})
}

// BuildWith is Build with the options of the build; the namespace labels
// are those of the Namespace objects read.
func (o *Objects) BuildWith(previous *policy.Bundle, opts policy.BuildOptions) (*policy.Bundle, policy.Verdicts) {
	opts.NamespaceLabels = o.namespaceLabels
	return policy.BuildBundle(o.policies, o.providers, o.secrets, previous, opts)
}

func (o *Objects) addObject(js []byte) error {
	if string(bytes.TrimSpace(js)) == "null" {
		return nil // a document of comments only
	}
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return err
	}
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	switch {
	case head.Kind == "List":
		for i, item := range head.Items {
			if err := o.addObject(item); err != nil {
				return fmt.Errorf("items[%d]: %w", i, err)
			}
		}
	case head.Kind == "MFAPolicy" && head.APIVersion == v1alpha1.GroupVersion.String():
		var p v1alpha1.MFAPolicy
		if err := strict(&p); err != nil {
			return fmt.Errorf("MFAPolicy: %w", err)
		}
		defaultNamespace(&p.Namespace)
		o.policies = append(o.policies, p)
		o.policyOrigins = append(o.policyOrigins, o.at)
	case head.Kind == "MFAProvider" && head.APIVersion == v1alpha1.GroupVersion.String():
		var p v1alpha1.MFAProvider
		if err := strict(&p); err != nil {
			return fmt.Errorf("MFAProvider: %w", err)
		}
		defaultNamespace(&p.Namespace)
		o.providers = append(o.providers, p)
		o.providerOrigins = append(o.providerOrigins, o.at)
	case head.Kind == "Secret" && head.APIVersion == "v1":
		var sec corev1.Secret
		if err := strict(&sec); err != nil {
			return fmt.Errorf("Secret: %w", err)
		}
		defaultNamespace(&sec.Namespace)
		k := types.NamespacedName{Namespace: sec.Namespace, Name: sec.Name}
		if o.secrets[k] != nil {
			return fmt.Errorf("Secret %s is defined more than once; keep one definition", k)
		}
		o.secrets[k] = &sec
	case head.Kind == "Namespace" && head.APIVersion == "v1":
		var ns corev1.Namespace
		if err := strict(&ns); err != nil {
			return fmt.Errorf("Namespace: %w", err)
		}
		if _, dup := o.namespaceLabels[ns.Name]; dup {
			return fmt.Errorf("Namespace %s is defined more than once; keep one definition", ns.Name)
		}
		o.namespaceLabels[ns.Name] = ns.Labels
	case head.Kind == "MFAPolicy" || head.Kind == "MFAProvider":
		return fmt.Errorf("%s has apiVersion %q; use %s", head.Kind, head.APIVersion, v1alpha1.GroupVersion.String())
	case head.Kind == "":
		return errors.New("no kind; every object needs apiVersion and kind")
	}
	return nil
}

// defaultNamespace gives objects without a namespace the one kubectl
// would: default.
func defaultNamespace(ns *string) {
	if *ns == "" {
		*ns = "default"
	}
}
