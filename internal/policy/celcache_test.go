package policy

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	. "github.com/onsi/gomega"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// sharedRuleTexts are the texts the policies of TestSharedRulesDecideAsUnshared
// draw their rules from: forms evaluated in Go and forms only CEL
// evaluates, some failing on some requests.
func sharedRuleTexts() []string {
	texts := append([]string{}, nativeForms...)
	texts = append(texts, celOnlyForms...)
	return append(texts,
		`request.path.matches("^/adm[i]n")`,
		`request.headers["user-agent"].startsWith("Mozilla/")`,
		`int(request.query["n"][0]) > 2`,
	)
}

// TestSharedRulesDecideAsUnshared compiles many policies whose rules
// repeat the same texts, checks that equal texts share one compiled
// expression, and that every policy decides every sample request exactly
// as the same policy compiled on its own (no sharing) does, errors
// included.
func TestSharedRulesDecideAsUnshared(t *testing.T) {
	g := NewWithT(t)
	texts := sharedRuleTexts()
	e, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	samples := nativeSamples()
	for _, v := range samples {
		v.Request.Query = map[string][]string{"n": {fmt.Sprint(len(v.Request.Path) % 5)}}
		v.Request.Headers = map[string]string{"user-agent": v.Request.Method}
	}
	byText := map[string]*compiledWhen{}
	for p := range 150 {
		var rules []v1alpha1.Rule
		for r := range 4 {
			rules = append(rules, v1alpha1.Rule{Name: fmt.Sprintf("r%d", r), When: texts[(p*7+r*3)%len(texts)], Action: v1alpha1.ActionDeny})
		}
		shared, err := CompilePolicy("apps", fmt.Sprintf("p%d", p), &v1alpha1.MFAPolicySpec{Rules: rules})
		g.Expect(err).NotTo(HaveOccurred())
		alone := &CompiledPolicy{Default: shared.Default}
		for i, r := range rules {
			w := compileWhenIn(e, r.When) // no cache: compiled for this rule only
			g.Expect(w.err).To(BeNil())
			alone.Rules = append(alone.Rules, CompiledRule{Name: r.Name, Action: r.Action, when: w, native: w.native})
			if first := byText[r.When]; first != nil {
				g.Expect(shared.Rules[i].when).To(BeIdenticalTo(first), "rules with the text %s share one compiled expression", r.When)
			}
			byText[r.When] = shared.Rules[i].when
		}
		for _, v := range samples {
			for _, vars := range []*Vars{v, {Request: v.Request}} { // without a user, CEL evaluates every rule
				want, wantErr := alone.Decide(vars)
				got, gotErr := shared.Decide(vars)
				g.Expect(gotErr != nil).To(Equal(wantErr != nil), "policy %d on %+v: error %v, alone %v", p, *vars.Request, gotErr, wantErr)
				g.Expect(ruleName(got)).To(Equal(ruleName(want)), "policy %d on %+v", p, *vars.Request)
			}
		}
	}
}

func ruleName(r *CompiledRule) string {
	if r == nil {
		return "(default)"
	}
	return r.Name
}

// TestPolicyEditTakesEffect compiles a policy, then an edit of its rule:
// the new text decides, and the policy compiled before decides as it did.
func TestPolicyEditTakesEffect(t *testing.T) {
	g := NewWithT(t)
	spec := func(prefix string) *v1alpha1.MFAPolicySpec {
		return &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{{Name: "area", When: `request.path.startsWith("` + prefix + `")`, Action: v1alpha1.ActionDeny}}}
	}
	onA := &Vars{User: &User{}, Request: &Request{Path: "/a/x"}}
	before, err := CompilePolicy("apps", "edit", spec("/a/"))
	g.Expect(err).NotTo(HaveOccurred())
	after, err := CompilePolicy("apps", "edit", spec("/b/"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.Rules[0].when).NotTo(BeIdenticalTo(before.Rules[0].when))
	r, err := after.Decide(onA)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r).To(BeNil())
	r, err = before.Decide(onA)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ruleName(r)).To(Equal("area"))
	// An edit to a text that does not compile is refused as always, the
	// second time (from the cache) with the same error and position.
	bad := &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{{Name: "area", When: `request.pth == "/"`, Action: v1alpha1.ActionDeny}}}
	var errs []*FieldError
	for range 2 {
		_, err = CompilePolicy("apps", "edit", bad)
		var fe *FieldError
		g.Expect(errors.As(err, &fe)).To(BeTrue())
		errs = append(errs, fe)
	}
	g.Expect(errs[0].Field).To(Equal("spec.rules[0].when"))
	g.Expect(errs[0].Reason).To(Equal(v1alpha1.ReasonInvalidExpression))
	g.Expect(errs[0].Message).To(ContainSubstring("undefined field 'pth'"))
	g.Expect(errs[0].Line).To(Equal(1))
	g.Expect(errs[0].Column).To(Equal(8))
	g.Expect(*errs[1]).To(Equal(*errs[0]))
}

// TestWhenCacheForgetsEditedExpressions edits one rule a thousand times
// (a new text each time): once the hold periods pass, the cache knows
// only the text in force, which it keeps.
func TestWhenCacheForgetsEditedExpressions(t *testing.T) {
	g := NewWithT(t)
	e, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	c := newWhenCache(e, time.Hour) // rotated by hand below
	var inForce *compiledWhen
	for i := range 1000 {
		inForce = c.get(fmt.Sprintf(`request.path.startsWith("/v%d/")`, i))
	}
	g.Expect(c.size()).To(Equal(1000), "held for the hold period")
	g.Expect(c.compiles).To(Equal(1000))
	c.rotate()
	c.rotate()
	g.Eventually(func() int {
		runtime.GC()
		return c.size()
	}).WithTimeout(30 * time.Second).WithPolling(10 * time.Millisecond).Should(Equal(1))
	g.Expect(c.get(`request.path.startsWith("/v999/")`)).To(BeIdenticalTo(inForce), "the text in force is still shared")
	runtime.KeepAlive(inForce)
}

// TestWhenCacheHoldsExpressionsBetweenPasses: an expression no policy
// holds any more is still shared during its hold period (the bundle and
// the snapshot of one load compile it once), and not after.
func TestWhenCacheHoldsExpressionsBetweenPasses(t *testing.T) {
	g := NewWithT(t)
	e, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	c := newWhenCache(e, time.Hour)
	const text = `request.method == "GET"`
	c.get(text) // no reference kept
	runtime.GC()
	c.get(text)
	g.Expect(c.compiles).To(Equal(1), "compiled once")
	c.rotate()
	c.rotate()
	g.Eventually(func() int {
		runtime.GC()
		return c.size()
	}).WithTimeout(30 * time.Second).WithPolling(10 * time.Millisecond).Should(BeZero())
}

// TestWhenCacheEnvironmentsDoNotShare compiles the same texts in two
// environments that differ by one variable: each cache answers for its
// own environment, whichever compiled a text first.
func TestWhenCacheEnvironmentsDoNotShare(t *testing.T) {
	g := NewWithT(t)
	plain, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	office, err := newEnv(directFields(), cel.Variable("office", cel.BoolType))
	g.Expect(err).NotTo(HaveOccurred())
	a, b := newWhenCache(plain, time.Hour), newWhenCache(office, time.Hour)

	g.Expect(b.get("office").err).To(BeNil())
	g.Expect(a.get("office").err).NotTo(BeNil(), "office is not declared in the plain environment")
	g.Expect(a.get("!office || true").err).NotTo(BeNil())
	g.Expect(b.get("!office || true").err).To(BeNil())

	const both = `request.path == "/"`
	wa, wb := a.get(both), b.get(both)
	g.Expect(wa.err).To(BeNil())
	g.Expect(wb.err).To(BeNil())
	g.Expect(wa).NotTo(BeIdenticalTo(wb))
	// The environment a text is compiled in is the cache's own.
	g.Expect(whens.env).To(BeIdenticalTo(plain))
}

// TestWhenCacheSharesAmongConcurrentCompiles: policies compiled at once
// (the server compiles a bundle on every CPU) get one compiled
// expression for one text.
func TestWhenCacheSharesAmongConcurrentCompiles(t *testing.T) {
	g := NewWithT(t)
	e, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	c := newWhenCache(e, time.Hour)
	got := make([]*compiledWhen, 64)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i] = c.get(`"admins" in user.groups`) })
	}
	wg.Wait()
	for _, w := range got {
		g.Expect(w).To(BeIdenticalTo(got[0]))
	}
}

// TestNativeRuleBuildsItsProgramOnFirstUse: a rule evaluated in Go has no
// CEL program until CEL must evaluate it (no user), and then decides as
// Go does.
func TestNativeRuleBuildsItsProgramOnFirstUse(t *testing.T) {
	g := NewWithT(t)
	e, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	w := compileWhenIn(e, `request.path.startsWith("/static/")`)
	g.Expect(w.native).NotTo(BeNil())
	r := CompiledRule{Name: "assets", when: w, native: w.native}
	for _, path := range []string{"/static/app.css", "/admin"} {
		req := &Request{Path: path}
		inGo, err := r.Matches(&Vars{User: &User{}, Request: req})
		g.Expect(err).NotTo(HaveOccurred())
		inCEL, err := r.Matches(&Vars{Request: req})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(inCEL).To(Equal(inGo), path)
	}
}

// TestPrecompileCompilesEachTextOnce: after Precompile, compiling the
// policies compiles nothing more, and each text was compiled once.
func TestPrecompileCompilesEachTextOnce(t *testing.T) {
	g := NewWithT(t)
	var pols []v1alpha1.MFAPolicy
	for i := range 40 {
		p := v1alpha1.MFAPolicy{}
		p.Namespace, p.Name = "apps", fmt.Sprintf("p%d", i)
		p.Spec.Rules = []v1alpha1.Rule{
			{Name: "own", When: fmt.Sprintf(`request.path.startsWith("/precompile-%d/")`, i), Action: v1alpha1.ActionAllow},
			{Name: "common", When: `request.path.startsWith("/precompile-common/")`, Action: v1alpha1.ActionDeny},
		}
		pols = append(pols, p)
	}
	compiles := func() int {
		whens.mu.Lock()
		defer whens.mu.Unlock()
		return whens.compiles
	}
	before := compiles()
	Precompile(pols)
	g.Expect(compiles() - before).To(Equal(41))
	for i := range pols {
		_, err := CompilePolicy(pols[i].Namespace, pols[i].Name, &pols[i].Spec)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(compiles() - before).To(Equal(41))
}
