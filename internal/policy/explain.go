package policy

import (
	"fmt"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/parser"
)

// Explanation is a policy's verdict on one request and the reasons behind
// it: every rule evaluated before the one that decided, and why it did not
// match.
type Explanation struct {
	// Verdict is Judge's answer, the one the challenge server gives.
	Verdict Verdict
	// Err is the evaluation error of Verdict.Rule (the server fails closed).
	Err error
	// Rules are the rules evaluated, in order, up to the one that decided
	// (every rule when the default decided).
	Rules []RuleTrace
}

// RuleTrace is one rule's evaluation.
type RuleTrace struct {
	Index   int
	Name    string
	When    string
	Matched bool
	Err     error
	// Parts are the operands of a `when` made of && (or ||): the value of
	// each, so that a rule that did not match says which part was false.
	// Empty when `when` is not such a join.
	Parts []PartTrace
}

// PartTrace is one operand of a rule's && or ||.
type PartTrace struct {
	Expr  string
	Value string // true, false, or the error
}

// Explain judges vars exactly as the challenge server does (Judge), then
// evaluates each rule it went through again to say why it did or did not
// match.
func (p *CompiledPolicy) Explain(vars *Vars) Explanation {
	v, err := p.Judge(vars)
	x := Explanation{Verdict: v, Err: err}
	for i := range p.Rules {
		r := &p.Rules[i]
		matched, rerr := r.Matches(vars)
		t := RuleTrace{Index: i, Name: r.Name, When: p.Spec.Rules[i].When, Matched: matched, Err: rerr}
		t.Parts = explainParts(t.When, vars)
		x.Rules = append(x.Rules, t)
		if r == v.Rule {
			break
		}
	}
	return x
}

// explainParts evaluates the operands of a top-level && or || chain.
func explainParts(when string, vars *Vars) []PartTrace {
	e, err := Env()
	if err != nil {
		return nil
	}
	checked, iss := e.Compile(when)
	if iss.Err() != nil {
		return nil
	}
	native := checked.NativeRep()
	root := native.Expr()
	if root.Kind() != ast.CallKind {
		return nil
	}
	op := root.AsCall().FunctionName()
	if op != operators.LogicalAnd && op != operators.LogicalOr {
		return nil
	}
	var parts []PartTrace
	for _, operand := range flatten(root, op) {
		text, err := parser.Unparse(operand, native.SourceInfo())
		if err != nil {
			return nil
		}
		prg, err := Compile(text)
		if err != nil {
			parts = append(parts, PartTrace{Expr: text, Value: "not evaluated: " + err.Error()})
			continue
		}
		b, err := Eval(prg, vars)
		value := fmt.Sprint(b)
		if err != nil {
			value = "error: " + err.Error()
		}
		parts = append(parts, PartTrace{Expr: text, Value: value})
	}
	return parts
}

// flatten returns the operands of a chain of the operator op.
func flatten(e ast.Expr, op string) []ast.Expr {
	if e.Kind() != ast.CallKind || e.AsCall().FunctionName() != op {
		return []ast.Expr{e}
	}
	var out []ast.Expr
	for _, a := range e.AsCall().Args() {
		out = append(out, flatten(a, op)...)
	}
	return out
}
