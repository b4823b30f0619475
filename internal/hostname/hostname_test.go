package hostname

import (
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
)

func TestNormalizeGivesOneForm(t *testing.T) {
	cases := []struct{ in, scheme, want string }{
		{"admin.example.com", "https", "admin.example.com"},
		{"ADMIN.Example.COM", "https", "admin.example.com"},
		{"admin.example.com.", "https", "admin.example.com"},
		{"admin.example.com:443", "https", "admin.example.com"},
		{"admin.example.com.:443", "https", "admin.example.com"},
		{"admin.example.com:80", "http", "admin.example.com"},
		{"admin.example.com:80", "https", "admin.example.com:80"},
		{"admin.example.com:443", "http", "admin.example.com:443"},
		{"admin.example.com:443", "", "admin.example.com"},
		{"admin.example.com:80", "", "admin.example.com"},
		{"admin.example.com:8443", "https", "admin.example.com:8443"},
		{"bücher.example", "https", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "https", "xn--bcher-kva.example"},
		{"XN--BCHER-KVA.example", "https", "xn--bcher-kva.example"},
		{"bücher.EXAMPLE.:443", "https", "xn--bcher-kva.example"},
		{"faß.de", "https", "xn--fa-hia.de"},
		{"10.1.2.3", "https", "10.1.2.3"},
		{"10.1.2.3:8080", "http", "10.1.2.3:8080"},
		{"[::1]", "https", "[::1]"},
		{"[0:0::1]:443", "https", "[::1]"},
		{"[2001:DB8::1]:8443", "https", "[2001:db8::1]:8443"},
		{"my_service.internal", "http", "my_service.internal"},
		{"localhost", "http", "localhost"},
	}
	for _, tc := range cases {
		t.Run(tc.in+"/"+tc.scheme, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Normalize(tc.in, tc.scheme)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestNormalizeRefusesWhatIsNotAHost(t *testing.T) {
	for _, in := range []string{
		"", ".", "..", "admin.example.com..", ".admin.example.com", "admin..example.com",
		"admin example.com", "admin.example.com\x00", "admin\t.example.com", "admin.example.com\r\n",
		"user@admin.example.com", "admin.example.com/x", "admin.example.com\\x", "adm%69n.example.com",
		"admin.example.com?", "admin.example.com#", "*.example.com",
		"admin.example.com:", "admin.example.com:0", "admin.example.com:65536", "admin.example.com:08443",
		"admin.example.com:x", "admin.example.com:1:2", "admin.example.com:-1", "::1", "[::1", "[::1]x", "[fe80::1%25en0]",
		"[10.0.0.1]", "[not-an-address]",
		"2130706433", "0x7f.1", "010.0.0.1", "127.1", "1.2.3.04", "a.0x10",
		"BÜCHER.example", "ａdmin.example.com", "admin。example.com", "admin.example.com／evil.com",
		"xn--zz.example", "xn--a.example", "xn--.example", "xn--bcher-kva-.example",
		"a_ü.example", "\xff.example", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "aa",
	} {
		got, err := Normalize(in, "https")
		if err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", in, got)
		}
	}
}

func TestNormalizeDoesNotAllocateForAHostInItsForm(t *testing.T) {
	for _, in := range []string{"admin.example.com", "admin.example.com:443", "admin.example.com.", "admin.example.com:8443"} {
		allocs := testing.AllocsPerRun(100, func() { _, _ = Normalize(in, "https") })
		if allocs != 0 {
			t.Errorf("Normalize(%q): %v allocations", in, allocs)
		}
	}
}

func TestNormalizePattern(t *testing.T) {
	g := NewWithT(t)
	for in, want := range map[string]string{
		"*.Corp.Example.com":      "*.corp.example.com",
		"*.corp.example.com.":     "*.corp.example.com",
		"*.corp.example.com:443":  "*.corp.example.com",
		"*.corp.example.com:8443": "*.corp.example.com:8443",
		"*.bücher.example":        "*.xn--bcher-kva.example",
		"Admin.example.com:443":   "admin.example.com",
	} {
		got, err := NormalizePattern(in)
		g.Expect(err).NotTo(HaveOccurred(), in)
		g.Expect(got).To(Equal(want), in)
	}
	for _, in := range []string{"*", "*.", "*.com", "*.*.example.com", "a.*.example.com", "*example.com", "**.example.com", "*.10.0.0.1", "*.[::1]"} {
		_, err := NormalizePattern(in)
		g.Expect(err).To(HaveOccurred(), in)
	}
}

func TestNameAndPort(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Name("a.example.com:8443")).To(Equal("a.example.com"))
	g.Expect(Port("a.example.com:8443")).To(Equal("8443"))
	g.Expect(Name("[::1]")).To(Equal("[::1]"))
	g.Expect(Port("[::1]")).To(Equal(""))
	g.Expect(Name("[::1]:8080")).To(Equal("[::1]"))
	g.Expect(Port("[::1]:8080")).To(Equal("8080"))
	g.Expect(Name("*.example.com")).To(Equal("*.example.com"))
}

// FuzzHostNormalize checks that the one form is one: Normalize is
// idempotent, never yields a character a host cannot have, and every
// spelling of an accepted host (case, a trailing dot, the default port)
// gives the same form and the same pattern match.
func FuzzHostNormalize(f *testing.F) {
	for _, seed := range []string{
		"admin.example.com", "ADMIN.example.com.", "admin.example.com:443", "bücher.example", "xn--bcher-kva.example",
		"[::1]:80", "10.0.0.1", "0x7f.1", "a..b", "payroll.corp.example.com", "x.y.corp.example.com:8443", "ß.de", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := Normalize(in, "https")
		if err != nil {
			return
		}
		again, err := Normalize(n, "https")
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", in, n, n, again, err)
		}
		if !utf8.ValidString(n) || strings.ContainsAny(n, " \t\r\n\x00@/\\%?#*") || n != strings.ToLower(n) || strings.HasSuffix(Name(n), ".") {
			t.Fatalf("Normalize(%q) = %q, not in the one form", in, n)
		}
		for i := 0; i < len(n); i++ {
			if n[i] >= 0x80 {
				t.Fatalf("Normalize(%q) = %q, not ASCII", in, n)
			}
		}
		name, port := Name(n), Port(n)
		variants := []string{strings.ToUpper(n)}
		switch {
		case strings.HasPrefix(name, "["):
		case port == "":
			variants = append(variants, name+":443", name+".", strings.ToUpper(name)+".:443")
		default:
			variants = append(variants, name+".:"+port)
		}
		for _, v := range variants {
			if got, err := Normalize(v, "https"); err != nil || got != n {
				t.Fatalf("Normalize(%q) = %q, %v; want %q, as for %q", v, got, err, n, in)
			}
		}
		// A pattern over the name's parent matches the name and all its
		// spellings alike.
		if i := strings.IndexByte(name, '.'); i > 0 && strings.Contains(name[i+1:], ".") && !strings.HasPrefix(name, "[") && !isNumeric(lastLabel(name)) {
			p, err := NormalizePattern("*" + strings.ToUpper(name[i:]))
			if err != nil {
				t.Fatalf("NormalizePattern(*%s): %v", name[i:], err)
			}
			if !Match(Name(p), name) {
				t.Fatalf("pattern %q does not match %q", p, name)
			}
		}
	})
}
