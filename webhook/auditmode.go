package webhook

import (
	"context"
	"log/slog"
	"net/http"
)

// audit answers for a policy in Audit mode: the decision d was computed
// as for Enforce; it is recorded (mfa_audit_decisions_total and an audit
// log line) and the request is let through as if no policy applied: 200
// without any X-MFA-* header, so that nothing downstream can take it for a
// user who answered a second factor (the front door, copying the
// headers it is told to, sets them empty, replacing what a client sent).
//
// Only decisions are audited: a request that cannot be judged (an
// untrusted peer, a missing X-Original-URL, a host the policy does not
// list) was refused before the policy was known to be in Audit mode, and
// stays refused.
func (a *authHandler) audit(w http.ResponseWriter, r *http.Request, d *decision) {
	a.recordAudit(r.Context(), r, d)
	w.Header()["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(http.StatusOK)
}

// recordAudit counts and logs the decision d of a policy in Audit mode,
// then makes d the allow it is answered with: no user, no factor, no
// assertion.
func (a *authHandler) recordAudit(ctx context.Context, r *http.Request, d *decision) {
	would, rule := d.result.String(), d.ruleLabel()
	a.metrics.auditDecisions.WithLabelValues(d.entry.key, rule, would).Inc()
	_, ip := a.proxies.forwardedClient(r) // the peer was checked by decide
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.Bool("audit", true),
		slog.String("event", "audit_decision"),
		slog.String("policy", d.entry.key),
		slog.String("rule", rule),
		slog.String("would", would),
		slog.String("outcome", would),
		slog.String("user", d.user),
		slog.String("client_ip", ip),
		slog.String("user_agent", r.UserAgent()),
	)
	if d.reason != "" {
		attrs = append(attrs, slog.String("reason", d.reason))
	}
	if d.err != nil {
		attrs = append(attrs, slog.String("error", d.err.Error()))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit decision: the policy is in Audit mode, the request was let through", attrs...)
	*d = decision{result: decisionAllow, entry: d.entry, counters: d.counters, rule: d.rule, reason: "audit mode: would " + would}
}

// ruleLabel names what decided, for the audit metric and log: the rule,
// the policy's default, or why no rule ran.
func (d *decision) ruleLabel() string {
	switch {
	case d.rule != nil:
		return d.rule.Name
	case d.result == decisionChallenge:
		return "(no identity)"
	case d.result == decisionError:
		return "(none)"
	}
	return "(default)"
}
