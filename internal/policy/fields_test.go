package policy

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	. "github.com/onsi/gomega"
	"k8s.io/apiserver/pkg/cel/library"

	"github.com/mfa-operator/mfa-operator/api/v1alpha1"
)

// reflectiveEnv is the environment without direct field reads: every field
// is read by ext.NativeTypes through reflection.
func reflectiveEnv(t *testing.T) *cel.Env {
	t.Helper()
	e, err := newEnv()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// program compiles expr, of any type, in e.
func program(e *cel.Env, expr string, opts ...cel.ProgramOption) (cel.Program, error) {
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	return e.Program(ast, opts...)
}

// fieldInputs are the variables the direct reads are compared on.
func fieldInputs() map[string]any {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	full := benchVars()
	return map[string]any{
		"full": full,
		"zero": &Vars{User: &User{}, Request: &Request{}},
		"empty but set": &Vars{
			User:    &User{Groups: []string{}, Claims: NewClaims(map[string]any{})},
			Request: &Request{Headers: map[string]string{}, Query: map[string][]string{}, Time: time.Time{}.In(paris)},
		},
		"values in a map":   map[string]any{"user": *full.User, "request": *full.Request},
		"pointers in a map": map[string]any{"user": full.User, "request": full.Request},
		"nil user":          &Vars{Request: full.Request},
	}
}

// fieldExprs read every field of User and Request in the ways a rule can.
var fieldExprs = []string{
	// Strings.
	`user.id`, `user.email`, `user.name`,
	`request.host`, `request.path`, `request.method`, `request.scheme`, `request.url`, `request.ip`,
	`has(user.id)`, `has(user.email)`, `has(user.name)`,
	`has(request.host)`, `has(request.path)`, `has(request.method)`, `has(request.scheme)`, `has(request.url)`, `has(request.ip)`,
	`user.?id.orValue("none")`, `request.?path.hasValue()`,
	`request.path.startsWith("/reports")`, `user.email.lowerAscii().endsWith("@example.com")`,
	`size(request.url)`, `request.path + "/" + request.method`,

	// user.groups: list(string).
	`user.groups`, `has(user.groups)`, `user.?groups.hasValue()`, `type(user.groups) == list`,
	`size(user.groups)`, `user.groups.size()`,
	`"ops" in user.groups`, `"admins" in user.groups`, `!("contractors" in user.groups)`,
	`dyn(1) in dyn(user.groups)`,
	`user.groups[0]`, `user.groups[1]`, `user.groups[5]`, `user.groups[-1]`,
	`dyn(user.groups)[dyn(1u)]`, `dyn(user.groups)[dyn(1.0)]`, `dyn(user.groups)[dyn(1.5)]`, `dyn(user.groups)["a"]`,
	`user.groups[?0].orValue("none")`, `user.groups[?7].orValue("none")`,
	`user.groups.exists(g, g.startsWith("o"))`, `user.groups.all(g, g != "")`, `user.groups.exists_one(g, g == "ops")`,
	`user.groups.map(g, g + "!")`, `user.groups.filter(g, g == "ops")`,
	`user.groups == ["staff", "ops"]`, `["staff", "ops"] == user.groups`, `user.groups == []`, `user.groups != dyn(["ops"])`,
	`user.groups + ["x"]`, `["x"] + user.groups`, `(user.groups + user.groups).size()`, `user.groups + user.groups == user.groups + user.groups`,
	`user.groups.isSorted()`, `user.groups.indexOf("ops")`, `user.groups.lastIndexOf("staff")`, `user.groups.min()`,
	`sets.contains(user.groups, ["ops"])`, `sets.intersects(["ops", "x"], user.groups)`, `sets.equivalent(user.groups, ["ops", "staff"])`,
	`user.groups.join(",")`, `"%s".format([user.groups])`,

	// user.claims: map(string, dyn).
	`user.claims`, `has(user.claims)`, `size(user.claims)`, `user.claims.amr`, `user.claims["amr"][0]`,
	`"pwd" in user.claims.amr`, `"amr" in user.claims`, `has(user.claims.amr)`, `has(user.claims.absent)`,
	`user.claims.absent`, `user.claims[?"absent"].orValue("none")`, `user.claims == {}`, `user.claims.exists(k, k == "amr")`,

	// request.headers: map(string, string).
	`request.headers`, `has(request.headers)`, `size(request.headers)`, `type(request.headers) == map`,
	`request.headers["user-agent"]`, `request.headers.accept`, `request.headers["absent"]`, `request.headers["absent"] == "x"`,
	`has(request.headers.accept)`, `has(request.headers.absent)`, `"accept" in request.headers`, `"absent" in request.headers`,
	`request.headers[?"accept"].orValue("none")`, `request.headers[?"absent"].orValue("none")`,
	`request.headers.exists(k, k == "accept")`, `request.headers.all(k, request.headers[k] != "")`,
	`request.headers.filter(k, k == "accept")`, `request.headers.exists_one(k, k.startsWith("a"))`,
	`request.headers == {"user-agent": "Mozilla/5.0", "accept": "text/html"}`, `{"accept": "text/html"} == request.headers`,
	`request.headers == {}`, `dyn(request.headers)[1]`, `dyn(1) in dyn(request.headers)`, `dyn(request.headers)[ip("10.1.2.3")]`,
	`"%s".format([request.headers])`,

	// request.query: map(string, list(string)).
	`request.query`, `has(request.query)`, `size(request.query)`,
	`request.query["page"]`, `request.query["page"][0]`, `request.query.page[1]`, `request.query["absent"]`,
	`"2" in request.query["page"]`, `size(request.query["page"])`, `has(request.query.page)`, `has(request.query.absent)`,
	`request.query[?"page"].orValue([])`, `request.query[?"absent"].orValue([])`,
	`request.query.exists(k, k == "page")`, `request.query.all(k, request.query[k].all(v, v != ""))`,
	`request.query == {"page": ["2"]}`, `{"page": ["2"]} == request.query`, `request.query["page"] == ["2"]`,

	// request.time: timestamp.
	`request.time`, `has(request.time)`, `request.?time.hasValue()`, `request.time == timestamp(0)`,
	`request.time.getHours()`, `request.time.getHours("Europe/Paris")`, `request.time.getDayOfWeek("Europe/Paris")`,
	`string(request.time)`, `request.time > timestamp("2026-01-01T00:00:00Z")`,

	// request.interactive: bool.
	`request.interactive`, `has(request.interactive)`, `!request.interactive`, `request.interactive == true`,
	`request.?interactive.orValue(false)`, `type(request.interactive) == bool`, `string(request.interactive)`,

	// Network functions over fields.
	`cidr("10.0.0.0/8").containsIP(ip(request.ip))`, `cidr("10.0.0.0/8").containsIP(request.ip)`,
	`ip(request.ip).family()`, `ip(request.headers["absent"])`, `cidr("nonsense").containsIP(ip(request.ip))`,
	`cidr(request.ip + "/32").prefixLength()`,

	// Object literals and the variables themselves.
	`policy.User{id: "x"}.id`, `policy.User{groups: ["a"]}.groups`, `has(policy.User{}.groups)`,
	`policy.Request{headers: {"a": "b"}}.headers["a"]`, `policy.Request{}.time`,
	`type(user) == policy.User`, `type(request) == policy.Request`,
}

// Direct reads answer exactly as the reflective ones: same values, same
// errors, for set, zero and empty fields, through every activation.
func TestDirectFieldsReadAsNativeTypes(t *testing.T) {
	direct, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	reflective := reflectiveEnv(t)
	for name, input := range fieldInputs() {
		for _, expr := range fieldExprs {
			t.Run(name+"/"+expr, func(t *testing.T) {
				g := NewWithT(t)
				refPrg, err := program(reflective, expr, cel.EvalOptions(cel.OptOptimize), constantZones())
				g.Expect(err).NotTo(HaveOccurred())
				prg, err := program(direct, expr, programOptions(0)...)
				g.Expect(err).NotTo(HaveOccurred())
				want, _, wantErr := refPrg.Eval(input)
				got, _, gotErr := prg.Eval(input)
				if wantErr != nil {
					g.Expect(gotErr).To(MatchError(wantErr.Error()))
					return
				}
				g.Expect(gotErr).NotTo(HaveOccurred())
				expectSameValue(g, got, want)
			})
		}
	}
}

func expectSameValue(g *WithT, got, want ref.Val) {
	g.Expect(got.Type().TypeName()).To(Equal(want.Type().TypeName()))
	g.Expect(types.Format(got)).To(Equal(types.Format(want)))
	g.Expect(got.Equal(want)).To(Equal(types.True))
	g.Expect(want.Equal(got)).To(Equal(types.True))
	for _, native := range []reflect.Type{reflect.TypeFor[any](), reflect.TypeFor[string](), reflect.TypeFor[[]string](), reflect.TypeFor[map[string]string]()} {
		gotN, gotErr := got.ConvertToNative(native)
		wantN, wantErr := want.ConvertToNative(native)
		if wantErr != nil {
			g.Expect(gotErr).To(MatchError(wantErr.Error()))
			continue
		}
		g.Expect(gotErr).NotTo(HaveOccurred())
		g.Expect(gotN).To(Equal(wantN))
	}
}

// The runtime cost of an expression whose cost is tracked is the same with
// direct reads: sizes of lists, maps and strings are seen as before.
func TestDirectFieldsKeepRuntimeCost(t *testing.T) {
	direct, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	reflective := reflectiveEnv(t)
	tracked := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize), constantZones(),
		cel.CostTracking(&library.CostEstimator{}), cel.CostLimit(MaxRuntimeCost)}
	exprs := []string{
		`user.groups.exists(g, g.matches("^o"))`,
		`"ops" in user.groups`,
		`user.groups.join(",").size() > 3`,
		`request.headers.all(k, request.headers[k].size() < 100)`,
		`request.query.exists(k, request.query[k].exists(v, v.contains("2")))`,
		`request.path.matches("^/rep") && request.url.contains("page")`,
		`"pwd" in user.claims.amr`,
	}
	for _, expr := range exprs {
		t.Run(expr, func(t *testing.T) {
			g := NewWithT(t)
			refPrg, err := program(reflective, expr, tracked...)
			g.Expect(err).NotTo(HaveOccurred())
			prg, err := program(direct, expr, programOptions(MaxRuntimeCost)...)
			g.Expect(err).NotTo(HaveOccurred())
			_, want, err := refPrg.Eval(benchVars())
			g.Expect(err).NotTo(HaveOccurred())
			_, got, err := prg.Eval(benchVars())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.ActualCost()).NotTo(BeNil())
			g.Expect(*got.ActualCost()).To(Equal(*want.ActualCost()))
		})
	}
}

// Every field of User and Request is read directly, under its CEL name.
func TestEveryFieldIsReadDirectly(t *testing.T) {
	tests := []struct {
		typ    reflect.Type
		fields map[string]bool
	}{
		{reflect.TypeFor[User](), keysOf(userFields)},
		{reflect.TypeFor[Request](), keysOf(requestFields)},
		{reflect.TypeFor[Geo](), keysOf(geoFields)},
	}
	for _, tt := range tests {
		t.Run(tt.typ.Name(), func(t *testing.T) {
			g := NewWithT(t)
			var tags []string
			for f := range tt.typ.Fields() {
				tags = append(tags, f.Tag.Get("cel"))
			}
			g.Expect(tt.fields).To(HaveLen(len(tags)))
			for _, tag := range tags {
				g.Expect(tt.fields).To(HaveKey(tag))
			}
		})
	}
}

func keysOf[V any](m map[string]V) map[string]bool {
	keys := make(map[string]bool, len(m))
	for k := range m {
		keys[k] = true
	}
	return keys
}

// What rules read, through Compile and Eval as the server runs them.
func TestFieldReads(t *testing.T) {
	full := benchVars()
	zero := &Vars{User: &User{}, Request: &Request{}}
	tests := []struct {
		name, expr string
		vars       *Vars
		want       bool
		err        string // when set, evaluation fails with this message
	}{
		{"string", `user.id == "ana" && user.email == "ana@example.com" && user.name == "Ana"`, full, true, ""},
		{"request strings", `request.host == "app.example.com" && request.method == "GET" && request.scheme == "https" && request.ip == "10.1.2.3"`, full, true, ""},
		{"zero string", `user.id == "" && request.path == ""`, zero, true, ""},
		{"has string", `has(user.id) && has(request.url)`, full, true, ""},
		{"has zero string", `has(user.id) || has(request.url)`, zero, false, ""},
		{"in groups", `"ops" in user.groups`, full, true, ""},
		{"not in groups", `"admins" in user.groups`, full, false, ""},
		{"groups exists", `user.groups.exists(g, g == "staff")`, full, true, ""},
		{"groups size", `size(user.groups) == 2 && user.groups.size() == 2`, full, true, ""},
		{"zero groups", `size(user.groups) == 0 && !("ops" in user.groups) && !user.groups.exists(g, true)`, zero, true, ""},
		{"has zero groups", `has(user.groups)`, zero, false, ""},
		{"group out of range", `user.groups[2] == "x"`, full, false, "index out of bounds: 2"},
		{"claims", `"pwd" in user.claims.amr`, full, true, ""},
		{"absent claim", `user.claims.acr == "mfa"`, full, false, "no such key: acr"},
		{"zero claims", `size(user.claims) == 0 && !has(user.claims)`, zero, true, ""},
		{"header", `request.headers["user-agent"].startsWith("Mozilla/")`, full, true, ""},
		{"absent header", `request.headers["x-absent"] == "x"`, full, false, "no such key: x-absent"},
		{"absent header in nil map", `request.headers["x-absent"] == "x"`, zero, false, "no such key: x-absent"},
		{"has header", `has(request.headers.accept) && !has(request.headers.absent)`, full, true, ""},
		{"header key in", `"accept" in request.headers`, full, true, ""},
		{"query", `request.query["page"][0] == "2" && "2" in request.query.page`, full, true, ""},
		{"absent query", `request.query["absent"][0] == "2"`, full, false, "no such key: absent"},
		{"query value out of range", `request.query["page"][1] == "2"`, full, false, "index out of bounds: 1"},
		{"time", `request.time == timestamp("2026-11-27T09:30:00Z")`, full, true, ""},
		{"zero time", `request.time == timestamp(0) && !has(request.time)`, zero, true, ""},
		{"cidr", `cidr("10.0.0.0/8").containsIP(ip(request.ip))`, full, true, ""},
		{"bad cidr constant", `cidr("10.0.0.0/33").containsIP(ip(request.ip))`, full, false, "network address parse error"},
		{"ip of an empty field", `ip(request.ip).family() == 4`, zero, false, "IP Address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			prg, err := Compile(tt.expr)
			g.Expect(err).NotTo(HaveOccurred())
			got, err := Eval(prg, tt.vars)
			if tt.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

// A rule that fails to evaluate makes Decide fail, naming the rule.
func TestDecideFailsOnAnAbsentHeader(t *testing.T) {
	g := NewWithT(t)
	p, err := CompilePolicy("apps", "p", &v1alpha1.MFAPolicySpec{Rules: []v1alpha1.Rule{
		{Name: "env", When: `request.headers["x-env"] == "prod"`, Action: v1alpha1.ActionDeny},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	r, err := p.Decide(benchVars())
	g.Expect(err).To(MatchError(`rule "env": no such key: x-env`))
	g.Expect(r.Name).To(Equal("env"))
}

// cidr() and ip() of a constant are computed when the rule is compiled;
// of a field, or of a constant that does not parse, on evaluation.
func TestConstantParsersRunWhenCompiling(t *testing.T) {
	tests := []struct {
		expr   string
		parsed []string // types of the values parsed when compiling
	}{
		{`cidr("10.0.0.0/8").containsIP(ip(request.ip))`, []string{"net.CIDR"}},
		{`cidr("10.0.0.0/8").containsIP(ip("10.1.2.3"))`, []string{"net.CIDR", "net.IP"}},
		{`ip(request.ip).family() == 4`, nil},
		{`cidr("10.0.0.0/33").containsIP(ip(request.ip))`, nil},
		{`{"10.0.0.0/8": 1}[string(cidr("10.0.0.0/8"))] == 1`, []string{"net.CIDR"}},
	}
	e, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			g := NewWithT(t)
			var parsed []string
			record := cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
				if c, ok := i.(*parsedConstant); ok {
					parsed = append(parsed, c.val.Type().TypeName())
				}
				return i, nil
			})
			_, err := program(e, tt.expr, append(programOptions(0), record)...)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(parsed).To(Equal(tt.parsed))
		})
	}
}

func TestConstantParsersAnswerAsEvaluation(t *testing.T) {
	exprs := []string{
		`cidr("10.0.0.0/8").containsIP(ip(request.ip))`,
		`cidr("192.168.0.0/16").containsIP(ip(request.ip))`,
		`cidr("2001:db8::/32").containsIP(ip("2001:db8::1"))`,
		`cidr("10.0.0.0/8") == cidr("10.0.0.0/8")`,
		`string(cidr("10.0.0.0/8").masked())`,
		`ip("10.1.2.3") == ip(request.ip)`,
		`cidr("10.0.0.0/33").containsIP(ip(request.ip))`,
		`ip("10.1.2.3.4").family()`,
		`ip("::ffff:10.1.2.3").family()`,
		`dyn({"a": 1})[cidr("10.0.0.0/8")] == 1`,
		`[cidr("10.0.0.0/8"), cidr("10.0.0.0/8")].size() == 2`,
		`cidr("10.0.0.0/8") in [cidr("10.0.0.0/8")]`,
	}
	e, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range exprs {
		t.Run(expr, func(t *testing.T) {
			g := NewWithT(t)
			folded, err := program(e, expr, programOptions(0)...)
			g.Expect(err).NotTo(HaveOccurred())
			evaluated, err := program(e, expr, cel.EvalOptions(cel.OptOptimize))
			g.Expect(err).NotTo(HaveOccurred())
			want, _, wantErr := evaluated.Eval(benchVars())
			got, _, gotErr := folded.Eval(benchVars())
			if wantErr != nil {
				g.Expect(gotErr).To(MatchError(wantErr.Error()))
				return
			}
			g.Expect(gotErr).NotTo(HaveOccurred())
			g.Expect(got.Equal(want)).To(Equal(types.True), "got %v, want %v", got, want)
		})
	}
}
