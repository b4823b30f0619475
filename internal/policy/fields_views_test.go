package policy

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	. "github.com/onsi/gomega"
)

// The list and map fields of User and Request: read in place, through
// views that answer as CEL's reflective values.

// Lists and maps are read in place: the CEL value of user.groups is the
// Go slice of the User, not a copy, and so for every list or map field.
func TestListsAndMapsAreReadInPlace(t *testing.T) {
	e, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	vars := benchVars()
	read := func(typeName, field string, obj any) any {
		ft, found := e.CELTypeProvider().FindStructFieldType(typeName, field)
		if !found {
			t.Fatalf("%s.%s not found", typeName, field)
		}
		v, err := ft.GetFrom(obj)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	g := NewWithT(t)
	groups := read(userTypeName, "groups", vars.User)
	g.Expect(groups).To(BeAssignableToTypeOf(&stringList{}))
	g.Expect(groups.(*stringList)).To(BeIdenticalTo((*stringList)(&vars.User.Groups)))
	claims := read(userTypeName, "claims", vars.User)
	g.Expect(claims).To(BeIdenticalTo(&vars.User.Claims))
	headers := read(requestTypeName, "headers", vars.Request)
	g.Expect(reflect.ValueOf(headers).UnsafePointer()).To(Equal(reflect.ValueOf(vars.Request.Headers).UnsafePointer()))
	query := read(requestTypeName, "query", vars.Request)
	g.Expect(reflect.ValueOf(query).UnsafePointer()).To(Equal(reflect.ValueOf(vars.Request.Query).UnsafePointer()))
}

// The list and map views answer every call as CEL's reflective list and
// map over the same Go value, including the calls no qualifier makes.
func TestViewsAnswerAsReflectiveValues(t *testing.T) {
	args := []ref.Val{
		types.Int(0), types.Int(1), types.Int(2), types.Int(-1), types.Uint(1), types.Double(1), types.Double(0.5),
		types.String("ops"), types.String("page"), types.String("accept"), types.String("absent"), types.String(""),
		types.True, types.NullValue, types.NewStringList(types.DefaultTypeAdapter, []string{"staff", "ops"}),
	}
	vars := benchVars()
	groups := []string{"staff", "ops"}
	tests := []struct {
		name       string
		view, want ref.Val
	}{
		{"list", (*stringList)(&groups), types.NewDynamicList(types.DefaultTypeAdapter, groups)},
		{"empty list", new(stringList), types.NewDynamicList(types.DefaultTypeAdapter, []string(nil))},
		{"headers", stringMap(vars.Request.Headers), types.NewDynamicMap(types.DefaultTypeAdapter, vars.Request.Headers)},
		{"nil headers", stringMap(nil), types.NewDynamicMap(types.DefaultTypeAdapter, map[string]string(nil))},
		{"query", stringListMap(vars.Request.Query), types.NewDynamicMap(types.DefaultTypeAdapter, vars.Request.Query)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.view.Type()).To(Equal(tt.want.Type()))
			g.Expect(tt.view.Value()).To(Equal(tt.want.Value()))
			g.Expect(tt.view.(traits.Sizer).Size()).To(Equal(tt.want.(traits.Sizer).Size()))
			g.Expect(tt.view.(traits.Zeroer).IsZeroValue()).To(Equal(tt.want.(traits.Zeroer).IsZeroValue()))
			if _, isMap := tt.view.(traits.Mapper); !isMap { // a map's String follows Go's random order
				g.Expect(tt.view.(fmt.Stringer).String()).To(Equal(tt.want.(fmt.Stringer).String()))
			}
			for _, typ := range []ref.Type{types.ListType, types.MapType, types.TypeType, types.StringType} {
				expectSameVal(g, tt.view.ConvertToType(typ), tt.want.ConvertToType(typ))
			}
			for _, arg := range args {
				expectSameVal(g, tt.view.(traits.Indexer).Get(arg), tt.want.(traits.Indexer).Get(arg))
				expectSameVal(g, tt.view.(traits.Container).Contains(arg), tt.want.(traits.Container).Contains(arg))
				expectSameVal(g, tt.view.Equal(arg), tt.want.Equal(arg))
				if m, ok := tt.view.(traits.Mapper); ok {
					got, gotFound := m.Find(arg)
					want, wantFound := tt.want.(traits.Mapper).Find(arg)
					g.Expect(gotFound).To(Equal(wantFound), "Find(%v)", arg)
					if wantFound {
						expectSameVal(g, got, want)
					}
				}
				if l, ok := tt.view.(traits.Adder); ok {
					expectSameVal(g, l.Add(arg), tt.want.(traits.Adder).Add(arg))
				}
			}
			g.Expect(iterated(tt.view)).To(ConsistOf(iterated(tt.want)))
			g.Expect(folded(tt.view)).To(ConsistOf(folded(tt.want)))
		})
	}
}

func expectSameVal(g *WithT, got, want ref.Val) {
	if types.IsError(want) {
		g.Expect(types.IsError(got)).To(BeTrue(), "got %v, want the error %v", got, want)
		g.Expect(got.(*types.Err).String()).To(Equal(want.(*types.Err).String()))
		return
	}
	g.Expect(got.Type()).To(Equal(want.Type()))
	g.Expect(types.Format(got)).To(Equal(types.Format(want)))
	g.Expect(got.Equal(want)).To(Equal(types.True), "got %v, want %v", got, want)
}

func iterated(v ref.Val) []string {
	var out []string
	it := v.(traits.Iterable).Iterator()
	for it.HasNext() == types.True {
		out = append(out, types.Format(it.Next()))
	}
	if it.Next() != nil {
		out = append(out, "a value past the end")
	}
	return out
}

type entries []string

func (e *entries) FoldEntry(k, v any) bool {
	*e = append(*e, fmt.Sprintf("%v=%v", k, v))
	return true
}

func folded(v ref.Val) []string {
	var e entries
	v.(traits.Foldable).Fold(&e)
	return e
}
