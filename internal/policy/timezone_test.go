package policy

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// The constant-zone accessors must answer exactly as CEL's own, which still
// runs when the zone is not a constant.
func TestConstantZoneAccessorsMatchCEL(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 3, 29, 0, 59, 59, 999_000_000, time.UTC), // Paris switches to summer time at 01:00 UTC
		time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC),
	}
	accessors := []string{"getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds"}
	for _, zone := range []string{"Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"} {
		for _, acc := range accessors {
			t.Run(zone+"/"+acc, func(t *testing.T) {
				g := NewWithT(t)
				for _, ts := range times {
					vars := &Vars{User: &User{}, Request: &Request{Time: ts, Host: zone}}
					constant := mustEvalInt(g, fmt.Sprintf(`request.time.%s(%q)`, acc, zone), vars)
					dynamic := mustEvalInt(g, fmt.Sprintf(`request.time.%s(request.host)`, acc), vars)
					g.Expect(constant).To(Equal(dynamic), "at %s", ts)
				}
			})
		}
	}
}

func TestUnknownZoneFailsAtEvaluation(t *testing.T) {
	g := NewWithT(t)
	prg, err := Compile(`request.time.getHours("Mars/Olympus_Mons") == 1`)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Eval(prg, &Vars{User: &User{}, Request: &Request{Time: time.Now()}})
	g.Expect(err).To(HaveOccurred(), "an unknown zone is an evaluation error, so the caller fails closed")
}

func mustEvalInt(g Gomega, expr string, vars *Vars) int64 {
	e, err := Env()
	g.Expect(err).NotTo(HaveOccurred())
	ast, iss := e.Compile(expr)
	g.Expect(iss.Err()).NotTo(HaveOccurred())
	prg, err := e.Program(ast, constantZones())
	g.Expect(err).NotTo(HaveOccurred())
	out, _, err := prg.Eval(vars)
	g.Expect(err).NotTo(HaveOccurred())
	return out.Value().(int64)
}

func BenchmarkOfficeHoursRule(b *testing.B) {
	prg, err := Compile(`isIP(request.ip) && cidr("10.0.0.0/8").containsIP(ip(request.ip)) && request.time.getHours("Europe/Paris") in [8,9,10,11,12,13,14,15,16,17]`)
	if err != nil {
		b.Fatal(err)
	}
	vars := &Vars{User: &User{}, Request: &Request{IP: "10.1.2.3", Time: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := Eval(prg, vars); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
