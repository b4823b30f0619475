package harness

// Small helpers of the harness: the demo's settings, the repository root,
// free ports, names made safe for paths.

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func readSettings(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading the demo settings: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = unquoteSetting(v)
		}
	}
	return m
}

// unquoteSetting undoes the shell quoting of hack/demo.sh's env_line: the
// value between single quotes, each single quote inside it closed,
// escaped with a backslash and reopened.
func unquoteSetting(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`)
	}
	return v
}

// RepoRoot is the directory holding the module's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/mfa-operator/mfa-operator")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the repository root (go.mod of github.com/mfa-operator/mfa-operator)")
		}
		dir = parent
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
// It is picked below the kernel's ephemeral range, so that no outgoing
// connection takes it before the component that gets it listens there.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, _ := ephemeralRange()
	for range 1000 {
		p := 10000 + rand.IntN(lo-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

// ephemeralRange is the kernel's range of ports for outgoing connections.
func ephemeralRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && lo > 11000 {
				return lo, hi
			}
		}
	}
	return 32768, 60999
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sanitize(name string) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(name)
}
