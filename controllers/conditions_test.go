package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
	"github.com/mfa-operator/mfa-operator/internal/policy"
)

type terminal bool

func (t terminal) Error() string  { return fmt.Sprintf("terminal=%v", bool(t)) }
func (t terminal) Terminal() bool { return bool(t) }

func TestClassifyDuoError(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		reason    string
		transient bool
	}{
		{"nil is accepted", nil, "", false},
		{"Terminal() true is a configuration error", terminal(true), v1alpha1.ReasonDuoCheckFailed, false},
		{"wrapped Terminal() true is a configuration error", fmt.Errorf("check: %w", terminal(true)), v1alpha1.ReasonDuoCheckFailed, false},
		{"Terminal() false is transient", terminal(false), v1alpha1.ReasonDuoUnreachable, true},
		{"a plain error is transient", errors.New("dial tcp: timeout"), v1alpha1.ReasonDuoUnreachable, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got := classifyDuoError("api-x.duosecurity.com", tt.err)
			if tt.reason == "" {
				g.Expect(got).To(BeNil())
				return
			}
			var fe *policy.FieldError
			var te *transientError
			if tt.transient {
				g.Expect(errors.As(got, &te)).To(BeTrue())
				g.Expect(te.reason).To(Equal(tt.reason))
				g.Expect(errors.Is(got, tt.err)).To(BeTrue(), "the cause is kept for controller-runtime's log")
			} else {
				g.Expect(errors.As(got, &fe)).To(BeTrue())
				g.Expect(fe.Reason).To(Equal(tt.reason))
				g.Expect(fe.Field).To(Equal("spec.duo"))
			}
			g.Expect(got.Error()).To(ContainSubstring("api-x.duosecurity.com"))
		})
	}
}

func TestSetVerdict(t *testing.T) {
	fe := func(reason string) error { return &policy.FieldError{Field: "spec.x", Reason: reason, Message: "bad"} }
	tests := []struct {
		name        string
		outcome     error
		ready       metav1.ConditionStatus
		reason      string
		stalled     bool
		retried     bool
		observedSet bool
	}{
		{"valid", nil, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, false, false, true},
		{"configuration error is terminal", fe(v1alpha1.ReasonInvalidExpression), metav1.ConditionFalse, v1alpha1.ReasonInvalidExpression, true, false, true},
		{"waiting on a provider is not stalled", fe(v1alpha1.ReasonProviderNotReady), metav1.ConditionFalse, v1alpha1.ReasonProviderNotReady, false, false, true},
		{"waiting for a provider to be created is not stalled", fe(v1alpha1.ReasonProviderNotFound), metav1.ConditionFalse, v1alpha1.ReasonProviderNotFound, false, false, true},
		{"transient error is retried", &transientError{reason: v1alpha1.ReasonDuoUnreachable, message: "down", err: errors.New("x")}, metav1.ConditionFalse, v1alpha1.ReasonDuoUnreachable, false, true, true},
		{"a host conflict leaves the policy Ready, with its reason", &inForceWarning{reason: v1alpha1.ReasonHostConflict, message: "conflict"}, metav1.ConditionTrue, v1alpha1.ReasonHostConflict, false, false, true},
		{"API failure leaves the conditions alone", errors.New("etcd timeout"), metav1.ConditionTrue, "Previous", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			conds := []metav1.Condition{
				{Type: v1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Previous", ObservedGeneration: 1},
				{Type: v1alpha1.StalledCondition, Status: metav1.ConditionTrue, Reason: "Previous", ObservedGeneration: 1},
			}
			observed := int64(1)
			retry := setVerdict(&conds, &observed, 2, "fine", tt.outcome)
			g.Expect(retry != nil).To(Equal(tt.retried))
			ready := meta.FindStatusCondition(conds, v1alpha1.ReadyCondition)
			g.Expect(ready.Status).To(Equal(tt.ready))
			g.Expect(ready.Reason).To(Equal(tt.reason))
			g.Expect(meta.FindStatusCondition(conds, v1alpha1.StalledCondition) != nil).To(Equal(tt.stalled))
			if tt.observedSet {
				g.Expect(observed).To(BeEquivalentTo(2))
				g.Expect(ready.ObservedGeneration).To(BeEquivalentTo(2))
			} else {
				g.Expect(observed).To(BeEquivalentTo(1))
			}
		})
	}
}

// TestReadyEventType: a new generation that waits on another object gets
// a Normal event; an object with an error of its own, or one that was
// Ready at this generation and now waits, a Warning; an unchanged verdict,
// none.
func TestReadyEventType(t *testing.T) {
	readyAt := func(generation int64, status metav1.ConditionStatus, reason, message string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ReadyCondition, Status: status, Reason: reason, Message: message, ObservedGeneration: generation}}
	}
	ready := func(status metav1.ConditionStatus, reason, message string) []metav1.Condition {
		return readyAt(1, status, reason, message)
	}
	tests := []struct {
		name   string
		before []metav1.Condition
		after  []metav1.Condition
		want   string
	}{
		{"Ready", nil, ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "3 rules"), "Normal Succeeded 3 rules"},
		{"provider not created yet", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotFound, "not found"), "Normal ProviderNotFound not found"},
		{"provider not Ready yet", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotReady, "not Ready"), "Normal ProviderNotReady not Ready"},
		{"Duo's answer awaited", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonProgressing, "waiting"), "Normal Progressing waiting"},
		{"invalid expression", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonInvalidExpression, "bad"), "Warning InvalidExpression bad"},
		{"provider not admitted", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotAdmitted, "no"), "Warning ProviderNotAdmitted no"},
		{"Duo unreachable", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonDuoUnreachable, "down"), "Warning DuoUnreachable down"},
		{"host conflict, Ready", nil, ready(metav1.ConditionTrue, v1alpha1.ReasonHostConflict, "conflict"), "Warning HostConflict conflict"},
		{"Ready, then its provider deleted", ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "ok"), ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotFound, "not found"), "Warning ProviderNotFound not found"},
		{"Ready, then its provider broken", ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "ok"), ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotReady, "not Ready"), "Warning ProviderNotReady not Ready"},
		{"Ready, then edited to name a provider not created yet", ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "ok"), readyAt(2, metav1.ConditionFalse, v1alpha1.ReasonProviderNotFound, "not found"), "Normal ProviderNotFound not found"},
		{"unchanged", ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotFound, "not found"), ready(metav1.ConditionFalse, v1alpha1.ReasonProviderNotFound, "not found"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rec := events.NewFakeRecorder(1)
			emitReadyEvent(rec, &v1alpha1.MFAPolicy{}, tt.before, tt.after)
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				got = append(got, e)
			}
			if tt.want == "" {
				g.Expect(got).To(BeEmpty())
			} else {
				g.Expect(got).To(ConsistOf(tt.want))
			}
		})
	}
}

func TestStatusMessage(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"one line", "spec.x: bad", "spec.x: bad"},
		{"CEL drawing kept", "rule \"a\" (spec.rules[0].when): ERROR: <input>:1:5: Syntax error\n | a &&\n | ....^",
			"rule \"a\" (spec.rules[0].when): ERROR: <input>:1:5: Syntax error\n | a &&\n | ....^"},
		{"blank lines and trailing spaces dropped", "ERROR: <input>:1:1: one \n | x\n | ^\n\n  \nERROR: <input>:1:3: two\n | x\n | ..^\n",
			"ERROR: <input>:1:1: one\n | x\n | ^\nERROR: <input>:1:3: two\n | x\n | ..^"},
		{"bounded", strings.Repeat("x", 5000), strings.Repeat("x", maxMessageLength-3) + "..."},
		{"bounded on a character boundary", strings.Repeat("é", 1000), strings.Repeat("é", (maxMessageLength-4)/2) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(statusMessage(errors.New(tt.in))).To(Equal(tt.want))
		})
	}
}

func TestDuoResultsCheck(t *testing.T) {
	g := NewWithT(t)
	p := &v1alpha1.MFAProvider{}
	p.Namespace, p.Name = "apps", "duo"
	p.Spec = v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderDuo, Duo: &v1alpha1.DuoSpec{APIHost: "api-x.duosecurity.com"}}
	creds := policy.DuoCredentials{IntegrationKey: "DI1", SecretKey: "s"}
	entry := &policy.BundleProvider{Namespace: "apps", Name: "duo", Duo: &creds}
	d := NewDuoResults()

	var fe *policy.FieldError
	g.Expect(errors.As(d.Check(p, entry), &fe)).To(BeTrue(), "unchecked credentials are not in force")
	g.Expect(fe.Reason).To(Equal(v1alpha1.ReasonProgressing))

	g.Expect(d.record(types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, duoFingerprint(p.Spec.Duo.APIHost, creds), nil)).To(BeTrue())
	g.Expect(d.Check(p, entry)).To(Succeed())
	g.Expect(d.record(types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, duoFingerprint(p.Spec.Duo.APIHost, creds), nil)).To(BeFalse(), "same outcome: no change")

	rotated := policy.DuoCredentials{IntegrationKey: "DI2", SecretKey: "s"}
	g.Expect(d.Check(p, &policy.BundleProvider{Duo: &rotated})).To(HaveOccurred(), "other credentials than the checked ones")

	totp := &v1alpha1.MFAProvider{Spec: v1alpha1.MFAProviderSpec{Type: v1alpha1.ProviderTOTP}}
	g.Expect(d.Check(totp, &policy.BundleProvider{})).To(Succeed())
}
