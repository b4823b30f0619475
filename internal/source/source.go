// Package source reads the challenge server's configuration, the bundle
// of policies and providers and the keyring, from where it is kept: the
// bundle and keyring Secrets the controller writes (Cluster), or a
// directory of MFAPolicy, MFAProvider and Secret files (Dir, standalone
// mode). A Source hands what it reads to a Sink, which decides whether to
// put it in force.
package source

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// Source loads the configuration into sink and keeps it up to date until
// ctx ends.
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// Sink receives what a Source reads. A bundle or keyring it refuses, and
// one the Source could not even read, leave the last good one in force.
type Sink interface {
	// ApplyBundle puts a bundle in force; hash identifies it (an unchanged
	// bundle is not built again), origin says where it comes from.
	ApplyBundle(b *policy.Bundle, hash, origin string) error
	// ApplyKeyring puts a stored keyring in force.
	ApplyKeyring(raw []byte, origin string) error
	// RefuseBundle and RefuseKeyring record one that could not be read.
	RefuseBundle(err error)
	RefuseKeyring(err error)
}

// RefusedObject is an object of a config directory that is not valid and
// not in force; a previous valid version of it stays, if there was one.
type RefusedObject struct {
	Kind string // MFAPolicy or MFAProvider
	Name types.NamespacedName
	Err  error
}

func (o RefusedObject) String() string {
	return o.Kind + " " + o.Name.String() + " is not valid and is not in force: " + o.Err.Error()
}

// ObjectSink is a Sink that is also told, after each read of a config
// directory, which of its objects were refused (none: an empty list).
type ObjectSink interface {
	Sink
	RefuseObjects(refused []RefusedObject)
}

// ErrMissing matches (errors.Is) the error a Source refuses a bundle or
// keyring with when it does not exist yet, as opposed to one that exists
// and is not valid: before the controller first writes its Secrets, the
// challenge server waits for them.
var ErrMissing = errors.New("not written yet")

// missingError is a refusal for something not written yet; its message
// says what is missing and who writes it.
type missingError struct{ msg string }

func (e *missingError) Error() string        { return e.msg }
func (e *missingError) Is(target error) bool { return target == ErrMissing }

// retryDelay is a capped exponential backoff.
func retryDelay(attempt int) time.Duration {
	d := time.Second << min(attempt, 5)
	return min(d, 30*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
