package webhook

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mfa-operator/mfa-operator/internal/version"
)

// Decision results, the `result` label of mfa_decisions_total.
const (
	resultAllow     = "allow"     // 200
	resultChallenge = "challenge" // 401: identity or second factor missing
	resultDeny      = "deny"      // 403: a rule or the default denies
	resultRefused   = "refused"   // 403: the request cannot be judged (untrusted peer, missing header, unknown policy)
	resultError     = "error"     // 401/403: an internal error, failed closed
)

var decisionResults = [...]string{resultAllow, resultChallenge, resultDeny, resultRefused, resultError}

type decisionResult int

const (
	decisionAllow decisionResult = iota
	decisionChallenge
	decisionDeny
	decisionRefused
	decisionError
	numDecisionResults
)

func (d decisionResult) String() string { return decisionResults[d] }

// metrics are the server's Prometheus metrics, in a registry of their own
// (no global state shared with libraries).
type metrics struct {
	reg        *prometheus.Registry
	decisions  *prometheus.CounterVec
	challenges *prometheus.CounterVec
	lockouts   prometheus.Counter
	duration   prometheus.Histogram
	reloads    *prometheus.CounterVec
	// auditDecisions counts what policies in Audit mode would have
	// answered.
	auditDecisions *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfa_decisions_total",
			Help: "Decisions of the auth endpoints by policy and result (allow, challenge, deny, refused, error).",
		}, []string{"namespace", "policy", "result"}),
		challenges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfa_challenges_total",
			Help: "Second-factor challenges answered, by provider (namespace/name) and result.",
		}, []string{"provider", "result"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mfa_lockouts_total",
			Help: "Users locked out after too many failed second-factor attempts.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mfa_auth_duration_seconds",
			Help:    "Time to answer an auth request.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfa_config_reloads_total",
			Help: "Loads of the bundle and keyring, by what (bundle, keyring) and result (success, refused).",
		}, []string{"what", "result"}),
	}
	m.auditDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mfa_audit_decisions_total",
		Help: "Decisions of policies in Audit mode, which let every request through: by policy (namespace/name), the rule that decided ((default), (no identity), (none) when the evaluation failed) and what an Enforce policy would have answered (allow, challenge, deny, error).",
	}, []string{"policy", "rule", "would"})
	m.reg.MustRegister(m.auditDecisions, m.decisions, m.challenges, m.lockouts, m.duration, m.reloads,
		version.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// countChallenge counts one answered challenge: result is e.g. success,
// failure, locked, unavailable, fail_open.
func (m *metrics) countChallenge(providerKey, result string) {
	m.challenges.WithLabelValues(providerKey, result).Inc()
}

// decisionCounters are a policy's counters, one per result. Each is
// resolved on its first use, once per snapshot, so that the hot path does
// not hash label values, and so that a policy holds series only for the
// results it gave: with 10,000 policies, five series each from the start
// cost about 3 KB a policy and made every scrape 50,000 zeros.
type decisionCounters [numDecisionResults]decisionCounter

// decisionCounter is the counter of one policy and result.
type decisionCounter struct {
	labels *policyLabels
	result decisionResult
	once   sync.Once
	c      prometheus.Counter
}

// policyLabels are the labels of a policy's decision counters.
type policyLabels struct {
	vec             *prometheus.CounterVec
	namespace, name string
}

func (m *metrics) countersFor(namespace, name string) *decisionCounters {
	l := &policyLabels{vec: m.decisions, namespace: namespace, name: name}
	var c decisionCounters
	for i := range c {
		c[i].labels, c[i].result = l, decisionResult(i)
	}
	return &c
}

// Inc counts one decision.
func (dc *decisionCounter) Inc() {
	dc.once.Do(func() {
		dc.c = dc.labels.vec.WithLabelValues(dc.labels.namespace, dc.labels.name, dc.result.String())
	})
	dc.c.Inc()
}
