package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// nativeCheck evaluates a `when` in Go, with the same answer and the same
// errors as CEL.
type nativeCheck func(v *Vars) (bool, error)

// nativeWhen returns a nativeCheck for a type-checked expression made only
// of the forms most rules are written in, or nil for anything else (which
// CEL evaluates):
//
//	true, false
//	!a, a && b, a || b                  (CEL's error semantics)
//	F == "s", F != "s", "s" == F, "s" != F
//	F.startsWith("s"), F.endsWith("s"), F.contains("s")
//	F in ["s", ...], "s" in user.groups
//	cidr("c").containsIP(ip(F)), cidr("c").containsIP(F), isIP(F)
//	request.interactive
//
// where F is a string field of user (id, email, name) or request (host,
// path, method, scheme, url, ip, geo.country). These are the rules of the examples:
// a path prefix, a network, a group, a method. CEL's interpreter costs
// 60-250 ns for each of them on every request; the Go closures a few.
// TestNativeAgreesWithCEL and FuzzNativeAgreesWithCEL compare both
// evaluations on every form, including every error.
func nativeWhen(a *cel.Ast) nativeCheck {
	if a == nil || !a.IsChecked() {
		return nil
	}
	return nativeExpr(a.NativeRep().Expr())
}

func nativeExpr(e ast.Expr) nativeCheck {
	switch e.Kind() {
	case ast.LiteralKind:
		if b, ok := e.AsLiteral().(types.Bool); ok {
			v := bool(b)
			return func(*Vars) (bool, error) { return v, nil }
		}
	case ast.CallKind:
		return nativeCall(e.AsCall())
	case ast.SelectKind:
		if flag := flagReader(e); flag != nil {
			return func(v *Vars) (bool, error) { return flag(v), nil }
		}
	}
	return nil
}

// flagReader is the reader of e when e is request.F for a bool field F
// (not a has() test), nil otherwise.
func flagReader(e ast.Expr) func(*Vars) bool {
	sel := e.AsSelect()
	if sel.IsTestOnly() || sel.Operand().Kind() != ast.IdentKind || sel.Operand().AsIdent() != "request" {
		return nil
	}
	if flag := requestFields[sel.FieldName()].flag; flag != nil {
		return func(v *Vars) bool { return flag(v.Request) }
	}
	return nil
}

func nativeCall(c ast.CallExpr) nativeCheck {
	args := c.Args()
	if c.IsMemberFunction() {
		if len(args) != 1 {
			return nil
		}
		return nativeMethod(c.FunctionName(), c.Target(), args[0])
	}
	switch c.FunctionName() {
	case operators.LogicalNot:
		if len(args) == 1 {
			if x := nativeExpr(args[0]); x != nil {
				return nativeNot(x)
			}
		}
	case operators.LogicalAnd, operators.LogicalOr:
		if len(args) != 2 {
			return nil
		}
		l, r := nativeExpr(args[0]), nativeExpr(args[1])
		if l == nil || r == nil {
			return nil
		}
		return nativeJoin(l, r, c.FunctionName() == operators.LogicalOr)
	case operators.Equals, operators.NotEquals:
		if len(args) != 2 {
			return nil
		}
		f, s, ok := fieldAndLiteral(args[0], args[1])
		if !ok {
			if f, s, ok = fieldAndLiteral(args[1], args[0]); !ok {
				return nil
			}
		}
		if c.FunctionName() == operators.Equals {
			return func(v *Vars) (bool, error) { return f(v) == s, nil }
		}
		return func(v *Vars) (bool, error) { return f(v) != s, nil }
	case "isIP":
		if len(args) == 1 {
			if f := fieldReader(args[0]); f != nil {
				return func(v *Vars) (bool, error) {
					_, err := parseRuleIP(f(v))
					return err == nil, nil
				}
			}
		}
	case operators.In:
		if len(args) != 2 {
			return nil
		}
		if s, ok := stringLiteral(args[0]); ok && isUserGroups(args[1]) {
			return func(v *Vars) (bool, error) { return slices.Contains(v.User.Groups, s), nil }
		}
		if f := fieldReader(args[0]); f != nil {
			if list, ok := stringLiterals(args[1]); ok {
				return func(v *Vars) (bool, error) { return slices.Contains(list, f(v)), nil }
			}
		}
	}
	return nil
}

func nativeMethod(name string, target, arg ast.Expr) nativeCheck {
	switch name {
	case "startsWith", "endsWith", "contains":
		f, s, ok := fieldAndLiteral(target, arg)
		if !ok {
			return nil
		}
		switch name {
		case "startsWith":
			return func(v *Vars) (bool, error) { return strings.HasPrefix(f(v), s), nil }
		case "endsWith":
			return func(v *Vars) (bool, error) { return strings.HasSuffix(f(v), s), nil }
		default:
			return func(v *Vars) (bool, error) { return strings.Contains(f(v), s), nil }
		}
	case "containsIP":
		prefix, ok := cidrLiteral(target)
		if !ok {
			return nil
		}
		f := fieldReader(arg)
		if f == nil {
			// ip(F): the same parse as the string overload.
			if arg.Kind() != ast.CallKind || arg.AsCall().FunctionName() != "ip" || arg.AsCall().IsMemberFunction() || len(arg.AsCall().Args()) != 1 {
				return nil
			}
			if f = fieldReader(arg.AsCall().Args()[0]); f == nil {
				return nil
			}
		}
		return func(v *Vars) (bool, error) {
			a, err := parseRuleIP(f(v))
			if err != nil {
				return false, err
			}
			return prefix.Contains(a), nil
		}
	}
	return nil
}

// nativeNot and nativeJoin answer as CEL's !, && and ||.
func nativeNot(x nativeCheck) nativeCheck {
	return func(v *Vars) (bool, error) {
		b, err := x(v)
		if err != nil {
			return false, err
		}
		return !b, nil
	}
}

// nativeJoin is && when absorbing is false and || when it is true: a side
// that is absorbing decides, even when the other side is an error (in
// either order); otherwise an error is returned, else !absorbing.
func nativeJoin(l, r nativeCheck, absorbing bool) nativeCheck {
	return func(v *Vars) (bool, error) {
		lb, lerr := l(v)
		if lerr == nil && lb == absorbing {
			return absorbing, nil
		}
		rb, rerr := r(v)
		if rerr == nil && rb == absorbing {
			return absorbing, nil
		}
		if lerr != nil {
			return false, lerr
		}
		if rerr != nil {
			return false, rerr
		}
		return !absorbing, nil
	}
}

// fieldReader is the reader of e when e is user.F or request.F for a
// string field F (not a has() test), nil otherwise. It reads through the
// same field table as CEL (userFields, requestFields).
func fieldReader(e ast.Expr) func(*Vars) string {
	if e.Kind() != ast.SelectKind {
		return nil
	}
	sel := e.AsSelect()
	if sel.IsTestOnly() {
		return nil
	}
	if isRequestGeo(sel.Operand()) {
		if str := geoFields[sel.FieldName()].str; str != nil {
			return func(v *Vars) string { return str(&v.Request.Geo) }
		}
		return nil
	}
	if sel.Operand().Kind() != ast.IdentKind {
		return nil
	}
	switch sel.Operand().AsIdent() {
	case "user":
		if str := userFields[sel.FieldName()].str; str != nil {
			return func(v *Vars) string { return str(v.User) }
		}
	case "request":
		if str := requestFields[sel.FieldName()].str; str != nil {
			return func(v *Vars) string { return str(v.Request) }
		}
	}
	return nil
}

// isRequestGeo says whether e is request.geo (not a has() test).
func isRequestGeo(e ast.Expr) bool {
	if e.Kind() != ast.SelectKind {
		return false
	}
	sel := e.AsSelect()
	return !sel.IsTestOnly() && sel.FieldName() == "geo" &&
		sel.Operand().Kind() == ast.IdentKind && sel.Operand().AsIdent() == "request"
}

func isUserGroups(e ast.Expr) bool {
	if e.Kind() != ast.SelectKind {
		return false
	}
	sel := e.AsSelect()
	return !sel.IsTestOnly() && sel.FieldName() == "groups" &&
		sel.Operand().Kind() == ast.IdentKind && sel.Operand().AsIdent() == "user"
}

func stringLiteral(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// stringLiterals are the elements of a list literal of string literals.
func stringLiterals(e ast.Expr) ([]string, bool) {
	if e.Kind() != ast.ListKind || len(e.AsList().OptionalIndices()) > 0 {
		return nil, false
	}
	var out []string
	for _, el := range e.AsList().Elements() {
		s, ok := stringLiteral(el)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func fieldAndLiteral(field, lit ast.Expr) (func(*Vars) string, string, bool) {
	f := fieldReader(field)
	if f == nil {
		return nil, "", false
	}
	s, ok := stringLiteral(lit)
	return f, s, ok
}

// cidrLiteral is the prefix of cidr("c") when c parses as Kubernetes'
// cidr() accepts it. A constant it refuses is left to CEL, which fails
// the rule on every evaluation as before.
func cidrLiteral(e ast.Expr) (netip.Prefix, bool) {
	if e.Kind() != ast.CallKind {
		return netip.Prefix{}, false
	}
	c := e.AsCall()
	if c.FunctionName() != "cidr" || c.IsMemberFunction() || len(c.Args()) != 1 {
		return netip.Prefix{}, false
	}
	s, ok := stringLiteral(c.Args()[0])
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Is4In6() {
		return netip.Prefix{}, false
	}
	return p, true
}

// parseRuleIP parses as Kubernetes' ip() does: no zone, no IPv4-mapped
// IPv6 address.
func parseRuleIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("IP Address %q parse error during conversion from string: %v", s, err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("IP address %q with zone value is not allowed", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("IPv4-mapped IPv6 address %q is not allowed", s)
	}
	return a, nil
}
