package policy

import (
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// CEL names of the native types, as ext.NativeTypes derives them.
const (
	userTypeName    = "policy.User"
	requestTypeName = "policy.Request"
	geoTypeName     = "policy.Geo"
)

// directFields is the environment option, placed after ext.NativeTypes,
// that makes `user.x` and `request.x` read the Go field directly.
//
// ext.NativeTypes reads a field through reflection on every evaluation and
// then adapts the copy it got, again through reflection (a list of groups
// becomes a reflective list, each element read is another copy). Here the
// type-checker still gets every declaration from ext.NativeTypes; only the
// planned field reads change: they return CEL values that read the request
// in place. Zero values and has() answer as the reflective reads did.
func directFields() cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		geoAdapter = e.CELTypeAdapter()
		return cel.CustomTypeProvider(&fieldProvider{Provider: e.CELTypeProvider()})(e)
	}
}

// fieldProvider is the native types' provider with direct field reads for
// User and Request.
type fieldProvider struct {
	types.Provider
}

// directField reads one field of a *User or a *Request.
type directField[T any] struct {
	get   func(*T) ref.Val
	isSet func(*T) bool
	// str reads a string field as Go text (nil for the other fields); the
	// rules evaluated in Go (nativeWhen) read through it.
	str func(*T) string
	// flag reads a bool field as Go (nil for the other fields), for the
	// rules evaluated in Go.
	flag func(*T) bool
}

// boolField is the direct read of a bool field.
func boolField[T any](flag func(*T) bool) directField[T] {
	return directField[T]{
		get:   func(t *T) ref.Val { return types.Bool(flag(t)) },
		isSet: flag,
		flag:  flag,
	}
}

// stringField is the direct read of a string field.
func stringField[T any](str func(*T) string) directField[T] {
	return directField[T]{
		get:   func(t *T) ref.Val { return types.String(str(t)) },
		isSet: func(t *T) bool { return str(t) != "" },
		str:   str,
	}
}

// FindStructFieldType implements types.Provider. The CEL type of a field
// is the native provider's; a field without a direct read (there is none
// today) keeps the reflective one.
func (p *fieldProvider) FindStructFieldType(typeName, fieldName string) (*types.FieldType, bool) {
	ft, ok := p.Provider.FindStructFieldType(typeName, fieldName)
	if !ok || ft.GetFrom == nil || ft.IsSet == nil {
		return ft, ok
	}
	switch typeName {
	case userTypeName:
		if f, found := userFields[fieldName]; found {
			return withDirectField(ft, f), true
		}
	case requestTypeName:
		if f, found := requestFields[fieldName]; found {
			return withDirectField(ft, f), true
		}
	case geoTypeName:
		if f, found := geoFields[fieldName]; found {
			return withDirectField(ft, f), true
		}
	}
	return ft, true
}

// withDirectField returns ft reading through f. CEL passes the variable as
// the activation holds it (a *User from Vars, a User or *User from other
// activations or object literals); anything else, a nil pointer included,
// goes to the reflective read so that it fails as it always did.
func withDirectField[T any](ft *types.FieldType, f directField[T]) *types.FieldType {
	reflective := *ft
	return &types.FieldType{
		Type: ft.Type,
		IsSet: func(obj any) bool {
			switch o := obj.(type) {
			case *T:
				if o != nil {
					return f.isSet(o)
				}
			case T:
				return f.isSet(&o)
			}
			return reflective.IsSet(obj)
		},
		GetFrom: func(obj any) (any, error) {
			switch o := obj.(type) {
			case *T:
				if o != nil {
					return f.get(o), nil
				}
			case T:
				return f.get(&o), nil
			}
			return reflective.GetFrom(obj)
		},
	}
}

// userFields are the direct reads of User's fields, by CEL name.
var userFields = map[string]directField[User]{
	"id":     stringField(func(u *User) string { return u.ID }),
	"email":  stringField(func(u *User) string { return u.Email }),
	"name":   stringField(func(u *User) string { return u.Name }),
	"groups": {get: func(u *User) ref.Val { return (*stringList)(&u.Groups) }, isSet: func(u *User) bool { return u.Groups != nil }},
	"claims": {get: func(u *User) ref.Val { return &u.Claims }, isSet: func(u *User) bool { return u.Claims.m != nil }},
}

// requestFields are the direct reads of Request's fields, by CEL name.
var requestFields = map[string]directField[Request]{
	"host":        stringField(func(r *Request) string { return r.Host }),
	"path":        stringField(func(r *Request) string { return r.Path }),
	"method":      stringField(func(r *Request) string { return r.Method }),
	"scheme":      stringField(func(r *Request) string { return r.Scheme }),
	"url":         stringField(func(r *Request) string { return r.URL }),
	"headers":     {get: func(r *Request) ref.Val { return stringMap(r.Headers) }, isSet: func(r *Request) bool { return r.Headers != nil }},
	"query":       {get: func(r *Request) ref.Val { return stringListMap(r.Query) }, isSet: func(r *Request) bool { return r.Query != nil }},
	"ip":          stringField(func(r *Request) string { return r.IP }),
	"time":        {get: requestTime, isSet: func(r *Request) bool { return r.Time != (time.Time{}) }},
	"interactive": boolField(func(r *Request) bool { return r.Interactive }),
	"geo":         {get: func(r *Request) ref.Val { return geoAdapter.NativeToValue(r.Geo) }, isSet: func(r *Request) bool { return r.Geo != (Geo{}) }},
}

// geoAdapter is the native types' adapter of the environment (set by
// directFields, which Env runs once): request.geo is a CEL object of
// type policy.Geo, as ext.NativeTypes makes it.
var geoAdapter types.Adapter = types.DefaultTypeAdapter

// geoFields are the direct reads of Geo's fields, by CEL name.
var geoFields = map[string]directField[Geo]{
	"country": stringField(func(g *Geo) string { return g.Country }),
	"asn":     {get: func(g *Geo) ref.Val { return types.Int(g.ASN) }, isSet: func(g *Geo) bool { return g.ASN != 0 }},
}

// zeroTime is what an unset request.time reads as: the Unix epoch, as with
// ext.NativeTypes.
var zeroTime ref.Val = types.Timestamp{Time: time.Unix(0, 0)}

func requestTime(r *Request) ref.Val {
	// A struct comparison, as reflect.Value.IsZero does: a zero instant
	// with a location is set.
	if r.Time == (time.Time{}) {
		return zeroTime
	}
	return types.Timestamp{Time: r.Time}
}
