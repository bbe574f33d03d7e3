package sshdoor

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzKeys feeds the line editor anything a client may send, in pieces
// of any size, through the key filter: the editor must read it all
// without spinning, and the lines it makes are at most its bound, hold no
// control character, and never come from inside a paste bracket the
// client sent.
func FuzzKeys(f *testing.F) {
	f.Add([]byte("hello\r"), uint8(1))
	f.Add([]byte("\x1b[200~"+strings.Repeat("a", 300)+"\x1b[201~\r"), uint8(7))
	f.Add([]byte("\x1b["+strings.Repeat("1", 300)+"\rok\r"), uint8(255))
	f.Add([]byte("ab\tcd\x1bOH\x1b[4~\x1b[1;5D\x1bO5\r\n"), uint8(2))
	f.Add([]byte("\x1b\x1b[2\x1b[20\x1b[200\x1b[201\x1b[1~\t\t\x04"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		ed, _ := editor(string(data), max(int(step), 1), func(line string, pos int, key rune) (string, int, bool) {
			return line, pos, true
		})
		for _, line := range readLines(t, ed) {
			if n := utf8.RuneCountInString(line); n > 4096 {
				t.Fatalf("a line of %d characters", n)
			}
			for _, r := range line {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("control character %U in %q", r, line)
				}
			}
		}
	})
}

// FuzzAppendLine wraps any line at any width: no row is wider than the
// window (but for a character wider than it alone), and nothing but the
// spaces where rows break is lost.
func FuzzAppendLine(f *testing.F) {
	f.Add("<bob> one two three four five six", uint16(14))
	f.Add("<bob> 漢字漢字漢字漢字 e\u0301e\u0301\tx", uint16(3))
	f.Add(strings.Repeat("x", 100), uint16(1))
	f.Add("", uint16(0))
	f.Fuzz(func(t *testing.T, line string, width uint16) {
		if !utf8.ValidString(line) || strings.ContainsAny(line, "\n\r\x1b") {
			return // the hub's lines are cleaned: no line ends, no escapes
		}
		w := int(width % 300)
		out := string(appendLine(nil, []byte(line), nil, style{width: w}))
		if !strings.HasSuffix(out, "\n") {
			t.Fatalf("no line end: %q", out)
		}
		if strip := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r == ' ' || r == '\t' || r == '\n' {
					return -1
				}
				return r
			}, s)
		}; strip(out) != strip(line) {
			t.Fatalf("wrap(%q, %d) = %q: characters lost or added", line, w, out)
		}
		if w == 0 {
			return
		}
		for _, row := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			cols, runes := 0, 0
			for _, r := range row {
				cols += runeWidth(r)
				if r != ' ' {
					runes++
				}
			}
			if cols > w && runes > 1 {
				t.Fatalf("wrap(%q, %d): row %q is %d columns", line, w, row, cols)
			}
		}
	})
}
