package webhook

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/mfa-operator/mfa-operator/internal/source"
)

// manyPoliciesYAML is n policies shaped as make bench's (a path prefix, a
// network, then RequireMFA for everyone else), 1,000 a file as the config
// directory takes them. With distinct, no two policies share a rule's text.
func manyPoliciesYAML(n int, distinct bool) []string {
	var files []string
	var b strings.Builder
	for i := range n {
		prefix, cidr, last := "/static/", "10.0.0.0/8", "true"
		if distinct {
			prefix = fmt.Sprintf("/static-%d/", i)
			cidr = fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256)
			last = fmt.Sprintf(`request.host != "unused-%d.invalid"`, i)
		}
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, `apiVersion: mfa.operator.dev/v1alpha1
kind: MFAPolicy
metadata: { name: policy-%05d, namespace: apps }
spec:
  hosts: [p%05d.example.com]
  identity: { header: { user: X-Auth-Request-Email, groups: X-Auth-Request-Groups } }
  rules:
  - { name: public-assets, when: 'request.path.startsWith("%s")', action: Allow }
  - { name: office-network, when: 'cidr("%s").containsIP(ip(request.ip))', action: Allow }
  - name: everyone-else
    when: '%s'
    action: RequireMFA
    multifactor: { providers: [google-authenticator], rememberFor: 12h }
  default: Allow
`, i, i, prefix, cidr, last)
		if (i+1)%1000 == 0 || i == n-1 {
			files = append(files, b.String())
			b.Reset()
		}
	}
	return files
}

// BenchmarkStandaloneLoad loads n policies from a config directory, as a
// standalone server starts, and reports the heap the configuration keeps
// per policy (heapB/policy). With MFA_HEAP_PROFILE=DIR set, it writes the
// heap profile of the loaded server to DIR/heap-<case>.pprof.
func BenchmarkStandaloneLoad(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, distinct := range []bool{false, true} {
			name := fmt.Sprintf("policies=%d/shared", n)
			if distinct {
				name = fmt.Sprintf("policies=%d/distinct", n)
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				for i, doc := range manyPoliciesYAML(n, distinct) {
					writeFile(b, filepath.Join(dir, fmt.Sprintf("policies-%03d.yaml", i)), doc)
				}
				writeFile(b, filepath.Join(dir, "providers.yaml"), coreProvidersYAML)
				var perPolicy float64
				for b.Loop() {
					f := newCoreServer(b, "", func(o *Options) {
						o.Source = &source.Dir{ConfigDir: dir, DataDir: b.TempDir(), Now: o.Now, Log: o.Logger}
					})
					before := heapInUse()
					reloadConfigDir(f.s)
					if got := len(f.s.config.snapshot().Policies); got != n {
						b.Fatalf("%d policies in force, want %d", got, n)
					}
					perPolicy = float64(heapInUse()-before) / float64(n)
					if out := os.Getenv("MFA_HEAP_PROFILE"); out != "" {
						writeHeapProfile(b, filepath.Join(out, "heap-"+strings.ReplaceAll(name, "/", "-")+".pprof"))
					}
					runtime.KeepAlive(f)
				}
				b.ReportMetric(perPolicy, "heapB/policy")
			})
		}
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func writeHeapProfile(b *testing.B, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
