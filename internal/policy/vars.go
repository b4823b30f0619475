package policy

import "github.com/google/cel-go/interpreter"

// Vars is the activation of a rule: `user` and `request`. It implements
// interpreter.Activation without building a map per request.
type Vars struct {
	User    *User
	Request *Request
}

var _ interpreter.Activation = (*Vars)(nil)

// ResolveName implements interpreter.Activation.
func (v *Vars) ResolveName(name string) (any, bool) {
	switch name {
	case "user":
		return v.User, true
	case "request":
		return v.Request, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (v *Vars) Parent() interpreter.Activation { return nil }
