// Package admin is what a helpdesk does to users' second factors: list
// enrolments, reset them, revoke sessions and remembered browsers, lift a
// lockout. The same operations serve the kubectl plugin (kubectl mfa) in a
// cluster and `mfa-operator users` next to a standalone server; every one
// writes an audit line and, in a cluster, a Kubernetes Event on the
// MFAProvider concerned.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mfa-operator/mfa-operator/internal/audit"
	"github.com/mfa-operator/mfa-operator/internal/store"
)

// Factor names, as `users` shows them and `reset --factor` takes them.
const (
	FactorTOTP          = "totp"
	FactorWebAuthn      = "webauthn"
	FactorRecoveryCodes = "recovery-codes"
)

// Factors are the factor names reset --factor accepts.
var Factors = []string{FactorTOTP, FactorWebAuthn, FactorRecoveryCodes}

// Revoker records a user's revocation (revocation.ClusterStore or
// revocation.FileStore).
type Revoker interface {
	Revoke(ctx context.Context, user string, at time.Time) error
}

// Events records a Kubernetes Event on an MFAProvider; nil in standalone
// mode.
type Events interface {
	Record(ctx context.Context, provider, reason, message string) error
}

// Admin carries out the operations against one installation.
type Admin struct {
	Store  store.Store
	Lister store.Lister
	// Keys are the keys (one per provider) that may hold user's
	// enrolments.
	Keys    func(ctx context.Context, user string) ([]store.Key, error)
	Revoker Revoker
	Events  Events
	Audit   *audit.Logger
	// Actor names who runs the command, in audit lines and Events.
	Actor string
	// Warn receives what failed without failing the operation (an Event
	// that could not be written).
	Warn func(format string, args ...any)
	Now  func() time.Time
}

// Row is one factor of one user, as `users` lists it.
type Row struct {
	User, Provider, Factor string
	Created, LastUsed      time.Time
	// Detail is e.g. "8 left" for recovery codes.
	Detail string
	// LockedUntil is set while the user is locked out.
	LockedUntil time.Time
	// RememberedBrowsers is how many browsers the user has remembered
	// (recorded when remembered; see browsers.go), the same on every row
	// of the user.
	RememberedBrowsers int
}

// Users lists the factors of every enrolled user; only those of providers
// when providers is not nil. The store is read a page at a time and only
// the rows are kept, so memory grows with the rows shown, not with the
// stored records.
func (a *Admin) Users(ctx context.Context, providers []string) ([]Row, error) {
	now := a.Now()
	var rows []Row
	browsers := newBrowserCounter(now)
	err := a.Lister.Each(ctx, func(e *store.Enrollment) error {
		if providers != nil && !slices.Contains(providers, e.Provider) {
			return nil
		}
		browsers.add(e)
		rows = append(rows, userRows(e, now)...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	browsers.apply(rows)
	slices.SortFunc(rows, func(x, y Row) int {
		return strings.Compare(x.User+"\x00"+x.Provider+"\x00"+x.Factor, y.User+"\x00"+y.Provider+"\x00"+y.Factor)
	})
	return rows, nil
}

// userRows are the rows of one enrolment: one per factor, or one "-" row
// for a user locked out with no factor left.
func userRows(e *store.Enrollment, now time.Time) []Row {
	var locked time.Time
	if e.LockedUntil.After(now) {
		locked = e.LockedUntil
	}
	var rows []Row
	if t := e.TOTP; t != nil {
		r := Row{User: e.User, Provider: e.Provider, Factor: FactorTOTP, Created: t.Created, LockedUntil: locked}
		if t.LastStep > 0 && t.PeriodSeconds > 0 {
			r.LastUsed = time.Unix(t.LastStep*int64(t.PeriodSeconds), 0).UTC()
		}
		rows = append(rows, r)
	}
	if w := e.WebAuthn; w != nil {
		for _, c := range w.Credentials {
			rows = append(rows, Row{User: e.User, Provider: e.Provider, Factor: FactorWebAuthn, Detail: keyDetail(c),
				Created: c.Created, LastUsed: c.LastUsed, LockedUntil: locked})
		}
	}
	if c := len(e.RecoveryCodeHashes); c > 0 {
		rows = append(rows, Row{User: e.User, Provider: e.Provider, Factor: FactorRecoveryCodes, Detail: fmt.Sprintf("%d left", c), LockedUntil: locked})
	}
	if len(rows) == 0 && !locked.IsZero() {
		rows = append(rows, Row{User: e.User, Provider: e.Provider, Factor: "-", LockedUntil: locked})
	}
	return rows
}

// keyDetail describes a WebAuthn key for `users`: its name (without
// control characters, which a terminal would act on), and whether it may
// be synced to other devices (a passkey) or is bound to one.
func keyDetail(c store.WebAuthnCredential) string {
	kind := "device-bound"
	if c.BackupEligible {
		kind = "synced passkey"
	}
	name := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, c.Name)
	if name == "" {
		return kind
	}
	return name + ", " + kind
}

// ErrUnknownFactor is a --factor that names no factor.
var ErrUnknownFactor = errors.New("unknown factor")

// Reset removes user's enrolment (with provider only, when not empty; only
// factor, when not empty) so that the user enrols again at the next
// visit, and revokes every session and remembered browser issued before
// now. It returns the providers whose enrolment changed.
func (a *Admin) Reset(ctx context.Context, user, provider, factor string) ([]string, error) {
	clear := func(e *store.Enrollment) {
		// Everything but the replay guard of Duo pushes: a push approved
		// before the reset still issues no second session.
		*e = store.Enrollment{User: e.User, Provider: e.Provider, DuoPushesUsed: e.DuoPushesUsed}
	}
	switch factor {
	case "":
	case FactorTOTP:
		// The recovery codes were given with the authenticator app: they go too.
		// A WebAuthn provider's record keeps its own.
		clear = func(e *store.Enrollment) {
			if e.WebAuthn == nil {
				e.RecoveryCodeHashes = nil
			}
			e.TOTP, e.Pending, e.LegacyPendingTOTP = nil, nil, nil
		}
	case FactorWebAuthn:
		// Every key of the user, with the recovery codes given with the
		// first; ceremonies in progress die with them. A TOTP provider's
		// record keeps its own.
		clear = func(e *store.Enrollment) {
			if e.WebAuthn != nil {
				e.RecoveryCodeHashes = nil
			}
			e.WebAuthn = nil
		}
	case FactorRecoveryCodes:
		clear = func(e *store.Enrollment) { e.RecoveryCodeHashes = nil }
	default:
		return nil, fmt.Errorf("%w %q: one of %s", ErrUnknownFactor, factor, strings.Join(Factors, ", "))
	}
	changed, err := a.updateEach(ctx, user, provider, clear)
	if err != nil {
		return changed, err
	}
	reason := "all factors"
	if factor != "" {
		reason = "factor " + factor
	}
	for _, p := range changed {
		a.audit(ctx, audit.EventReset, user, p, reason)
		a.event(ctx, p, "MFAReset", fmt.Sprintf("Enrolment of user %q reset (%s) by %s; the user enrols again at the next visit", user, reason, a.Actor))
	}
	return changed, a.revoke(ctx, user, changed, "reset")
}

// Revoke signs user out of every session and remembered browser issued
// before now; enrolments stay.
func (a *Admin) Revoke(ctx context.Context, user string) error {
	if a.Store == nil {
		// Standalone while the server holds the store: the revocation
		// alone (no Events to name providers for there).
		return a.revoke(ctx, user, nil, "revoke")
	}
	keys, err := a.enrolled(ctx, user, "")
	if err != nil {
		return err
	}
	var providers []string
	for _, k := range keys {
		providers = append(providers, k.Provider)
	}
	return a.revoke(ctx, user, providers, "revoke")
}

func (a *Admin) revoke(ctx context.Context, user string, providers []string, why string) error {
	if err := a.Revoker.Revoke(ctx, user, a.Now()); err != nil {
		return fmt.Errorf("revoking the sessions of user %q: %w", user, err)
	}
	a.audit(ctx, audit.EventRevocation, user, strings.Join(providers, ","), why)
	for _, p := range providers {
		a.event(ctx, p, "MFARevoked", fmt.Sprintf("Every session and remembered browser of user %q issued before now revoked by %s (%s)", user, a.Actor, why))
	}
	return nil
}

// Unlock lifts user's lockout (with provider only, when not empty) and
// forgets the failed attempts. It returns the providers unlocked.
func (a *Admin) Unlock(ctx context.Context, user, provider string) ([]string, error) {
	changed, err := a.updateEach(ctx, user, provider, func(e *store.Enrollment) {
		e.LockedUntil, e.FailedAttempts, e.Lockouts = time.Time{}, nil, 0
	})
	for _, p := range changed {
		a.audit(ctx, audit.EventUnlock, user, p, "")
		a.event(ctx, p, "MFAUnlocked", fmt.Sprintf("Lockout of user %q lifted by %s", user, a.Actor))
	}
	return changed, err
}

// updateEach applies fn to each of user's enrolments (of provider, when
// not empty) and returns the providers whose record changed.
func (a *Admin) updateEach(ctx context.Context, user, provider string, fn func(e *store.Enrollment)) ([]string, error) {
	keys, err := a.Keys(ctx, user)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, k := range keys {
		if provider != "" && k.Provider != provider {
			continue
		}
		did := false
		_, err := a.Store.Update(ctx, k, func(e *store.Enrollment) error {
			before, _ := json.Marshal(e)
			fn(e)
			after, _ := json.Marshal(e)
			did = !bytes.Equal(before, after)
			return nil
		})
		if err != nil {
			return changed, err
		}
		if did {
			changed = append(changed, k.Provider)
		}
	}
	return changed, nil
}

// enrolled are the keys of user's non-empty enrolments.
func (a *Admin) enrolled(ctx context.Context, user, provider string) ([]store.Key, error) {
	keys, err := a.Keys(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []store.Key
	empty := func(k store.Key) []byte {
		b, _ := json.Marshal(&store.Enrollment{User: k.User, Provider: k.Provider})
		return b
	}
	for _, k := range keys {
		if provider != "" && k.Provider != provider {
			continue
		}
		e, err := a.Store.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		if b, _ := json.Marshal(e); !bytes.Equal(b, empty(k)) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (a *Admin) audit(ctx context.Context, event, user, provider, reason string) {
	a.Audit.Emit(ctx, audit.Record{Event: event, User: user, Provider: provider, Outcome: audit.OutcomeSuccess,
		Actor: a.Actor, Reason: reason, UserAgent: "kubectl-mfa"})
}

func (a *Admin) event(ctx context.Context, provider, reason, message string) {
	if a.Events == nil {
		return
	}
	if err := a.Events.Record(ctx, provider, reason, message); err != nil && a.Warn != nil {
		a.Warn("the Event on MFAProvider %s was not recorded: %v", provider, err)
	}
}
