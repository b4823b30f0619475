package webhook

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The challenge pages' colours meet WCAG 2.2 in both colour schemes:
// text 4.5:1 against what it sits on (1.4.3) and the boundaries of form
// fields and buttons 3:1 against their surroundings (1.4.11). The colours
// are read from style.css, so a change there is checked here.

var (
	cssRootRE     = regexp.MustCompile(`(?m)^:root\{([^}]*)\}`)
	cssDarkRootRE = regexp.MustCompile(`@media \(prefers-color-scheme:dark\)\{:root\{([^}]*)\}\}`)
	cssPropRE     = regexp.MustCompile(`--([a-z-]+):(#[0-9a-fA-F]{3,6})`)
	cssVarRE      = regexp.MustCompile(`var\(--([a-z-]+)\)`)
)

// cssSchemes returns the custom properties of the light scheme and of the
// dark one (the light ones overridden by the dark block).
func cssSchemes(t *testing.T) map[string]map[string]string {
	t.Helper()
	css := readStyleCSS(t)
	light := cssRootRE.FindStringSubmatch(css)
	dark := cssDarkRootRE.FindStringSubmatch(css)
	if light == nil || dark == nil {
		t.Fatalf("style.css has no light or no dark :root block")
	}
	props := func(decls string, base map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for _, p := range cssPropRE.FindAllStringSubmatch(decls, -1) {
			m[p[1]] = p[2]
		}
		return m
	}
	l := props(light[1], nil)
	return map[string]map[string]string{"light": l, "dark": props(dark[1], l)}
}

func readStyleCSS(t *testing.T) string {
	t.Helper()
	b, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cssRuleVar returns the custom property that declaration prop of the rule
// for selector uses, e.g. ("input.code", "border") → "field-border".
func cssRuleVar(t *testing.T, selector, prop string) string {
	t.Helper()
	css := readStyleCSS(t)
	rule := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(selector) + `\{([^}]*)\}`).FindStringSubmatch(css)
	if rule == nil {
		t.Fatalf("style.css has no rule for %s", selector)
	}
	for _, decl := range strings.Split(rule[1], ";") {
		name, value, _ := strings.Cut(decl, ":")
		if name != prop {
			continue
		}
		if m := cssVarRE.FindStringSubmatch(value); m != nil {
			return m[1]
		}
	}
	t.Fatalf("the rule for %s sets no %s from a custom property", selector, prop)
	return ""
}

// relativeLuminance is WCAG 2.2's relative luminance of an sRGB colour.
func relativeLuminance(hex string) (float64, error) {
	h := strings.TrimPrefix(hex, "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return 0, fmt.Errorf("colour %q is not #rgb or #rrggbb", hex)
	}
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return 0, fmt.Errorf("colour %q: %w", hex, err)
		}
		c := float64(v) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += w * c
	}
	return l, nil
}

func contrastRatio(a, b string) (float64, error) {
	la, err := relativeLuminance(a)
	if err != nil {
		return 0, err
	}
	lb, err := relativeLuminance(b)
	if err != nil {
		return 0, err
	}
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05), nil
}

func TestContrastRatio(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want float64
	}{
		{"#000", "#fff", 21},
		{"#fff", "#fff", 1},
		{"#767676", "#ffffff", 4.54},
		{"#d3d7df", "#fff", 1.44},
	} {
		got, err := contrastRatio(tc.a, tc.b)
		if err != nil || math.Abs(got-tc.want) > 0.005 {
			t.Errorf("contrast %s on %s = %.3f, %v; want %.2f", tc.a, tc.b, got, err, tc.want)
		}
	}
}

func TestStyleColoursMeetWCAGContrast(t *testing.T) {
	fieldBorder := cssRuleVar(t, "input.code", "border")
	fieldBackground := cssRuleVar(t, "input.code", "background")
	invalidBorder := cssRuleVar(t, "input.code[aria-invalid=true]", "border-color")
	secondaryBorder := cssRuleVar(t, ".button.secondary", "border")
	buttonBackground := cssRuleVar(t, "button,.button", "background")

	type pair struct{ what, fg, bg string }
	borders := []pair{
		{"code field border on the field", fieldBorder, fieldBackground},
		{"code field border on the card", fieldBorder, "card"},
		{"refused code field border on the field", invalidBorder, fieldBackground},
		{"refused code field border on the card", invalidBorder, "card"},
		{"secondary button border on the card", secondaryBorder, "card"},
		{"secondary button border, hovered", secondaryBorder, "soft"},
		{"button on the card", buttonBackground, "card"},
		{"focus ring on the card", "focus", "card"},
		{"focus ring on the page", "focus", "bg"},
	}
	texts := []pair{
		{"text on the page", "text", "bg"},
		{"text on the card", "text", "card"},
		{"text in the code field", "text", "field"},
		{"text on soft panels", "text", "soft"},
		{"muted text on the card", "muted", "card"},
		{"muted text on the page (footer)", "muted", "bg"},
		{"muted text on soft panels", "muted", "soft"},
		{"links on the card", "accent", "card"},
		{"hovered links on the card", "accent-hover", "card"},
		{"secondary button text, hovered", "accent", "soft"},
		{"button text", "on-accent", "accent"},
		{"button text, hovered", "on-accent", "accent-hover"},
		{"error text", "error", "error-bg"},
		{"notice text", "ok", "ok-bg"},
	}
	for scheme, vars := range cssSchemes(t) {
		check := func(p pair, min float64) {
			fg, bg := vars[p.fg], vars[p.bg]
			if fg == "" || bg == "" {
				t.Errorf("%s: %s: --%s or --%s is not defined", scheme, p.what, p.fg, p.bg)
				return
			}
			r, err := contrastRatio(fg, bg)
			if err != nil {
				t.Errorf("%s: %s: %v", scheme, p.what, err)
				return
			}
			if r < min {
				t.Errorf("%s: %s: --%s %s on --%s %s is %.2f:1, want at least %.1f:1", scheme, p.what, p.fg, fg, p.bg, bg, r, min)
			}
		}
		for _, p := range borders {
			check(p, 3)
		}
		for _, p := range texts {
			check(p, 4.5)
		}
	}
}
