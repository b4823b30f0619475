package controllers_test

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/mfa-operator/mfa-operator/controllers"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// duoStub stands in for Duo's /auth/v2/check, except for providers with a
// CA bundle, which get the real check. The integration key says what Duo
// answers:
//
//	DIREFUSED...  the credentials are refused (terminal)
//	DIDOWN...     Duo cannot be reached (transient)
//	DIFLAKY...    unreachable for the first two calls, then accepted
//	anything else accepted
type duoStub struct {
	mu    sync.Mutex
	calls map[string]int
}

type refusedError struct{}

func (refusedError) Error() string  { return "Duo answered 401: invalid signature" }
func (refusedError) Terminal() bool { return true }

func (d *duoStub) check(ctx context.Context, apiHost string, creds policy.DuoCredentials) error {
	if creds.CABundle != "" {
		// A provider trusting its own CA talks to a duotest server: the
		// operator's real check (duo_check_test.go).
		return controllers.CheckDuoCredentials(ctx, apiHost, creds)
	}
	d.mu.Lock()
	d.calls[creds.IntegrationKey]++
	n := d.calls[creds.IntegrationKey]
	d.mu.Unlock()
	switch {
	case strings.HasPrefix(creds.IntegrationKey, "DIREFUSED"):
		return refusedError{}
	case strings.HasPrefix(creds.IntegrationKey, "DIDOWN"):
		return errors.New("dial tcp: connect: connection refused")
	case strings.HasPrefix(creds.IntegrationKey, "DIFLAKY") && n <= 2:
		return errors.New("read tcp: i/o timeout")
	}
	return nil
}

func (d *duoStub) callCount(ikey string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[ikey]
}
