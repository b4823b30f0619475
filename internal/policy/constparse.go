package policy

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// constantParses are the overloads of Kubernetes' libraries that parse a
// string into an immutable value and depend on nothing else.
var constantParses = map[string]bool{
	"string_to_cidr": true, // cidr("10.0.0.0/8")
	"string_to_ip":   true, // ip("10.1.2.3")
}

// constantParsers is the program option that runs cidr() and ip() of a
// constant once, when the rule is compiled, instead of on every request.
//
// cel.OptOptimize folds only CEL's own type conversions (int(), string(),
// ...), and CEL's constant-folding optimizer works on the AST, which has no
// literal for a CIDR or an IP: it refuses the whole expression. A constant
// that does not parse is left as it is, so it fails at evaluation with the
// same error as before.
func constantParsers() cel.ProgramOption {
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok || !constantParses[call.OverloadID()] {
			return i, nil
		}
		args := call.Args()
		if len(args) != 1 {
			return i, nil
		}
		if _, ok := args[0].(interpreter.InterpretableConst); !ok {
			return i, nil
		}
		val := call.Eval(interpreter.EmptyActivation())
		if types.IsUnknownOrError(val) {
			return i, nil
		}
		return &parsedConstant{id: call.ID(), val: val}, nil
	})
}

// parsedConstant is the value of a call computed when the rule was
// compiled. It is deliberately not an interpreter.InterpretableConst: the
// planner takes those for literals (a constant map index becomes a
// qualifier, which refuses a CIDR at plan time), and the rest of the plan
// must stay what it was when the call ran on every evaluation.
type parsedConstant struct {
	id  int64
	val ref.Val
}

// ID implements interpreter.Interpretable.
func (c *parsedConstant) ID() int64 { return c.id }

// Eval implements interpreter.Interpretable.
func (c *parsedConstant) Eval(interpreter.Activation) ref.Val { return c.val }

// Exec implements interpreter.InterpretableV2.
func (c *parsedConstant) Exec(*interpreter.ExecutionFrame) ref.Val { return c.val }
