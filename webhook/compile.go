package webhook

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mfa-operator/mfa-operator/internal/policy"
)

// compiled is one policy of a bundle compiled, or why it does not compile.
type compiled struct {
	cp  *policy.CompiledPolicy
	err error
}

// compilePolicies compiles the policies of a bundle on every CPU, in the
// order of the bundle (the first that fails is the one a refusal names).
// Rules of the same text share one compiled expression however many
// policies hold them (policy.CompilePolicy), so this mostly pays for
// the texts seen for the first time.
func compilePolicies(pols []policy.BundlePolicy) []compiled {
	out := make([]compiled, len(pols))
	workers := min(runtime.GOMAXPROCS(0), len(pols))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(pols) {
					return
				}
				bp := &pols[i]
				out[i].cp, out[i].err = policy.CompilePolicy(bp.Namespace, bp.Name, &bp.Spec)
			}
		})
	}
	wg.Wait()
	return out
}
