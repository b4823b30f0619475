package policy

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
)

const (
	// maxShownIssues is how many errors of one expression a message shows.
	maxShownIssues = 3
	// snippetWidth is how many characters of the expression's line an
	// error shows around its position: a `when` may be 4096 characters
	// long, a status message is kept under 1 KiB.
	snippetWidth = 72
)

// formatIssues writes CEL's errors as cel-go does (cel.Issues.String):
//
//	ERROR: <input>:1:1: undeclared reference to 'requets'
//	 | requets.path == "/"
//	 | ^
//
// compactly: at most maxShownIssues errors, the line cut to snippetWidth
// characters around the position, and without the checker's
// "(in container ...)" suffix, which names a CEL feature rules do not use.
func formatIssues(expr string, issues []*cel.Error) string {
	src := common.NewTextSource(expr)
	issues = slices.Clone(issues)
	slices.SortStableFunc(issues, func(a, b *cel.Error) int {
		if c := a.Location.Line() - b.Location.Line(); c != 0 {
			return c
		}
		return a.Location.Column() - b.Location.Column()
	})
	var b strings.Builder
	for i, e := range issues {
		if i == maxShownIssues {
			if n := len(issues) - maxShownIssues; n == 1 {
				b.WriteString("\n1 more error")
			} else {
				fmt.Fprintf(&b, "\n%d more errors", n)
			}
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		writeIssue(&b, src, e.Location, strings.ReplaceAll(e.Message, " (in container '')", ""))
	}
	return b.String()
}

// writeIssue writes one error: its position, its message and, when the
// position is on a line of the expression, that line with a caret under it.
func writeIssue(b *strings.Builder, src common.Source, loc common.Location, message string) {
	line, col := loc.Line(), loc.Column()
	fmt.Fprintf(b, "ERROR: %s:%d:%d: %s", src.Description(), line, col+1, message)
	text, ok := src.Snippet(line)
	if !ok || col < 0 {
		return
	}
	runes := []rune(strings.ReplaceAll(text, "\t", " "))
	col = min(col, len(runes))
	start, end := 0, len(runes)
	if len(runes) > snippetWidth {
		start = max(0, min(col-snippetWidth/2, len(runes)-snippetWidth))
		end = start + snippetWidth
	}
	b.WriteString("\n | ")
	caret := ""
	if start > 0 {
		b.WriteString("...")
		caret = "..."
	}
	b.WriteString(string(runes[start:end]))
	if end < len(runes) {
		b.WriteString("...")
	}
	// As cel-go draws it: a full-width dot under a multi-byte character,
	// so that the caret lines up in a terminal.
	for _, r := range runes[start:col] {
		caret += dotUnder(r, ".", "\uff0e")
	}
	if col < len(runes) {
		caret += dotUnder(runes[col], "^", "\uff3e")
	} else {
		caret += "^"
	}
	b.WriteString("\n | " + caret)
}

func dotUnder(r rune, narrow, wide string) string {
	if utf8.RuneLen(r) > 1 {
		return wide
	}
	return narrow
}

// firstPosition is the position (1-based line and column) of the first
// error, as formatIssues shows it; zero when it has none.
func firstPosition(issues []*cel.Error) (line, column int) {
	for _, e := range issues {
		l, c := e.Location.Line(), e.Location.Column()
		if l <= 0 || c < 0 {
			continue
		}
		if line == 0 || l < line || l == line && c+1 < column {
			line, column = l, c+1
		}
	}
	return line, column
}
