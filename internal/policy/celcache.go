package policy

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// compiledWhen is a `when` expression compiled in one environment: what
// every rule with the same text shares. A program of cel-go holds a copy
// of the environment's whole function table (about 13 KB), so 10,000
// policies with the same three rules would otherwise hold 30,000 copies
// of it. It is immutable once built.
type compiledWhen struct {
	// err is why the expression cannot be used (then nothing else is set).
	err *CompileError
	// native evaluates the expression in Go (see nativeWhen); nil when CEL
	// must.
	native nativeCheck
	// claimsAt and geoAt: see CompiledRule.
	claimsAt, geoAt common.Location
	// program is CEL's evaluation. An expression with a native check is
	// evaluated in Go whenever the rule has a user and a request, which
	// is always in the challenge server, so its program is only built on
	// first use.
	program func() (cel.Program, error)
}

// compileWhenIn type-checks expr in env, checks its estimated cost and
// derives what rules need of it. The program of an expression without a
// native check is built now, so that an expression whose program cannot
// be built is refused when its policy is compiled, not when a request
// comes. The native forms (see nativeWhen) build a program whenever they
// type-check: nothing in them is folded or compiled at plan time (no
// conversion of a constant, no regular expression).
func compileWhenIn(env *cel.Env, expr string) *compiledWhen {
	a, iss := env.Compile(expr)
	if iss.Err() != nil {
		ce := &CompileError{Message: formatIssues(expr, iss.Errors())}
		ce.Line, ce.Column = firstPosition(iss.Errors())
		return &compiledWhen{err: ce}
	}
	if a.OutputType() != cel.BoolType {
		return &compiledWhen{err: &CompileError{Message: fmt.Sprintf("expression must be of type bool, not %s", a.OutputType())}}
	}
	est, err := env.EstimateCost(a, &costEstimator{})
	if err != nil {
		return &compiledWhen{err: &CompileError{Message: fmt.Sprintf("estimating cost: %v", err)}}
	}
	if est.Max > MaxEstimatedCost {
		return &compiledWhen{err: &CompileError{Message: fmt.Sprintf("expression is too expensive: estimated cost %d exceeds the limit %d; simplify it (fewer regexes or list comprehensions over request data)", est.Max, MaxEstimatedCost)}}
	}
	w := &compiledWhen{native: nativeWhen(a), claimsAt: claimsRead(a), geoAt: geoRead(a)}
	if w.native != nil {
		// The checked expression is not kept: the program, if ever
		// needed, compiles the text again (same environment, same
		// result).
		maxCost := est.Max
		w.program = sync.OnceValues(func() (cel.Program, error) {
			a, iss := env.Compile(expr)
			if iss.Err() != nil {
				return nil, iss.Err()
			}
			return env.Program(a, programOptions(maxCost)...)
		})
		return w
	}
	prg, err := env.Program(a, programOptions(est.Max)...)
	if err != nil {
		return &compiledWhen{err: &CompileError{Message: err.Error()}}
	}
	w.program = func() (cel.Program, error) { return prg, nil }
	return w
}

// compileError is w's error as its own value, for a caller to keep.
func (w *compiledWhen) compileError() error {
	if w.err == nil {
		return nil
	}
	ce := *w.err
	return &ce
}

// whenHold is how long a compiled expression stays in whenCache after its
// last use even when no policy holds it any more: long enough for the two
// passes of one load (the standalone server builds the bundle, then the
// snapshot from it; the controller checks a policy, then builds the
// bundle) to compile each expression once.
const whenHold = time.Minute

// whenCache shares compiled expressions among the rules of one
// environment, keyed by the expression's text: in one environment the
// text decides everything of the result (the program options follow from
// the checked expression's cost, which follows from the text). Another
// environment has a cache of its own.
//
// It holds an expression weakly while some policy in force holds it (so
// that rules with the same text share one, however long ago they were
// compiled), and strongly for whenHold to 2*whenHold after its last use.
// What it keeps is therefore bounded by what is in force plus what was
// compiled lately; a policy edited away is forgotten once its last
// holder is collected.
type whenCache struct {
	env  *cel.Env
	hold time.Duration

	mu   sync.Mutex
	live map[string]weak.Pointer[compiledWhen]
	// recent and older hold the expressions used in the current and the
	// previous hold period; rotate moves recent to older and drops older.
	recent, older map[string]*compiledWhen
	rotation      *time.Timer
	// compiles counts the expressions compiled (not found in the cache).
	compiles int
}

func newWhenCache(env *cel.Env, hold time.Duration) *whenCache {
	return &whenCache{env: env, hold: hold, live: map[string]weak.Pointer[compiledWhen]{}, recent: map[string]*compiledWhen{}}
}

// get returns the compiled expr, compiling it unless an equal text is
// compiled already. Two callers may compile the same new text at once;
// the first to finish is kept and given to both.
func (c *whenCache) get(expr string) *compiledWhen {
	if w := c.lookup(expr); w != nil {
		return w
	}
	w := compileWhenIn(c.env, expr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.live[expr]; ok {
		if kept := p.Value(); kept != nil {
			c.holdLocked(expr, kept)
			return kept
		}
	}
	c.compiles++
	c.live[expr] = weak.Make(w)
	runtime.AddCleanup(w, c.forget, expr)
	c.holdLocked(expr, w)
	return w
}

func (c *whenCache) lookup(expr string) *compiledWhen {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.live[expr]
	if !ok {
		return nil
	}
	w := p.Value()
	if w != nil {
		c.holdLocked(expr, w)
	}
	return w
}

// holdLocked keeps w for the current hold period; mu is held.
func (c *whenCache) holdLocked(expr string, w *compiledWhen) {
	c.recent[expr] = w
	if c.rotation == nil {
		c.rotation = time.AfterFunc(c.hold, c.rotate)
	}
}

// rotate ends a hold period: what was not used during the last two is
// held only by the policies that use it.
func (c *whenCache) rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.older, c.recent = c.recent, map[string]*compiledWhen{}
	if c.rotation == nil {
		return
	}
	if len(c.older) == 0 {
		c.rotation.Stop()
		c.rotation = nil
		return
	}
	c.rotation.Reset(c.hold)
}

// forget drops the entry of expr once its expression was collected (a
// runtime cleanup), unless it was compiled again since.
func (c *whenCache) forget(expr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.live[expr]; ok && p.Value() == nil {
		delete(c.live, expr)
	}
}

// size is how many expressions the cache knows.
func (c *whenCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}

// Precompile compiles the `when` of every rule of policies on every CPU,
// each text once, so that CompilePolicy and CheckPolicy find them
// compiled (they are held for whenHold at least): a load of many policies
// whose texts are new then compiles on every CPU although it checks its
// policies one after the other.
func Precompile(policies []v1alpha1.MFAPolicy) {
	if _, err := Env(); err != nil {
		return // CompilePolicy reports it
	}
	seen := map[string]bool{}
	var texts []string
	for i := range policies {
		for _, r := range policies[i].Spec.Rules {
			if !seen[r.When] {
				seen[r.When] = true
				texts = append(texts, r.When)
			}
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(texts)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(texts) {
					return
				}
				whens.get(texts[i])
			}
		})
	}
	wg.Wait()
}
