package policy

import (
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// CEL's timestamp accessors with a time zone name (getHours("Europe/Paris"))
// load the zone from the system's zoneinfo on every evaluation: file reads
// on the /auth hot path. When the zone is a constant, as it is in rules,
// these calls are planned with the zone loaded once. A zone that does not
// load, or one given as an expression, keeps CEL's own implementation, so
// errors and semantics are CEL's.
var zoneAccessors = map[string]func(time.Time) ref.Val{
	overloads.TimestampToYearWithTz:                func(t time.Time) ref.Val { return types.Int(t.Year()) },
	overloads.TimestampToMonthWithTz:               func(t time.Time) ref.Val { return types.Int(t.Month() - 1) },
	overloads.TimestampToDayOfYearWithTz:           func(t time.Time) ref.Val { return types.Int(t.YearDay() - 1) },
	overloads.TimestampToDayOfMonthZeroBasedWithTz: func(t time.Time) ref.Val { return types.Int(t.Day() - 1) },
	overloads.TimestampToDayOfMonthOneBasedWithTz:  func(t time.Time) ref.Val { return types.Int(t.Day()) },
	overloads.TimestampToDayOfWeekWithTz:           func(t time.Time) ref.Val { return types.Int(t.Weekday()) },
	overloads.TimestampToHoursWithTz:               func(t time.Time) ref.Val { return types.Int(t.Hour()) },
	overloads.TimestampToMinutesWithTz:             func(t time.Time) ref.Val { return types.Int(t.Minute()) },
	overloads.TimestampToSecondsWithTz:             func(t time.Time) ref.Val { return types.Int(t.Second()) },
	overloads.TimestampToMillisecondsWithTz:        func(t time.Time) ref.Val { return types.Int(t.Nanosecond() / 1e6) },
}

// constantZones is the program option that plans constant-zone accessors.
func constantZones() cel.ProgramOption {
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok {
			return i, nil
		}
		get, ok := zoneAccessors[call.OverloadID()]
		if !ok {
			return i, nil
		}
		args := call.Args()
		if len(args) != 2 {
			return i, nil
		}
		c, ok := args[1].(interpreter.InterpretableConst)
		if !ok {
			return i, nil
		}
		name, ok := c.Value().(types.String)
		if !ok || strings.Contains(string(name), ":") {
			return i, nil // a numeric offset is cheap already
		}
		loc, err := time.LoadLocation(string(name))
		if err != nil {
			return i, nil
		}
		return &zoneCall{InterpretableCall: call, ts: args[0], loc: loc, get: get}, nil
	})
}

// zoneCall is a timestamp accessor with its zone loaded.
type zoneCall struct {
	interpreter.InterpretableCall
	ts  interpreter.InterpretableV2
	loc *time.Location
	get func(time.Time) ref.Val
}

func (c *zoneCall) Eval(a interpreter.Activation) ref.Val {
	if t, ok := c.ts.Eval(a).(types.Timestamp); ok {
		return c.get(t.Time.In(c.loc))
	}
	return c.InterpretableCall.Eval(a)
}

func (c *zoneCall) Exec(f *interpreter.ExecutionFrame) ref.Val {
	if t, ok := c.ts.Exec(f).(types.Timestamp); ok {
		return c.get(t.Time.In(c.loc))
	}
	return c.InterpretableCall.Exec(f)
}
