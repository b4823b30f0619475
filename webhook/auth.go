package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/geoip"
	"github.com/mfa-operator/mfa-operator/internal/policy"
	"github.com/mfa-operator/mfa-operator/internal/session"
)

// Response headers of an allowed request, for the front door to pass on to
// the app (ingress-nginx auth-response-headers).
const (
	headerUser        = "X-Mfa-User"
	headerMultifactor = "X-Mfa-Multifactor"
	headerAssertion   = "X-Mfa-Assertion"
)

// authHandler answers the auth endpoints, which the front door calls on
// every protected request: the hot path. It reads the configuration once
// per request and decides with that snapshot and its policy entry.
type authHandler struct {
	config     *config
	proxies    *proxies
	paths      pathMode
	sessions   *session.Jar
	assertions *assertionSigner
	metrics    *metrics
	log        *slog.Logger
	now        func() time.Time
	// realClock: now is time.Now, so the time an auth request started is
	// its decision's now too (one clock read fewer per request).
	realClock bool
	// geo answers request.geo for the policies that read it; nil without
	// --geoip-db.
	geo *geoip.DB
}

// handleAuth answers the front door about one protected request:
// /auth/{namespace}/{policy}, or /auth choosing the policy by host.
//
//	200  allowed (X-MFA-User, X-MFA-Multifactor, X-MFA-Assertion)
//	401  identity or second factor missing (Location: the challenge URL)
//	403  denied by a rule, or the request cannot be judged
//
// Every failure is closed, never a 5xx for a decision:
//   - a peer outside --trusted-proxies: 403. Nothing it says about the
//     original request (X-Original-URL, X-Real-IP, identity headers) is
//     believed, and judging the auth request itself instead could allow
//     what the original request would not;
//   - X-Original-URL or X-Original-Method missing or malformed: 403;
//   - an original path that servers read differently (see pathMode): 403;
//   - an unknown policy, or no policy for the host on /auth: 403, the body
//     naming what is missing (not a 404: the front door must refuse);
//   - on /auth, a host that policies claim in conflict (see hostRoutes):
//     403 naming them;
//   - no identity, or a token that does not verify: 401;
//   - a rule that fails to evaluate (runtime error, cost limit) or a
//     RequireMFA rule none of whose providers is in force: 403, logged;
//   - nothing loaded yet: 403.
func (a *authHandler) handleAuth(w http.ResponseWriter, r *http.Request) {
	a.serveDecision(w, r, r.PathValue("namespace"), r.PathValue("policy"), "", dialectAuth)
}

// handleForwardAuth answers Traefik ForwardAuth and Caddy forward_auth:
// /forward-auth/{namespace}/{policy}, or /forward-auth by host. The original
// request comes in X-Forwarded-Method/Proto/Host/Uri (believed only from a
// trusted proxy), and a missing second factor is a 302 to the challenge,
// since these proxies hand the answer to the browser as it is; a client
// that is not a browser gets a 401 problem document instead
// (respondAPIClient).
func (a *authHandler) handleForwardAuth(w http.ResponseWriter, r *http.Request) {
	a.serveDecision(w, r, r.PathValue("namespace"), r.PathValue("policy"), "", dialectForwardAuth)
}

// serveDecision answers an auth request for the policy ns/name, or for the
// original request's host when ns is empty; target is the original
// request-target when the auth request's own path carries it (ext-authz).
func (a *authHandler) serveDecision(w http.ResponseWriter, r *http.Request, ns, name, target string, dl *dialect) {
	start := time.Now()
	defer a.recoverClosed(w)
	st := authStates.Get().(*authState)
	defer releaseAuthState(st)
	d := a.decide(r.Context(), r, ns, name, target, dl, st, start)
	switch {
	case d.entry != nil && d.entry.audit:
		a.audit(w, r, &d)
	case !dl.redirect || d.result != decisionChallenge:
		respond(w, d)
	case !browserNavigation(r.Header):
		// An API client would follow the redirect to an HTML page, and
		// back, in a loop: it gets a 401 it can act on instead.
		respondAPIClient(w, &d)
	case d.location != "":
		w.Header()["Cache-Control"] = []string{"no-store"}
		http.Redirect(w, r, d.location, http.StatusFound)
	default:
		respond(w, d)
	}
	if d.counters != nil {
		d.counters[d.result].Inc()
	} else {
		a.metrics.decisions.WithLabelValues("", "", d.result.String()).Inc()
	}
	a.metrics.duration.Observe(time.Since(start).Seconds())
	a.logDecision(r.Context(), d)
}

// recoverClosed turns a panic while deciding into a 403: a bug must close
// the door, not drop the connection (which a front door may treat as 5xx).
func (a *authHandler) recoverClosed(w http.ResponseWriter) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		a.log.Error("auth decision panicked; answered 403", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		a.metrics.decisions.WithLabelValues("", "", resultError).Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("forbidden: the policy could not be evaluated (see the challenge server's log)\n"))
	}
}

// decision is the answer to one auth request.
type decision struct {
	result   decisionResult
	entry    *policyEntry
	counters *decisionCounters
	rule     *policy.CompiledRule
	// user and multifactor are set when allowed; signed holds them and
	// the signed assertion, when there is one.
	user, multifactor string
	signed            *signedAssertion
	// location is the challenge URL of a 401.
	location string
	// reason explains a refusal or an error (logged; the body of a 403).
	reason string
	err    error
}

// authState is the per-request state of a decision. The rules read it
// through interfaces (CEL's activation, the Go closures of common forms),
// so it cannot live on the stack: it is recycled instead. Allocated for
// each request, its 456 bytes doubled what a remembered user's /auth
// allocates and the garbage collection that follows (see make bench's
// go section and the note in hack/bench.sh).
type authState struct {
	orig originalRequest
	req  policy.Request
	vars policy.Vars
	id   identity
	user session.User
}

// authStates recycles the per-request state of decisions: nothing of it
// outlives the decision (a decision keeps strings and the policy entry's
// pointers, never one into the state).
var authStates = sync.Pool{New: func() any { return new(authState) }}

// releaseAuthState clears st, so that the pool keeps no request's user or
// URL, and returns it to the pool.
func releaseAuthState(st *authState) {
	*st = authState{}
	authStates.Put(st)
}

// originalParser reads what the front door says about the original request;
// target is its request-target (path and query, as sent) when the dialect
// gives it apart from the auth request's headers, else empty.
type originalParser func(r *http.Request, target string, paths pathMode, o *originalRequest) error

// decide judges an auth request for the policy ns/name, or by host when ns
// is empty; st is zeroed scratch space, start the time the request came in,
// ctx the request's context (what an identity source that asks a server
// uses; r's own may be none), target the original request-target when the
// dialect gives it apart (see originalParser).
func (a *authHandler) decide(ctx context.Context, r *http.Request, ns, name, target string, dl *dialect, st *authState, start time.Time) decision {
	snap := a.config.snapshot()
	if snap.Keyring == nil {
		return decision{result: decisionRefused, reason: "the challenge server has not loaded its bundle and keyring yet"}
	}
	// Nothing an untrusted peer says about the original request is
	// believed. Judging the auth request itself instead could allow what
	// the original request would not, so the request is refused.
	peer := peerAddr(r)
	if !a.proxies.isTrusted(peer) {
		return decision{result: decisionRefused, reason: errUntrustedPeer.Error()}
	}
	orig := &st.orig
	if err := dl.parse(r, target, a.paths, orig); err != nil {
		return decision{result: decisionRefused, reason: err.Error()}
	}

	var e *policyEntry
	if ns != "" {
		if e = snap.byName[policyName{ns, name}]; e == nil {
			return decision{result: decisionRefused, reason: "no MFAPolicy " + ns + "/" + name + " is in force; check that it exists and is Ready (kubectl get mfapolicies -n " + ns + ")"}
		}
	} else {
		route := snap.hosts.lookup(orig.host)
		switch {
		case route == nil:
			return decision{result: decisionRefused, reason: "no MFAPolicy lists the host " + orig.host + " in spec.hosts; use /auth/{namespace}/{policy} or add the host"}
		case route.conflict != "":
			return decision{result: decisionRefused, reason: route.conflict}
		}
		e = route.entry
	}
	// A policy that lists hosts speaks only for them: asked by name about
	// another host (a route wired to the wrong policy, or another tenant's
	// front door), it refuses rather than vouch for a host it never named.
	if why := e.hosts.refuses(e.key, orig.host); why != "" {
		return decision{result: decisionRefused, reason: why}
	}
	d := decision{entry: e, counters: e.counters}

	id, err := e.identify(ctx, r, &st.id, true, orig)
	if err != nil || id == nil {
		return e.withoutIdentity(d, err, orig)
	}

	now := start
	if !a.realClock {
		now = a.now()
	}
	_, ip := a.proxies.forwardedClient(r) // the peer was checked above
	if ip == "" && dl.envoyAddress {
		ip = a.proxies.envoyExternalAddress(r)
	}
	buildRequest(r, e, orig, ip, now, &st.req)
	if e.needsGeo {
		if a.geo == nil {
			d.result, d.reason = decisionError, "the policy reads request.geo but the challenge server has no GeoIP database (--geoip-db)"
			return d
		}
		st.req.Geo = a.geo.Lookup(ip)
	}
	st.vars = policy.Vars{User: &id.User, Request: &st.req}
	v, err := e.judge(&st.vars)
	d.rule = v.rule
	if err != nil {
		d.result, d.err, d.reason = decisionError, err, "rule evaluation failed"
		return d
	}
	switch v.action {
	case v1alpha1.ActionAllow:
		d.result = decisionAllow
	case v1alpha1.ActionRequireMFA:
		if v.info == nil || len(v.info.accepts.Providers) == 0 {
			d.result, d.reason = decisionError, "none of the rule's providers is in force"
			return d
		}
		st.user = session.User{ID: id.User.ID, AuthTime: id.AuthTime, AuthTimeVerified: id.Source == sourceJWT}
		multifactor, ok := a.sessions.Check(r, snap.Keyring, &v.info.accepts, &st.user, now)
		if !ok {
			d.result, d.location, d.reason = decisionChallenge, e.challengeURL(orig.url()), "second factor required"
			d.user = id.User.ID
			return d
		}
		d.result, d.multifactor = decisionAllow, multifactor
	default:
		d.result, d.reason = decisionDeny, "denied"
		d.user = id.User.ID
		return d
	}
	d.user = id.User.ID
	if sa := a.assertions.sign(snap.Keyring, e.key, id.User.ID, orig.host, d.multifactor, now); sa != nil {
		d.signed = sa
	}
	return d
}

// buildRequest is the `request` variable: the original request. Its URL,
// headers and query are only written for policies whose rules read them.
func buildRequest(r *http.Request, e *policyEntry, orig *originalRequest, ip string, now time.Time, req *policy.Request) {
	*req = policy.Request{
		Host:   orig.host,
		Path:   orig.path,
		Method: orig.method,
		Scheme: orig.scheme,
		IP:     ip,
		Time:   now,
	}
	if e.needsURL {
		req.URL = orig.url()
	}
	if e.needsHeaders {
		req.Headers = make(map[string]string, len(r.Header))
		for k, v := range r.Header {
			req.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
		}
	}
	if e.needsQuery {
		req.Query, _ = url.ParseQuery(orig.rawQuery)
	}
	if e.needsInteractive {
		req.Interactive = browserNavigation(r.Header)
	}
}

func respond(w http.ResponseWriter, d decision) {
	h := w.Header()
	switch d.result {
	case decisionAllow:
		// The values come from the assertion cache, shared and never
		// modified; without an assertion, one allocation for both.
		var vs []string
		if d.signed != nil {
			vs = d.signed.answer[:]
		} else {
			vs = []string{d.user, visibleMultifactor(d.multifactor)}
		}
		h[headerUser] = vs[0:1:1]
		h[headerMultifactor] = vs[1:2:2]
		if d.signed != nil {
			h[headerAssertion] = vs[2:3:3]
		}
		w.WriteHeader(http.StatusOK)
	case decisionChallenge:
		if d.location != "" {
			h["Location"] = []string{d.location}
		}
		h["Cache-Control"] = []string{"no-store"}
		w.WriteHeader(http.StatusUnauthorized)
	case decisionError:
		// A rule that cannot be evaluated, a provider missing: refuse, and
		// say no more than that to the client; the log has the details.
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("forbidden: the policy could not be evaluated (see the challenge server's log)\n"))
	default:
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.WriteHeader(http.StatusForbidden)
		if d.result == decisionRefused {
			_, _ = w.Write([]byte("forbidden: " + d.reason + "\n"))
		} else {
			_, _ = w.Write([]byte("forbidden\n"))
		}
	}
}

// challengeURL is <public-url>/challenge/{ns}/{policy}?rd=<original url>.
func (e *policyEntry) challengeURL(original string) string {
	return e.challengeBase + url.QueryEscape(original)
}

func (a *authHandler) logDecision(ctx context.Context, d decision) {
	switch {
	case d.result == decisionError:
		a.log.LogAttrs(ctx, slog.LevelError, "auth decision failed closed", d.attrs()...)
	case d.result == decisionRefused:
		a.log.LogAttrs(ctx, slog.LevelWarn, "auth request refused", d.attrs()...)
	case a.log.Enabled(ctx, slog.LevelDebug):
		// Refused tokens (expired ones are common) are debug too; an
		// issuer that cannot be reached is logged where it is fetched.
		a.log.LogAttrs(ctx, slog.LevelDebug, "auth decision", d.attrs()...)
	}
}

func (d *decision) attrs() []slog.Attr {
	a := make([]slog.Attr, 0, 6)
	a = append(a, slog.String("decision", d.result.String()))
	if d.entry != nil {
		a = append(a, slog.String("policy", d.entry.key))
	}
	if d.rule != nil {
		a = append(a, slog.String("rule", d.rule.Name))
	} else if d.entry != nil && d.result != decisionChallenge {
		a = append(a, slog.String("rule", "(default)"))
	}
	if d.user != "" {
		a = append(a, slog.String("user", d.user))
	}
	if d.reason != "" {
		a = append(a, slog.String("reason", d.reason))
	}
	if d.err != nil {
		a = append(a, slog.String("error", d.err.Error()))
	}
	return a
}

// errDenied is returned by requiredRule when the request being returned
// to is denied by a rule or by the policy's default.
var errDenied = errors.New("denied by policy")

// verdict is what a policy's rules decide for one request.
type verdict struct {
	action v1alpha1.Action
	// rule is the rule that decided; nil when the default did.
	rule *policy.CompiledRule
	// info is what the policy entry knows of rule (its providers in
	// force); nil when the default decided.
	info *ruleInfo
}

// judge evaluates the policy's rules with policy.Judge (the first rule
// whose condition holds decides, else the policy's default) and adds what
// the entry knows of the deciding rule. /auth and the challenge pages both
// judge with it. On an error, rule is the rule that failed.
func (e *policyEntry) judge(vars *policy.Vars) (verdict, error) {
	pv, err := e.compiled.Judge(vars)
	v := verdict{action: pv.Action, rule: pv.Rule}
	if err != nil {
		return v, err
	}
	if pv.Rule != nil {
		v.info = e.ruleInfo(pv.Rule)
	}
	return v, nil
}
