package policy

import (
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// Claims is `user.claims`, a map(string, dyn) of every claim of a JWT
// identity. It wraps a CEL map so that the native User type can carry it.
type Claims struct {
	m traits.Mapper
}

var claimsType = cel.MapType(cel.StringType, cel.DynType)

// NewClaims adapts decoded JSON claims.
func NewClaims(claims map[string]any) Claims {
	if claims == nil {
		return Claims{}
	}
	return Claims{m: types.DefaultTypeAdapter.NativeToValue(claims).(traits.Mapper)}
}

func (c Claims) mapper() traits.Mapper {
	if c.m == nil {
		return emptyClaims
	}
	return c.m
}

var emptyClaims = types.DefaultTypeAdapter.NativeToValue(map[string]any{}).(traits.Mapper)

// ConvertToNative implements ref.Val.
func (c Claims) ConvertToNative(t reflect.Type) (any, error) { return c.mapper().ConvertToNative(t) }

// ConvertToType implements ref.Val.
func (c Claims) ConvertToType(t ref.Type) ref.Val { return c.mapper().ConvertToType(t) }

// Equal implements ref.Val.
func (c Claims) Equal(other ref.Val) ref.Val { return c.mapper().Equal(other) }

// Type implements ref.Val.
func (c Claims) Type() ref.Type { return claimsType }

// Value implements ref.Val.
func (c Claims) Value() any { return c.mapper().Value() }

// Contains implements traits.Container.
func (c Claims) Contains(key ref.Val) ref.Val { return c.mapper().Contains(key) }

// Get implements traits.Indexer.
func (c Claims) Get(key ref.Val) ref.Val { return c.mapper().Get(key) }

// Find implements traits.Mapper.
func (c Claims) Find(key ref.Val) (ref.Val, bool) { return c.mapper().Find(key) }

// Iterator implements traits.Iterable.
func (c Claims) Iterator() traits.Iterator { return c.mapper().Iterator() }

// Size implements traits.Sizer.
func (c Claims) Size() ref.Val { return c.mapper().Size() }

var _ traits.Mapper = Claims{}
