package policy_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/mfa-operator/mfa-operator/internal/policy/policytest"
)

// BenchmarkSplit10000 stores 10,000 policies: shaped alike (as the
// benchmark's), and each with 64 random hex digits in a rule (what
// compression cannot shrink). It reports the bytes stored, the largest
// shard and the shards.
func BenchmarkSplit10000(b *testing.B) {
	for _, c := range []struct {
		name   string
		random bool
	}{{"alike", false}, {"random-literal", true}} {
		b.Run(c.name, func(b *testing.B) {
			bundle := policytest.Bundle(10000)
			if c.random {
				for i := range bundle.Policies {
					buf := make([]byte, 32)
					_, _ = rand.Read(buf)
					bundle.Policies[i].Spec.Rules[1].When = `request.path.startsWith("/` + hex.EncodeToString(buf) + `")`
				}
			}
			var stored, largest, shards int
			for b.Loop() {
				st, err := bundle.Split(0)
				if err != nil {
					b.Fatal(err)
				}
				stored, largest, shards = 0, 0, len(st.Shards)
				for i := range st.Shards {
					data, err := st.Shards[i].Compressed()
					if err != nil {
						b.Fatal(err)
					}
					stored, largest = stored+len(data), max(largest, len(data))
				}
			}
			b.ReportMetric(float64(stored), "stored-bytes")
			b.ReportMetric(float64(largest), "largest-shard-bytes")
			b.ReportMetric(float64(shards), "shards")
		})
	}
}
