package policy

import (
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// geoRead returns where a type-checked `when` may read request.geo, or nil
// when it cannot: a selection of a field named geo (whatever its operand,
// so that dyn(request).geo counts), or `request` used whole (passed to a
// function or a macro) rather than through one of its fields. Only the
// policies that may read it pay for the GeoIP lookup.
func geoRead(a *cel.Ast) common.Location {
	native := a.NativeRep()
	operands := map[int64]bool{}
	var at common.Location
	mark := func(id int64) {
		if at != nil {
			return
		}
		if loc := native.SourceInfo().GetStartLocation(id); loc.Line() > 0 {
			at = loc
		} else {
			at = common.NoLocation
		}
	}
	ast.PreOrderVisit(native.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.SelectKind:
			sel := e.AsSelect()
			operands[sel.Operand().ID()] = true
			if sel.FieldName() == "geo" {
				mark(sel.Operand().ID())
			}
		case ast.IdentKind:
			if e.AsIdent() == "request" && !operands[e.ID()] {
				mark(e.ID())
			}
		}
	}))
	return at
}

// ReadsGeo says whether a rule of the policy may read request.geo: the
// challenge server looks the client address up only for those.
func (p *CompiledPolicy) ReadsGeo() bool { return p.readsGeo }

// checkGeo refuses a policy reading request.geo when the operator runs
// without a GeoIP database: the country and ASN would always be empty, so
// a rule like `request.geo.country != "FR"` would match every request.
func checkGeo(spec *v1alpha1.MFAPolicySpec, cp *CompiledPolicy, available bool) error {
	if available {
		return nil
	}
	for i := range cp.Rules {
		at := cp.Rules[i].geoAt
		if at == nil {
			continue
		}
		var b strings.Builder
		writeIssue(&b, common.NewTextSource(spec.Rules[i].When), at,
			"request.geo is read but the operator runs without a GeoIP database, so the country and ASN would always be empty: "+
				"start the controller (and the challenge server) with --geoip-db pointing at a MaxMind-format database (GeoLite2-Country, GeoLite2-ASN), "+
				"or rewrite the rule without request.geo")
		return &FieldError{Field: fmt.Sprintf("spec.rules[%d].when", i), Rule: cp.Rules[i].Name, Reason: v1alpha1.ReasonGeoIPUnavailable, Message: b.String(),
			Line: at.Line(), Column: at.Column() + 1}
	}
	return nil
}
