package sshdoor

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"chatbridge/tcpserver"
)

// A palette is the colours names are given: SGR parameters that set the
// foreground. nil is no colour.
type palette []string

// palette256 is the xterm 256-colour cube's colours that read on a light
// background and on a dark one alike: contrast at least 3:1 against
// white and 4:1 against black (WCAG's relative luminance), and far
// enough from grey to tell apart. No near-white, no near-black.
var palette256 = palette{
	"38;5;27", "38;5;28", "38;5;29", "38;5;30", "38;5;31", "38;5;32", "38;5;33",
	"38;5;62", "38;5;63", "38;5;64", "38;5;67", "38;5;68", "38;5;69",
	"38;5;97", "38;5;98", "38;5;99", "38;5;100", "38;5;104", "38;5;105",
	"38;5;129", "38;5;130", "38;5;131", "38;5;132", "38;5;133", "38;5;134", "38;5;135", "38;5;136", "38;5;137",
	"38;5;161", "38;5;162", "38;5;163", "38;5;164", "38;5;165", "38;5;166", "38;5;167", "38;5;168", "38;5;169", "38;5;170", "38;5;171",
	"38;5;196", "38;5;197", "38;5;198", "38;5;199", "38;5;200", "38;5;201", "38;5;202",
}

// palette16 is for terminals with the eight basic colours only: red,
// green, blue, magenta and cyan, which every scheme keeps readable;
// black, white and yellow are not.
var palette16 = palette{"31", "32", "34", "35", "36"}

// paletteFor picks the palette a terminal of type term (the TERM the
// client sent) can show.
func paletteFor(term string) palette {
	switch t := strings.ToLower(term); {
	case t == "" || t == "dumb" || strings.HasPrefix(t, "vt1") || strings.HasPrefix(t, "vt2"):
		return nil
	case strings.Contains(t, "256") || strings.Contains(t, "truecolor") || strings.Contains(t, "direct"):
		return palette256
	}
	return palette16
}

// colourOf returns the colour of name: always the same for the same name
// whatever its case, on every connection and every server (FNV-1a of its
// lower case).
func (p palette) colourOf(name string) string {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint32(c)) * 16777619
	}
	return p[h%uint32(len(p))]
}

const colourEnd = "\x1b[39m" // the default foreground, other attributes kept

// style is how a member's terminal shows events.
type style struct {
	width   int     // columns to wrap lines at; 0: no wrapping
	palette palette // nil: no colour
}

// prompt is the editor's prompt: the room and the member's name.
func prompt(room, name string, p palette) string {
	if p == nil || name == "" {
		return "[" + room + "] " + name + "> "
	}
	return "[" + room + "] \x1b[" + p.colourOf(name) + "m" + name + colourEnd + "> "
}

// render appends ev as the editor writes it: the lines a telnet user
// gets, each ended by "\n" (the editor makes it CRLF), names in colour,
// long lines wrapped at the window's width. The text is the hub's, made
// and cleaned once for everyone; only the colour codes are added here.
func render(dst []byte, ev *tcpserver.Event, st style) []byte {
	text := ev.Line()
	sub := 0 // the next of ev.Events a line of a history or batch shows
	var spans []span
	for len(text) > 0 {
		line := text
		if i := bytes.Index(text, []byte("\r\n")); i >= 0 {
			line, text = text[:i], text[i+2:]
		} else {
			text = nil
		}
		spans = spans[:0]
		if st.palette != nil {
			switch ev.Kind {
			case tcpserver.KindHistory, tcpserver.KindBatch:
				// A line per event, in order, with perhaps lines of
				// their own (a marker, say) in between.
				if sub < len(ev.Events) {
					if spans = findNames(spans, line, namesOf(ev.Events[sub]), st.palette); len(spans) > 0 {
						sub++
					}
				}
			default:
				spans = findNames(spans, line, namesOf(ev), st.palette)
			}
		}
		dst = appendLine(dst, line, spans, st)
	}
	return dst
}

// namesOf lists the names in ev's line, in the order they appear.
func namesOf(ev *tcpserver.Event) []string {
	switch ev.Kind {
	case tcpserver.KindMessage, tcpserver.KindAction, tcpserver.KindJoin, tcpserver.KindLeave:
		return []string{ev.From}
	case tcpserver.KindPrivate:
		if ev.Echo {
			return []string{ev.To}
		}
		return []string{ev.From}
	case tcpserver.KindNick:
		return []string{ev.From, ev.To}
	case tcpserver.KindHello:
		return []string{ev.To}
	case tcpserver.KindPresence:
		return ev.Names
	}
	return nil
}

// A span is a name in a line: where it is and its colour.
type span struct {
	start, end int
	colour     string
}

// findNames finds names in line, each after the one before, as whole
// words (not "al" inside "alice"), and appends where they are and their
// colour in p.
func findNames(spans []span, line []byte, names []string, p palette) []span {
	from := 0
	for _, name := range names {
		at := findWord(line[from:], name)
		if at < 0 {
			continue
		}
		at += from
		spans = append(spans, span{start: at, end: at + len(name), colour: p.colourOf(name)})
		from = at + len(name)
	}
	return spans
}

// findWord returns the index of the first occurrence of name in line that
// is not part of a longer name, or -1.
func findWord(line []byte, name string) int {
	if name == "" {
		return -1
	}
	for off := 0; ; {
		i := bytes.Index(line[off:], []byte(name))
		if i < 0 {
			return -1
		}
		i += off
		end := i + len(name)
		if (i == 0 || !nameByte(line[i-1])) && (end == len(line) || !nameByte(line[end])) {
			return i
		}
		off = i + 1
	}
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// wrapIndent starts every row of a wrapped line after the first, so that
// a long message still reads as one.
const wrapIndent = "  "

// appendLine appends line, its spans coloured, wrapped at st.width
// columns (at a space where it can, in a word where it must), then "\n".
// Tabs become spaces to the next multiple of 8, as a terminal shows them,
// so that the columns counted are the columns shown.
func appendLine(dst, line []byte, spans []span, st style) []byte {
	width := st.width
	indent := wrapIndent
	if width <= 2*len(wrapIndent)+8 {
		indent = ""
	}
	col := 0
	space, spaceCol := -1, 0 // the last space of this row in dst, and the column after it
	next := 0                // the next span
	for i := 0; i < len(line); {
		if next < len(spans) && spans[next].start == i {
			dst = append(append(append(dst, "\x1b["...), spans[next].colour...), 'm')
		}
		r, size := utf8.DecodeRune(line[i:])
		w := runeWidth(r)
		if r == '\t' {
			w = 8 - col%8
		}
		for width > 0 && col+w > width && col > len(indent) {
			if space >= 0 && len(indent)+col-spaceCol <= width {
				// The row ends at its last space; what came after it
				// starts the next (and if r still does not fit after
				// it, the next row ends too).
				dst[space] = '\n'
				dst = insert(dst, space+1, indent)
				col = len(indent) + col - spaceCol
			} else {
				dst = append(append(dst, '\n'), indent...)
				col = len(indent)
			}
			space = -1
		}
		switch r {
		case '\t':
			dst = append(dst, "        "[:w]...)
		default:
			dst = append(dst, line[i:i+size]...)
		}
		col += w
		if r == ' ' || r == '\t' {
			space, spaceCol = len(dst)-1, col
		}
		i += size
		if next < len(spans) && spans[next].end == i {
			dst = append(dst, colourEnd...)
			next++
		}
	}
	return append(dst, '\n')
}

// insert puts s into b at i.
func insert(b []byte, i int, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, s...)
	copy(b[i+len(s):], b[i:len(b)-len(s)])
	copy(b[i:], s)
	return b
}

// runeWidth is how many columns a terminal gives r: none for combining
// marks and the format characters that survive cleaning (a zero width
// joiner between two emoji), two for East Asian wide characters and
// emoji, one for the rest.
func runeWidth(r rune) int {
	switch {
	case r < 0x300:
		return 1
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0x303E, r >= 0x3041 && r <= 0x33FF,
		r >= 0x3400 && r <= 0x4DBF, r >= 0x4E00 && r <= 0x9FFF, r >= 0xA000 && r <= 0xA4CF,
		r >= 0xAC00 && r <= 0xD7A3, r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F,
		r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6, r >= 0x1F300 && r <= 0x1F64F,
		r >= 0x1F900 && r <= 0x1F9FF, r >= 0x20000 && r <= 0x3FFFD:
		return 2
	}
	return 1
}
