package webhook

import (
	"context"
	"net/http"

	"github.com/mfa-operator/mfa-operator/internal/audit"
)

// auditClient is what the audit trail records of the request's client:
// its address (forwarded headers believed from trusted proxies only) and
// User-Agent, and the policy of cr (nil: none yet).
func (k *pageKit) auditClient(r *http.Request, cr *challengeRequest) audit.Client {
	c := audit.Client{IP: k.proxies.clientIP(r).String(), UserAgent: r.UserAgent()}
	if cr != nil && cr.policy != nil {
		c.Policy = cr.policy.Namespace + "/" + cr.policy.Name
	}
	return c
}

// withAudit returns r with its audit client in its context, so that what
// the store wrappers notice (a lockout) is recorded with it.
func (k *pageKit) withAudit(r *http.Request, cr *challengeRequest) *http.Request {
	return r.WithContext(audit.WithClient(r.Context(), k.auditClient(r, cr)))
}

// auditEvent records event for cr's user and provider.
func (k *pageKit) auditEvent(r *http.Request, cr *challengeRequest, event, outcome, reason string) {
	rec := audit.Record{Event: event, Outcome: outcome, Reason: reason}
	if cr != nil && cr.id != nil {
		rec.User = cr.user()
	}
	if cr != nil && cr.provider != nil {
		rec.Provider = cr.providerKey()
	}
	k.audit.Emit(audit.WithClient(r.Context(), k.auditClient(r, cr)), rec)
}

// auditLockout records a lockout noticed while updating an enrolment:
// the request's client comes from ctx (see withAudit).
func auditLockout(ctx context.Context, a *audit.Logger, provider, user, until string) {
	a.Emit(ctx, audit.Record{Event: audit.EventLockout, User: user, Provider: provider,
		Outcome: audit.OutcomeDenied, Reason: "too many failed attempts; locked until " + until})
}
