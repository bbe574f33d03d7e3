package tcpserver

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// partialKeep is the largest partial-line buffer a LineReader keeps for
// reuse once its line is complete. Idle connections should hold nothing, so
// anything larger is given back to the garbage collector.
const partialKeep = 512

// A LineReader splits the bytes a text client sends into lines.
//
// It strips telnet commands, ends a line at LF, CRLF or a lone CR (CR NUL,
// telnet's bare CR, ends the line and the NUL is dropped later by
// [CleanLine]) and never holds more than Max bytes of an unfinished line,
// whatever the client sends: a longer line is reported once as too long
// and the rest of it is skipped up to its end.
//
// A LineReader keeps state between calls to Feed; it is not safe for
// concurrent use.
type LineReader struct {
	Max int // the longest line accepted, in bytes; must be > 0

	partial    []byte // the start of a line whose end has not come yet
	discarding bool   // skipping the rest of a too-long line
	afterCR    bool   // the last byte was CR: an LF right after it is part of the same line end
	telnet     telnetDecoder
}

// Feed consumes p, which it may modify, and calls emit for each complete
// line, without its line end, in order. For a line over Max it calls emit
// once with tooLong set and a nil line, as soon as the limit is passed.
//
// The line passed to emit is only valid during the call: it may point into
// p or into the reader's own buffer.
func (r *LineReader) Feed(p []byte, emit func(line []byte, tooLong bool)) {
	p = r.telnet.decode(p)
	for len(p) > 0 {
		if r.afterCR {
			r.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		end := indexLineEnd(p)
		if end < 0 {
			r.keep(p, emit)
			return
		}
		r.afterCR = p[end] == '\r'
		r.complete(p[:end], emit)
		p = p[end+1:]
	}
}

// Pending reports whether part of a line has been read and not ended.
func (r *LineReader) Pending() bool { return len(r.partial) > 0 }

// answerTelnet makes the reader answer the telnet negotiation its client
// starts (see telnetAnswers); the answers wait for takeTelnetAnswers. Only a
// transport that can send them asks: a WebSocket's IAC bytes are just
// stripped.
func (r *LineReader) answerTelnet() { r.telnet.answer = true }

// takeTelnetAnswers returns the answers to the negotiation fed since the last
// call, as an event to queue for the member, or nil.
func (r *LineReader) takeTelnetAnswers() *Event { return r.telnet.take() }

// indexLineEnd returns the index of the first CR or LF in p, or -1.
func indexLineEnd(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		i = len(p)
	}
	if j := bytes.IndexByte(p[:i], '\r'); j >= 0 {
		return j
	}
	if i == len(p) {
		return -1
	}
	return i
}

// keep stores the start of an unfinished line.
func (r *LineReader) keep(seg []byte, emit func([]byte, bool)) {
	if r.discarding {
		return
	}
	if len(r.partial)+len(seg) > r.Max {
		r.dropPartial()
		r.discarding = true
		emit(nil, true)
		return
	}
	r.partial = append(r.partial, seg...)
}

// complete ends the current line with seg, its last part.
func (r *LineReader) complete(seg []byte, emit func([]byte, bool)) {
	if r.discarding {
		r.discarding = false
		return
	}
	line := seg
	if len(r.partial) > 0 {
		if len(r.partial)+len(seg) > r.Max {
			r.dropPartial()
			emit(nil, true)
			return
		}
		r.partial = append(r.partial, seg...)
		line = r.partial
	} else if len(seg) > r.Max {
		emit(nil, true)
		return
	}
	emit(line, false)
	r.dropPartial()
}

func (r *LineReader) dropPartial() {
	if cap(r.partial) > partialKeep {
		r.partial = nil
		return
	}
	r.partial = r.partial[:0]
}

// maxMarks is the most combining marks CleanLine keeps on one character:
// Vietnamese stacks two, pointed Hebrew and Tibetan three; "zalgo" text
// stacks dozens, to spill over the lines above and below.
const maxMarks = 3

// zwj is the zero width joiner, kept only where it joins two pictographs
// into one (👩 ZWJ 💻 is 👩‍💻).
const zwj = '\u200d'

// CleanLine turns one line a user sent into text that is safe to show on
// anyone else's terminal or page: invalid UTF-8 becomes U+FFFD; terminal
// escape sequences are removed whole (see skipEscape), and the other
// control characters but tab (BEL, NUL, DEL, the C1 range) and the
// Unicode bidirectional overrides, so no user can move another user's
// cursor, recolour their terminal or reorder their text, and the arrow
// keys a telnet user presses leave no "[D" behind; so are the characters
// that hide or disguise text (see hidden) and all but maxMarks combining
// marks on one character; trailing white space is trimmed.
//
// Escapes are removed here, from whole lines, and not as bytes arrive: a
// line is whole however the reads cut it, and every transport's text
// (telnet, a WebSocket's lines and JSON messages, other nodes') comes
// through here.
//
// Cleaning twice changes nothing: what is removed depends only on what
// was kept before it and on what follows it, and nothing kept starts an
// escape sequence.
func CleanLine(b []byte) string {
	clean := true
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return strings.TrimRight(string(b), " \t")
	}
	var sb strings.Builder
	sb.Grow(len(b))
	marks := 0    // combining marks kept on the last character
	pict := false // the last character kept is a pictograph, or a variation selector after one
	for len(b) > 0 {
		if c := b[0]; c >= 0x20 && c < 0x7f { // printable ASCII, most of most lines
			sb.WriteByte(c)
			b = b[1:]
			marks, pict = 0, false
			continue
		}
		if b[0] == esc {
			b = skipEscape(b[1:])
			continue // marks and pict as they were: nothing was kept
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
		case r == '\t':
		case r == 0x9b: // CSI, ESC [ in one C1 character
			b = skipCSI(b)
			continue
		case r == 0x9d: // OSC
			b = skipString(b)
			continue
		case r == 0x8f: // SS3
			b = skipSS3(b)
			continue
		case r < 0x20, r >= 0x7f && r < 0xa0:
			continue // C0 and C1 controls and DEL
		case r == zwj:
			next, _ := utf8.DecodeRune(b)
			if !pict || !pictographic(next) {
				continue
			}
		case hidden(r):
			continue
		case variationSelector(r):
			sb.WriteRune(r) // part of the character before; not a mark to count
			continue
		case r >= 0x300 && unicode.In(r, unicode.Mn, unicode.Me):
			if marks == maxMarks {
				continue
			}
			marks++
			pict = false
			sb.WriteRune(r)
			continue
		}
		sb.WriteRune(r)
		marks = 0
		pict = pictographic(r)
	}
	return strings.TrimRight(sb.String(), " \t")
}

// esc starts every terminal escape sequence.
const esc = 0x1b

// skipEscape returns b, which follows an ESC, without the rest of the
// escape sequence the ESC starts (ECMA-48): a control sequence (CSI, ESC
// [: parameters, intermediates and a final byte: the arrow keys, colours,
// cursor moves), an operating system command (OSC, ESC ]: a window title,
// up to BEL or ST), SS3 and one character (ESC O A, the arrow keys in a
// terminal's application mode), or ESC, intermediates and a final byte
// (ESC ( B; ESC and one character: Alt and a key, ESC c). An ESC before
// anything else (a control, a byte that is not ASCII, the end) goes alone.
// What is unfinished at the end of the line goes to the end.
func skipEscape(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	switch c := b[0]; {
	case c == '[':
		return skipCSI(b[1:])
	case c == ']':
		return skipString(b[1:])
	case c == 'O':
		return skipSS3(b[1:])
	case c >= 0x20 && c < 0x7f:
		i := 0
		for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f { // intermediates
			i++
		}
		if i < len(b) && b[i] >= 0x30 && b[i] < 0x7f { // the final byte
			i++
		}
		return b[i:]
	}
	return b
}

// skipCSI returns b, which follows a CSI, without the rest of the control
// sequence: parameter bytes (0x30-0x3F), intermediate bytes (0x20-0x2F)
// and a final byte (0x40-0x7E). A byte that cannot come next ends it
// there, as it does in a terminal.
func skipCSI(b []byte) []byte {
	// The Linux console's F1-F5 are CSI [ A to CSI [ E.
	if len(b) >= 2 && b[0] == '[' && b[1] >= 'A' && b[1] <= 'E' {
		return b[2:]
	}
	i := 0
	for i < len(b) && b[i] >= 0x30 && b[i] <= 0x3f {
		i++
	}
	for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f {
		i++
	}
	if i < len(b) && b[i] >= 0x40 && b[i] <= 0x7e {
		i++
	}
	return b[i:]
}

// skipString returns b, which follows an OSC, without the string and its
// end: BEL, ST (ESC \ or U+009C) or the end of the line. Another ESC ends
// the string and starts a sequence of its own, as in a terminal.
func skipString(b []byte) []byte {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case 0x07:
			return b[i+1:]
		case esc:
			if i+1 < len(b) && b[i+1] == '\\' {
				return b[i+2:]
			}
			return b[i:]
		case 0xc2: // U+009C, ST, in UTF-8
			if i+1 < len(b) && b[i+1] == 0x9c {
				return b[i+2:]
			}
		}
	}
	return nil
}

// skipSS3 returns b, which follows an SS3, without the one character it
// shifts (a key: ESC O A is the up arrow in application mode).
func skipSS3(b []byte) []byte {
	if len(b) > 0 && b[0] >= 0x20 && b[0] < 0x7f {
		return b[1:]
	}
	return b
}

// hidden reports whether r is a character that hides or disguises text,
// which CleanLine removes: every format character (Unicode's Cf: zero
// width space, joiner and non-joiner, word joiner, the invisible
// operators U+2060-U+2064, the byte order mark, the bidirectional marks,
// embeddings, overrides and isolates, the soft hyphen, the tag characters
// ...), the line and paragraph separators U+2028 and U+2029, and the
// Hangul fillers, which show as blank space. (The zero width joiner is
// CleanLine's to keep where it joins two pictographs.)
func hidden(r rune) bool {
	switch {
	case r < 0xad:
		return false
	case r == 0xad: // soft hyphen, the only format character below U+0600
		return true
	case r < 0x600:
		return false
	case r == 0x115f, r == 0x1160, r == 0x3164, r == 0xffa0: // Hangul fillers
		return true
	case r == 0x2028, r == 0x2029:
		return true
	case r >= 0xe0000 && r <= 0xe007f: // tags, assigned or not
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// variationSelector reports whether r picks a form of the character
// before it (text or emoji style, a CJK variant): a combining mark, but
// one that is never stacked.
func variationSelector(r rune) bool {
	return r >= 0xfe00 && r <= 0xfe0f || r >= 0xe0100 && r <= 0xe01ef || r >= 0x180b && r <= 0x180d || r == 0x180f
}

// pictographic reports whether r is an emoji or another pictograph that a
// zero width joiner may join to the next one (👩‍💻, 🏳️‍🌈, ❤️‍🔥, 🏃‍♀️):
// roughly Unicode's Extended_Pictographic, which package unicode lacks.
// Skin tones (U+1F3FB-U+1F3FF) are in the first range.
func pictographic(r rune) bool {
	switch {
	case r >= 0x1f000 && r <= 0x1faff, // from mahjong tiles to symbols and pictographs extended-A
		r >= 0x2600 && r <= 0x27bf, // miscellaneous symbols and dingbats: ♀ ♂ ❤ ⚕ ❄
		r >= 0x2300 && r <= 0x23ff, // miscellaneous technical: ⌚ ⏰
		r >= 0x2190 && r <= 0x21ff, // arrows
		r >= 0x2b00 && r <= 0x2bff, // ⬛ ⭐
		r == 0xa9, r == 0xae, r == 0x203c, r == 0x2049, r == 0x2122, r == 0x2139,
		r == 0x3030, r == 0x303d, r == 0x3297, r == 0x3299:
		return true
	}
	return false
}
