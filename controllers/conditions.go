package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// maxMessageLength bounds condition messages and event notes.
const maxMessageLength = 1024

// transientError is a failure that is not the author's: it is shown as
// Ready=False and retried with backoff by returning it to controller-runtime.
type transientError struct {
	reason  string
	message string
	err     error
}

func (e *transientError) Error() string { return e.message }
func (e *transientError) Unwrap() error { return e.err }

// inForceWarning is a valid object in force with something its author must
// fix: Ready stays True, with this reason and message instead of
// Succeeded, and a Warning event is recorded. A policy whose host conflicts
// with another's is one: in force by name, refused by host.
type inForceWarning struct {
	reason, message string
}

func (e *inForceWarning) Error() string { return e.message }

// setVerdict writes Ready and Stalled from the outcome of validation and
// returns what Reconcile should return:
//   - nil outcome: Ready=True, no Stalled;
//   - an *inForceWarning: Ready=True with its reason and message, no
//     Stalled;
//   - a *policy.FieldError: a configuration error. Ready=False and, unless
//     it waits on another object that may become Ready by itself,
//     Stalled=True. Nothing to retry: the watches bring the object back when
//     it or what it references changes, so nil is returned;
//   - a *transientError: Ready=False, retried with backoff;
//   - anything else (the API server failing): conditions untouched, retried.
//
// observedGeneration is set to generation whenever the conditions describe it.
func setVerdict(conds *[]metav1.Condition, observedGeneration *int64, generation int64, readyMessage string, outcome error) error {
	var fe *policy.FieldError
	var te *transientError
	var iw *inForceWarning
	if outcome == nil || errors.As(outcome, &te) || errors.As(outcome, &fe) || errors.As(outcome, &iw) {
		*observedGeneration = generation
	}
	switch {
	case outcome == nil:
		setCondition(conds, generation, v1alpha1.ReadyCondition, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, readyMessage)
		meta.RemoveStatusCondition(conds, v1alpha1.StalledCondition)
		return nil
	case errors.As(outcome, &iw):
		setCondition(conds, generation, v1alpha1.ReadyCondition, metav1.ConditionTrue, iw.reason, statusMessage(outcome))
		meta.RemoveStatusCondition(conds, v1alpha1.StalledCondition)
		return nil
	case errors.As(outcome, &te):
		setCondition(conds, generation, v1alpha1.ReadyCondition, metav1.ConditionFalse, te.reason, statusMessage(outcome))
		meta.RemoveStatusCondition(conds, v1alpha1.StalledCondition)
		return outcome
	case errors.As(outcome, &fe):
		msg := statusMessage(outcome)
		setCondition(conds, generation, v1alpha1.ReadyCondition, metav1.ConditionFalse, fe.Reason, msg)
		if waitsOnOthers(fe.Reason) {
			meta.RemoveStatusCondition(conds, v1alpha1.StalledCondition)
		} else {
			setCondition(conds, generation, v1alpha1.StalledCondition, metav1.ConditionTrue, fe.Reason, msg)
		}
		return nil
	default:
		return outcome
	}
}

// waitsOnOthers says whether a reason means "waiting on another object",
// which may become Ready without a change from this object's author: a
// provider not created yet (applied after the policy, or by another team
// in its namespace) or not Ready yet, Duo's answer. The watches bring the
// object back when the other one changes.
func waitsOnOthers(reason string) bool {
	switch reason {
	case v1alpha1.ReasonProviderNotFound, v1alpha1.ReasonProviderNotReady, v1alpha1.ReasonProgressing:
		return true
	}
	return false
}

func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
}

// statusMessage makes an error fit a condition message and an event note:
// at most maxMessageLength bytes, without blank lines. A CEL error keeps
// its drawing (the line of the expression, a caret under the problem),
// which internal/policy has already cut to a few dozen characters, so the
// message may span a few lines, as kubectl describe shows them.
func statusMessage(err error) string {
	var lines []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimRight(line, " \t\r"); strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
	}
	msg := strings.Join(lines, "\n")
	if len(msg) > maxMessageLength {
		cut := maxMessageLength - 3
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut-- // never split a character: the API server wants UTF-8
		}
		msg = msg[:cut] + "..."
	}
	return msg
}

// patchStatus sends the difference between before and obj's status as one
// merge patch.
// verdictObject is an object whose status carries Ready and Stalled.
type verdictObject interface {
	client.Object
	GetConditions() []metav1.Condition
}

// reconcileVerdict reads the object of req into obj and runs check on it,
// which writes the verdict into obj's status; the status is then patched,
// and an event is recorded when Ready changed.
func reconcileVerdict[T verdictObject](ctx context.Context, c client.Client, rec events.EventRecorder, req ctrl.Request, obj T, check func(context.Context, T) error) (retErr error) {
	if err := c.Get(ctx, req.NamespacedName, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	before := obj.DeepCopyObject().(T)
	defer func() {
		if err := patchStatus(ctx, c, obj, before); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, fmt.Errorf("patching status: %w", err)})
		}
		emitReadyEvent(rec, obj, before.GetConditions(), obj.GetConditions())
	}()
	return check(ctx, obj)
}

func patchStatus(ctx context.Context, c client.Client, obj, before client.Object) error {
	patch := client.MergeFrom(before)
	// An unchanged status costs no request: a re-check that comes to the
	// same verdict (a provider or bundle event fans out to many policies)
	// does not make the API server answer one round trip per policy.
	if data, err := patch.Data(obj); err == nil && string(data) == "{}" {
		return nil
	}
	return client.IgnoreNotFound(c.Status().Patch(ctx, obj, patch))
}

// emitReadyEvent records an event when the Ready condition changed: Normal
// when it became True and Succeeded, or when a new generation of the
// object waits on another (waitsOnOthers), which is how a healthy first
// apply begins when the policy is seen before its provider. Warning
// otherwise: an error in the object itself, a failure to retry, a
// HostConflict (which leaves the policy Ready and still needs its
// author), or an object that was Ready at this generation and now waits
// (its provider deleted or broken: it is out of force). Unchanged
// verdicts are not repeated, so a retried failure does not flood the
// event stream.
func emitReadyEvent(rec events.EventRecorder, obj runtime.Object, before, after []metav1.Condition) {
	if rec == nil {
		return
	}
	now := meta.FindStatusCondition(after, v1alpha1.ReadyCondition)
	if now == nil {
		return
	}
	was := meta.FindStatusCondition(before, v1alpha1.ReadyCondition)
	if was != nil && was.Status == now.Status && was.Reason == now.Reason && was.Message == now.Message {
		return
	}
	wasReady := was != nil && was.Status == metav1.ConditionTrue && was.ObservedGeneration == now.ObservedGeneration
	typ := corev1.EventTypeWarning
	if now.Status == metav1.ConditionTrue && now.Reason == v1alpha1.ReasonSucceeded ||
		now.Status == metav1.ConditionFalse && waitsOnOthers(now.Reason) && !wasReady {
		typ = corev1.EventTypeNormal
	}
	rec.Eventf(obj, nil, typ, now.Reason, "Validate", "%s", now.Message)
}
