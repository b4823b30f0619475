// Package policy holds what the controller and the challenge server share:
// the CEL environment of a rule's `when`, the compiled form of policies, and
// the bundle the controller writes for the server.
package policy

import (
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	"k8s.io/apiserver/pkg/cel/library"
)

// User is the `user` variable of a rule.
type User struct {
	ID     string   `cel:"id"`
	Email  string   `cel:"email"`
	Name   string   `cel:"name"`
	Groups []string `cel:"groups"`
	Claims Claims   `cel:"claims"`
}

// Request is the `request` variable of a rule: the original request, not
// the auth sub-request.
type Request struct {
	Host    string              `cel:"host"`
	Path    string              `cel:"path"`
	Method  string              `cel:"method"`
	Scheme  string              `cel:"scheme"`
	URL     string              `cel:"url"`
	Headers map[string]string   `cel:"headers"`
	Query   map[string][]string `cel:"query"`
	IP      string              `cel:"ip"`
	Time    time.Time           `cel:"time"`
	// Interactive: the original request is a browser navigation, not an
	// API client (see the challenge server's browserNavigation).
	Interactive bool `cel:"interactive"`
	// Geo is where request.ip is, from the GeoIP database; set only for
	// policies whose rules read it (CompiledPolicy.ReadsGeo).
	Geo Geo `cel:"geo"`
}

// Geo is `request.geo`: the client address's country and network, from a
// MaxMind-format database. Both are zero when the database does not know
// the address or none is loaded.
type Geo struct {
	// Country is the ISO 3166-1 alpha-2 code, upper-case: "FR", "US".
	Country string `cel:"country"`
	// ASN is the autonomous system number: 3215.
	ASN int64 `cel:"asn"`
}

const (
	// MaxEstimatedCost refuses, at reconcile time, an expression whose worst
	// case is too expensive to run on every request.
	MaxEstimatedCost = 100_000
	// MaxRuntimeCost stops an evaluation that goes beyond it (fail closed).
	MaxRuntimeCost = 100_000

	// untrackedCost is the estimated worst case under which an expression
	// is evaluated without runtime cost tracking.
	untrackedCost = MaxRuntimeCost / 20

	// Size bounds used by the cost estimator: the challenge server refuses
	// requests whose headers exceed 32 KiB, so no string a rule sees
	// (header, URL, token claim) is larger than this.
	maxStringSize = 32 << 10
	maxListSize   = 256
)

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
	// whens are the expressions compiled in env.
	whens *whenCache
)

// Env returns the CEL environment of a rule's `when`. It is built once and
// shared by the controller (to validate) and the challenge server (to
// evaluate), so both accept exactly the same dialect: CEL with Kubernetes'
// libraries (ip, cidr, url, regex, lists, quantity, format, semver) and the
// strings extension.
func Env() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = newEnv(directFields())
		if envErr == nil {
			whens = newWhenCache(env, whenHold)
		}
	})
	return env, envErr
}

// newEnv builds the environment of Env; extra options come after the native
// types, whose provider they may wrap.
func newEnv(extra ...cel.EnvOption) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(ext.StringsVersion(2)),
		ext.Sets(),
		library.URLs(),
		library.Regex(),
		library.Lists(),
		library.IP(),
		library.CIDR(),
		library.Quantity(),
		library.Format(),
		library.SemverLib(),
		// Native types last: their provider wraps the libraries' types.
		// They declare the fields of User and Request; directFields then
		// reads them without reflection.
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeFor[User](), reflect.TypeFor[Request](), reflect.TypeFor[Geo]()),
	}
	opts = append(opts, extra...)
	opts = append(opts,
		cel.Variable("user", cel.ObjectType(userTypeName)),
		cel.Variable("request", cel.ObjectType(requestTypeName)),
	)
	return cel.NewEnv(opts...)
}

// CompileError is a rule expression that cannot be used. For an expression
// that does not parse or type-check, its message is CEL's: the position,
// the problem, and the line of the expression with a caret under the
// position (see formatIssues).
type CompileError struct {
	Reason  string // InvalidExpression
	Message string
	// Line and Column are the position of the first error (1-based), when
	// the expression does not parse or type-check; zero otherwise.
	Line, Column int
}

func (e *CompileError) Error() string { return e.Message }

// Compile type-checks a `when` expression, checks its estimated cost and
// returns a program ready to evaluate.
func Compile(expr string) (cel.Program, error) {
	prg, _, err := compileWhen(expr)
	return prg, err
}

// compileWhen is Compile, with the expression's Go evaluation when it has
// one (see nativeWhen).
func compileWhen(expr string) (cel.Program, nativeCheck, error) {
	w, err := compileShared(expr)
	if err != nil {
		return nil, nil, err
	}
	prg, err := w.program()
	if err != nil {
		return nil, nil, &CompileError{Message: err.Error()}
	}
	return prg, w.native, nil
}

// compileShared compiles a `when` in Env, sharing the result with every
// other rule of the same text (see whenCache).
func compileShared(expr string) (*compiledWhen, error) {
	if _, err := Env(); err != nil {
		return nil, fmt.Errorf("building CEL environment: %w", err)
	}
	w := whens.get(expr)
	return w, w.compileError()
}

// programOptions are the options of a program whose estimated worst-case
// cost is maxCost.
func programOptions(maxCost uint64) []cel.ProgramOption {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize), constantZones(), constantParsers()}
	// Cost tracking doubles the price of an evaluation. An expression whose
	// estimated worst case is far below the limit cannot reach it (the
	// estimate bounds every string by the server's header limit), so only
	// the others are tracked and stopped at MaxRuntimeCost.
	if maxCost > untrackedCost {
		opts = append(opts, cel.CostTracking(&library.CostEstimator{}), cel.CostLimit(MaxRuntimeCost))
	}
	return opts
}

// Eval runs a compiled `when`. Any error (including the runtime cost limit)
// is returned so that the caller fails closed.
func Eval(prg cel.Program, vars *Vars) (bool, error) {
	out, _, err := prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not bool", out.Type())
	}
	return bool(b), nil
}

// costEstimator bounds the sizes of request data for the cost estimate and
// adds Kubernetes' library costs.
type costEstimator struct{ library.CostEstimator }

func (c *costEstimator) EstimateSize(element checker.AstNode) *checker.SizeEstimate {
	if s := c.CostEstimator.EstimateSize(element); s != nil {
		return s
	}
	switch element.Type().Kind() {
	case types.StringKind, types.BytesKind, types.DynKind:
		return &checker.SizeEstimate{Min: 0, Max: maxStringSize}
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: maxListSize}
	}
	return nil
}
