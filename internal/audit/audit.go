// Package audit writes the audit trail: one structured log line per
// security event, with the same stable fields whoever emits it, and a
// Prometheus counter by event. Lines never carry a secret or a code.
//
// A line looks like (slog's JSON handler):
//
//	{"time":"...","level":"INFO","msg":"audit","audit":true,"event":"lockout",
//	 "user":"alice","policy":"apps/admin","provider":"apps/totp",
//	 "client_ip":"203.0.113.7","user_agent":"...","outcome":"locked"}
package audit

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Event names, stable: dashboards and alerts select on them. README.md
// lists them all.
const (
	// EventEnrollment: a user confirmed a new authenticator (first code).
	EventEnrollment = "enrollment"
	// EventVerification: a second factor was answered (outcome success).
	EventVerification = "verification"
	// EventVerificationFailure: a code, recovery code or Duo answer was refused.
	EventVerificationFailure = "verification_failure"
	// EventLockout: too many failures; verification paused.
	EventLockout = "lockout"
	// EventRecoveryCodeUse: a recovery code was accepted (and is used up).
	EventRecoveryCodeUse = "recovery_code_use"
	// EventReset: an administrator removed a user's enrolment(s).
	EventReset = "reset"
	// EventRevocation: every session and remembered browser of a user
	// issued before now was revoked (administrator or the user).
	EventRevocation = "revocation"
	// EventUnlock: an administrator lifted a lockout.
	EventUnlock = "unlock"
	// EventFactorAdded: the user added an authenticator on the Security page.
	EventFactorAdded = "factor_added"
	// EventFactorRemoved: the user removed an authenticator on the Security page.
	EventFactorRemoved = "factor_removed"
	// EventRecoveryCodesRegenerated: new recovery codes; the old ones died.
	EventRecoveryCodesRegenerated = "recovery_codes_regenerated"
	// EventBrowserRevocation: the user signed one remembered browser out
	// on the Security page; the user's other browsers stay signed in.
	EventBrowserRevocation = "browser_revocation"
)

// Events are all event names, in the order README.md lists them.
var Events = []string{
	EventEnrollment, EventVerification, EventVerificationFailure, EventLockout,
	EventRecoveryCodeUse, EventReset, EventRevocation, EventUnlock,
	EventFactorAdded, EventFactorRemoved, EventRecoveryCodesRegenerated,
	EventBrowserRevocation,
}

// Outcomes, the `outcome` field.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Record is one event. Empty fields are written empty, so every line has
// every field.
type Record struct {
	Event     string
	User      string
	Policy    string // namespace/name; empty for actions not tied to one
	Provider  string // namespace/name of the MFAProvider, when one is concerned
	ClientIP  string
	UserAgent string
	Outcome   string
	// Actor is who did it when not the user: the Kubernetes user of an
	// administrator command, or "self" for the Security page.
	Actor string
	// Reason says more, in words; never a secret or a code.
	Reason string
}

// maxUserAgent bounds what is logged of a User-Agent header.
const maxUserAgent = 256

// Logger writes audit lines and counts them.
type Logger struct {
	log   *slog.Logger
	count *prometheus.CounterVec
}

// New returns a Logger writing to log. The counter
// mfa_audit_events_total{event} is registered in reg when reg is not nil.
func New(log *slog.Logger, reg prometheus.Registerer) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Logger{
		log: log,
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfa_audit_events_total",
			Help: "Audit events by event name (see README.md, Audit trail).",
		}, []string{"event"}),
	}
	for _, e := range Events {
		l.count.WithLabelValues(e) // every series exists from the start
	}
	if reg != nil {
		reg.MustRegister(l.count)
	}
	return l
}

// Emit writes r as one line and counts it.
func (l *Logger) Emit(ctx context.Context, r Record) {
	if l == nil {
		return
	}
	fillFromContext(ctx, &r)
	ua := r.UserAgent
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	level := slog.LevelInfo
	if r.Outcome != OutcomeSuccess {
		level = slog.LevelWarn
	}
	l.count.WithLabelValues(r.Event).Inc()
	l.log.LogAttrs(ctx, level, "audit",
		slog.Bool("audit", true),
		slog.String("event", r.Event),
		slog.String("user", r.User),
		slog.String("policy", r.Policy),
		slog.String("provider", r.Provider),
		slog.String("client_ip", r.ClientIP),
		slog.String("user_agent", ua),
		slog.String("outcome", r.Outcome),
		slog.String("actor", r.Actor),
		slog.String("reason", r.Reason),
	)
}

type clientKey struct{}

// Client is what a request says about who asks; Emit takes the fields a
// Record leaves empty from the context's Client.
type Client struct {
	Policy    string
	IP        string
	UserAgent string
}

// WithClient returns ctx carrying c, for audit lines written deeper down
// (a lockout noticed by the store wrapper, for instance).
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

func fillFromContext(ctx context.Context, r *Record) {
	c, ok := ctx.Value(clientKey{}).(Client)
	if !ok {
		return
	}
	if r.Policy == "" {
		r.Policy = c.Policy
	}
	if r.ClientIP == "" {
		r.ClientIP = c.IP
	}
	if r.UserAgent == "" {
		r.UserAgent = c.UserAgent
	}
}
