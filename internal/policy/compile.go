package policy

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/cel-go/common"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// CompiledRule is a rule with its `when` ready to evaluate.
type CompiledRule struct {
	Name   string
	Action v1alpha1.Action
	// Providers are the keys (namespace/name) of the providers the rule
	// accepts, resolved against the policy's namespace.
	Providers    []string
	RememberFor  time.Duration
	IgnoreCookie bool
	// when is the compiled `when`, shared by every rule of the same text.
	when *compiledWhen
	// native evaluates the same `when` in Go, when it is one of the forms
	// nativeWhen knows; nil otherwise.
	native nativeCheck
	// claimsAt is where `when` reads user.claims, nil when it does not
	// (see checkIdentityFields).
	claimsAt common.Location
	// geoAt is where `when` may read request.geo, nil when it cannot
	// (see geoRead).
	geoAt common.Location
}

// Matches evaluates the rule's `when`; an error means fail closed.
func (r *CompiledRule) Matches(vars *Vars) (bool, error) {
	if r.native != nil && vars.User != nil && vars.Request != nil {
		return r.native(vars)
	}
	prg, err := r.when.program()
	if err != nil {
		return false, err
	}
	return Eval(prg, vars)
}

// CompiledPolicy is a policy whose rules all compiled.
type CompiledPolicy struct {
	Namespace string
	Name      string
	Spec      v1alpha1.MFAPolicySpec
	Rules     []CompiledRule
	Default   v1alpha1.Action
	// Audit: the policy's mode is Audit (decisions recorded, not applied).
	Audit bool
	// readsGeo: some rule may read request.geo.
	readsGeo bool
}

// FieldError is a problem with one field of a policy, for status messages.
type FieldError struct {
	Field   string // e.g. spec.rules[1].when
	Rule    string // the rule's name, when the field is in a rule
	Reason  string // a v1alpha1 reason constant
	Message string
	// Line and Column locate a CEL error in the expression (1-based);
	// zero when the error is not at a position.
	Line, Column int
}

func (e *FieldError) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("rule %q (%s): %s", e.Rule, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// CompilePolicy compiles every rule of a policy. The first problem is
// returned as a *FieldError naming the rule, the field and, for CEL, the
// position in the expression.
func CompilePolicy(namespace, name string, spec *v1alpha1.MFAPolicySpec) (*CompiledPolicy, error) {
	cp := &CompiledPolicy{
		Namespace: namespace,
		Name:      name,
		Spec:      *spec,
		Rules:     make([]CompiledRule, 0, len(spec.Rules)),
		Default:   spec.GetDefault(),
		Audit:     spec.GetMode() == v1alpha1.ModeAudit,
	}
	seen := make(map[string]bool, len(spec.Rules))
	for i := range spec.Rules {
		r := &spec.Rules[i]
		field := fmt.Sprintf("spec.rules[%d]", i)
		if seen[r.Name] {
			return nil, &FieldError{Field: field + ".name", Rule: r.Name, Reason: v1alpha1.ReasonInvalidSpec, Message: "duplicate rule name"}
		}
		seen[r.Name] = true
		w, err := compileShared(r.When)
		if err != nil {
			var ce *CompileError
			if errors.As(err, &ce) {
				return nil, &FieldError{Field: field + ".when", Rule: r.Name, Reason: v1alpha1.ReasonInvalidExpression, Message: ce.Message, Line: ce.Line, Column: ce.Column}
			}
			return nil, err
		}
		cr := CompiledRule{Name: r.Name, Action: r.Action, when: w, native: w.native, claimsAt: w.claimsAt, geoAt: w.geoAt}
		cp.readsGeo = cp.readsGeo || cr.geoAt != nil
		if r.Action == v1alpha1.ActionRequireMFA {
			if r.Multifactor == nil || len(r.Multifactor.Providers) == 0 {
				return nil, &FieldError{Field: field + ".multifactor.providers", Rule: r.Name, Reason: v1alpha1.ReasonInvalidSpec, Message: "a RequireMFA rule needs at least one provider"}
			}
			for j, ref := range r.Multifactor.Providers {
				k, err := ProviderRef(namespace, ref)
				if err != nil {
					return nil, &FieldError{Field: fmt.Sprintf("%s.multifactor.providers[%d]", field, j), Rule: r.Name, Reason: v1alpha1.ReasonInvalidSpec, Message: err.Error()}
				}
				cr.Providers = append(cr.Providers, k.String())
			}
			cr.RememberFor = r.Multifactor.GetRememberFor()
			cr.IgnoreCookie = r.Multifactor.IgnoreCookie
		}
		cp.Rules = append(cp.Rules, cr)
	}
	return cp, nil
}

// Verdict is what a policy's rules decide for one request.
type Verdict struct {
	Action v1alpha1.Action
	// Rule is the rule that decided; nil when the policy's default did.
	Rule *CompiledRule
}

// Judge evaluates the policy's rules: the first rule whose `when` holds
// decides, else the policy's default. The challenge server decides every
// request with it, and `mfa-operator explain` explains with it. On an
// error, Rule is the rule that failed (the caller fails closed).
func (p *CompiledPolicy) Judge(vars *Vars) (Verdict, error) {
	rule, err := p.Decide(vars)
	v := Verdict{Action: p.Default, Rule: rule}
	if err == nil && rule != nil {
		v.Action = rule.Action
	}
	return v, err
}

// Decide returns the first rule whose `when` is true, or nil when none
// matches (the policy's default applies). An evaluation error is returned
// with the rule it happened in, so the caller can fail closed.
func (p *CompiledPolicy) Decide(vars *Vars) (*CompiledRule, error) {
	for i := range p.Rules {
		r := &p.Rules[i]
		ok, err := r.Matches(vars)
		if err != nil {
			return r, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		if ok {
			return r, nil
		}
	}
	return nil, nil
}
