package admin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/revocation"
	"github.com/mfa-operator/mfa-operator/internal/source"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// PolicyProviders resolves --policy ns/name into the providers its rules
// accept.
type PolicyProviders func(ctx context.Context, ref string) ([]string, error)

// Standalone builds the Admin of a standalone server's directories. The
// enrolment store is opened only by the commands that need it (revoke does
// not): only one process can hold it, so users, reset and unlock need the
// server stopped. The returned func closes it.
func Standalone(configDir, dataDir string, needStore bool, a *audit.Logger, now func() time.Time) (*Admin, PolicyProviders, func(), error) {
	ad := &Admin{
		Revoker: &revocation.FileStore{Path: filepath.Join(dataDir, revocation.FileName), Now: now},
		Audit:   a,
		Actor:   osUser(),
		Now:     now,
	}
	closeFn := func() {}
	if needStore {
		path := filepath.Join(dataDir, "enrollments.db")
		if _, err := os.Stat(path); err != nil {
			return nil, nil, nil, fmt.Errorf("no enrolment store in --data-dir %s: %w", dataDir, err)
		}
		fs, err := store.NewFileStore(path)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w (the standalone server holds it while it runs: stop it for users, reset and unlock; revoke works while it runs)", err)
		}
		ad.Store, ad.Lister = fs, fs
		closeFn = func() { _ = fs.Close() }
	}
	ad.Keys = func(ctx context.Context, user string) ([]store.Key, error) {
		_, providers, err := source.ReadObjects(configDir)
		if err != nil {
			return nil, fmt.Errorf("reading --config-dir %s: %w", configDir, err)
		}
		var keys []store.Key
		for _, p := range providers {
			keys = append(keys, store.Key{Provider: p.Namespace + "/" + p.Name, User: user, ProviderCreated: p.CreationTimestamp.Time})
		}
		return keys, nil
	}
	resolve := func(ctx context.Context, ref string) ([]string, error) {
		ns, name, err := splitRef(ref, "--policy")
		if err != nil {
			return nil, err
		}
		policies, _, err := source.ReadObjects(configDir)
		if err != nil {
			return nil, fmt.Errorf("reading --config-dir %s: %w", configDir, err)
		}
		for i := range policies {
			if policies[i].Namespace == ns && policies[i].Name == name {
				return policyProviders(&policies[i]), nil
			}
		}
		return nil, fmt.Errorf("no MFAPolicy %s/%s in --config-dir %s", ns, name, configDir)
	}
	return ad, resolve, closeFn, nil
}

func osUser() string {
	if u := os.Getenv("USER"); u != "" {
		return "os:" + u
	}
	return fmt.Sprintf("os:uid-%d", os.Getuid())
}

// policyProviders are the namespace/name of the providers p's rules accept.
func policyProviders(p *v1alpha1.MFAPolicy) []string {
	out := []string{}
	for _, r := range p.Spec.Rules {
		if r.Multifactor == nil {
			continue
		}
		for _, ref := range r.Multifactor.Providers {
			if !strings.Contains(ref, "/") {
				ref = p.Namespace + "/" + ref
			}
			out = append(out, ref)
		}
	}
	return out
}

// splitRef reads namespace/name.
func splitRef(ref, what string) (string, string, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%s %q is not namespace/name", what, ref)
	}
	return ns, name, nil
}
