package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// DuoCheckFunc asks Duo whether a provider's credentials work (Auth API
// /check). An error implementing interface{ Terminal() bool } that returns
// true means Duo refused them (a configuration error); any other error means
// Duo could not be asked (retried with backoff).
type DuoCheckFunc func(ctx context.Context, apiHost string, creds policy.DuoCredentials) error

// duoCheckTimeout bounds one call of DuoCheckFunc.
const duoCheckTimeout = 15 * time.Second

// DuoResults remembers, per provider, the outcome of the last Duo check and
// a fingerprint of the credentials it was made with. The bundle reconciler
// puts a Duo provider's credentials in force only once Duo accepted exactly
// those, so a Secret change cannot slip unchecked credentials into the
// bundle between the change and the check. It lives in memory: after a
// restart or a leader change the first checks fill it again, and meanwhile
// the bundle keeps its last good entries.
type DuoResults struct {
	mu      sync.Mutex
	results map[types.NamespacedName]duoResult
}

type duoResult struct {
	fingerprint string
	err         error
}

// NewDuoResults returns an empty record.
func NewDuoResults() *DuoResults {
	return &DuoResults{results: map[types.NamespacedName]duoResult{}}
}

// record stores an outcome and says whether it differs from the last one.
func (d *DuoResults) record(key types.NamespacedName, fingerprint string, err error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.results[key]
	d.results[key] = duoResult{fingerprint: fingerprint, err: err}
	return !ok || old.fingerprint != fingerprint || errorText(old.err) != errorText(err)
}

// Check is a policy.ProviderCheck: a Duo provider is valid only when Duo
// accepted the credentials it resolves to now.
func (d *DuoResults) Check(p *v1alpha1.MFAProvider, entry *policy.BundleProvider) error {
	if entry.Duo == nil || p.Spec.Duo == nil {
		return nil
	}
	d.mu.Lock()
	res, ok := d.results[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}]
	d.mu.Unlock()
	if !ok || res.fingerprint != duoFingerprint(p.Spec.Duo.APIHost, *entry.Duo) {
		return &policy.FieldError{Field: "spec.duo", Reason: v1alpha1.ReasonProgressing, Message: "waiting for Duo to accept the credentials"}
	}
	return res.err
}

// classifyDuoError turns DuoCheckFunc's error into a verdict.
func classifyDuoError(apiHost string, err error) error {
	if err == nil {
		return nil
	}
	var t interface{ Terminal() bool }
	if errors.As(err, &t) && t.Terminal() {
		return &policy.FieldError{Field: "spec.duo", Reason: v1alpha1.ReasonDuoCheckFailed,
			Message: fmt.Sprintf("Duo at %s refused the credentials: %v; check spec.duo.apiHost and the integration and secret keys", apiHost, err)}
	}
	return &transientError{reason: v1alpha1.ReasonDuoUnreachable, err: err,
		message: fmt.Sprintf("spec.duo: Duo at %s could not be reached: %v; retrying", apiHost, err)}
}

// duoFingerprint identifies what was checked without keeping the keys.
func duoFingerprint(apiHost string, c policy.DuoCredentials) string {
	h := sha256.New()
	for _, s := range []string{apiHost, c.IntegrationKey, c.SecretKey, c.CABundle} {
		_ = binary.Write(h, binary.BigEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
