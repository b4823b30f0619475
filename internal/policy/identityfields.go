package policy

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// claimsRead returns where a type-checked `when` first reads user.claims
// (in has() too), or nil when it does not.
func claimsRead(a *cel.Ast) common.Location {
	native := a.NativeRep()
	var at common.Location
	ast.PreOrderVisit(native.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if at != nil || e.Kind() != ast.SelectKind {
			return
		}
		sel := e.AsSelect()
		if sel.FieldName() != "claims" || native.GetType(sel.Operand().ID()).TypeName() != userTypeName {
			return
		}
		loc := native.SourceInfo().GetStartLocation(sel.Operand().ID())
		if loc.Line() > 0 {
			at = loc
		}
	}))
	return at
}

// checkIdentityFields refuses a rule that reads user.claims in a policy
// whose identity is not a JWT: the claims would always be empty, so
// `"sc" in user.claims.amr` would fail every request that reaches it
// (no such key) and has(user.claims.amr) would always be false.
//
// It is a check of CheckPolicy, not of CompilePolicy, which the challenge
// server runs on the bundle: a bundle written before this check existed
// still loads.
func checkIdentityFields(spec *v1alpha1.MFAPolicySpec, cp *CompiledPolicy) error {
	if spec.Identity.JWT != nil {
		return nil
	}
	for i := range cp.Rules {
		at := cp.Rules[i].claimsAt
		if at == nil {
			continue
		}
		var b strings.Builder
		writeIssue(&b, common.NewTextSource(spec.Rules[i].When), at,
			"user.claims is only set for a jwt identity; this policy reads the user from headers (spec.identity.header), "+
				"so it has no claims: use user.id, user.email, user.name, user.groups or request.headers, "+
				"or read the user from a token (spec.identity.jwt)")
		return &FieldError{Field: fmt.Sprintf("spec.rules[%d].when", i), Rule: cp.Rules[i].Name, Reason: v1alpha1.ReasonInvalidExpression, Message: b.String(),
			Line: at.Line(), Column: at.Column() + 1}
	}
	return nil
}
