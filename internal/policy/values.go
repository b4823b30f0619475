package policy

import (
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// CEL views of the Go slices and maps of User and Request. They read the Go
// value in place: nothing is copied when a field is read, and an element
// becomes a CEL value only when it is read.
//
// The frequent operations (size, index, `in`, key lookup, iteration) are
// answered here; the others (equality, concatenation, conversions, odd key
// or index types) go to CEL's own reflective list or map over the same Go
// value, so that they answer exactly as before.

// stringList is list(string). A pointer to it is a pointer to the Go slice,
// so reading `user.groups` allocates nothing.
type stringList []string

var (
	_ traits.Lister   = (*stringList)(nil)
	_ traits.Foldable = (*stringList)(nil)
	_ traits.Zeroer   = (*stringList)(nil)
)

func (l *stringList) dynamic() traits.Lister {
	return types.NewDynamicList(types.DefaultTypeAdapter, []string(*l))
}

// Add implements traits.Adder.
func (l *stringList) Add(other ref.Val) ref.Val { return l.dynamic().Add(other) }

// Contains implements traits.Container.
func (l *stringList) Contains(elem ref.Val) ref.Val {
	s, ok := elem.(types.String)
	if !ok {
		return l.dynamic().Contains(elem)
	}
	for _, e := range *l {
		if e == string(s) {
			return types.True
		}
	}
	return types.False
}

// ConvertToNative implements ref.Val.
func (l *stringList) ConvertToNative(t reflect.Type) (any, error) {
	return l.dynamic().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (l *stringList) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.ListType:
		return l
	case types.TypeType:
		return types.ListType
	}
	return l.dynamic().ConvertToType(t)
}

// Equal implements ref.Val.
func (l *stringList) Equal(other ref.Val) ref.Val { return l.dynamic().Equal(other) }

// Get implements traits.Indexer.
func (l *stringList) Get(index ref.Val) ref.Val {
	if i, ok := index.(types.Int); ok && i >= 0 && i < types.Int(len(*l)) {
		return types.String((*l)[i])
	}
	return l.dynamic().Get(index)
}

// IsZeroValue implements traits.Zeroer.
func (l *stringList) IsZeroValue() bool { return len(*l) == 0 }

// Fold implements traits.Foldable.
func (l *stringList) Fold(f traits.Folder) {
	for i, e := range *l {
		if !f.FoldEntry(i, e) {
			break
		}
	}
}

// Iterator implements traits.Iterable.
func (l *stringList) Iterator() traits.Iterator {
	return &stringsIterator{Val: celIterator, s: *l}
}

// Size implements traits.Sizer.
func (l *stringList) Size() ref.Val { return types.Int(len(*l)) }

// Type implements ref.Val.
func (l *stringList) Type() ref.Type { return types.ListType }

// Value implements ref.Val.
func (l *stringList) Value() any { return []string(*l) }

// String formats the list as CEL's lists do.
func (l *stringList) String() string { return stringOf(l.dynamic()) }

// stringsIterator iterates over strings: the elements of a list or the
// keys of a map.
type stringsIterator struct {
	ref.Val // what an iterator answers as a value: CEL's own
	s       []string
	i       int
}

// celIterator is a CEL iterator, for the ref.Val methods of iterators.
var celIterator = types.NewStringList(types.DefaultTypeAdapter, nil).Iterator()

// HasNext implements traits.Iterator.
func (it *stringsIterator) HasNext() ref.Val { return types.Bool(it.i < len(it.s)) }

// Next implements traits.Iterator.
func (it *stringsIterator) Next() ref.Val {
	if it.i >= len(it.s) {
		return nil
	}
	it.i++
	return types.String(it.s[it.i-1])
}

// mapView is a CEL map(string, V) over a Go map: the request headers
// (map(string, string)) and query (map(string, list(string))). A Go map is
// a pointer, so reading `request.headers` allocates nothing.
type mapView[V string | []string] map[string]V

type (
	stringMap     = mapView[string]
	stringListMap = mapView[[]string]
)

var (
	_ traits.Mapper   = stringMap(nil)
	_ traits.Foldable = stringMap(nil)
	_ traits.Zeroer   = stringMap(nil)
	_ traits.Mapper   = stringListMap(nil)
	_ traits.Foldable = stringListMap(nil)
	_ traits.Zeroer   = stringListMap(nil)
)

func (m mapView[V]) dynamic() traits.Mapper {
	return types.NewDynamicMap(types.DefaultTypeAdapter, map[string]V(m))
}

// elem is a value of the map as a CEL value.
func elem[V string | []string](v V) ref.Val {
	switch x := any(v).(type) {
	case string:
		return types.String(x)
	case []string:
		l := stringList(x)
		return &l
	}
	panic("unreachable")
}

// Contains implements traits.Container.
func (m mapView[V]) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

// ConvertToNative implements ref.Val.
func (m mapView[V]) ConvertToNative(t reflect.Type) (any, error) {
	return m.dynamic().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (m mapView[V]) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return m
	case types.TypeType:
		return types.MapType
	}
	return m.dynamic().ConvertToType(t)
}

// Equal implements ref.Val.
func (m mapView[V]) Equal(other ref.Val) ref.Val { return m.dynamic().Equal(other) }

// Find implements traits.Mapper.
func (m mapView[V]) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return m.dynamic().Find(key)
	}
	v, found := m[string(k)]
	if !found {
		return nil, false
	}
	return elem(v), true
}

// Fold implements traits.Foldable.
func (m mapView[V]) Fold(f traits.Folder) {
	for k, v := range m {
		if !f.FoldEntry(k, v) {
			break
		}
	}
}

// Get implements traits.Indexer.
func (m mapView[V]) Get(key ref.Val) ref.Val {
	if v, found := m.Find(key); found {
		return v
	}
	return m.dynamic().Get(key)
}

// IsZeroValue implements traits.Zeroer.
func (m mapView[V]) IsZeroValue() bool { return len(m) == 0 }

// Iterator implements traits.Iterable.
func (m mapView[V]) Iterator() traits.Iterator {
	return &stringsIterator{Val: celIterator, s: mapKeys(m)}
}

// Size implements traits.Sizer.
func (m mapView[V]) Size() ref.Val { return types.Int(len(m)) }

// Type implements ref.Val.
func (m mapView[V]) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (m mapView[V]) Value() any { return map[string]V(m) }

// String formats the map as CEL's maps do.
func (m mapView[V]) String() string { return stringOf(m.dynamic()) }

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// stringOf is the String method of CEL's own lists and maps.
func stringOf(v ref.Val) string {
	if s, ok := v.(interface{ String() string }); ok {
		return s.String()
	}
	return types.Format(v)
}
