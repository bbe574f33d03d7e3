package tcpserver

import (
	"bytes"
	"strings"
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

// CleanLine turns one line a user sent into text that is safe to show on
// anyone else's terminal or page: invalid UTF-8 becomes U+FFFD; control
// characters other than tab (ESC, BEL, NUL, DEL, the C1 range) and the
// Unicode bidirectional overrides are removed, so no user can move another
// user's cursor, recolour their terminal or reorder their text; trailing
// white space is trimmed.
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
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			sb.WriteRune(utf8.RuneError)
		case r == '\t':
			sb.WriteByte('\t')
		case r < 0x20, r >= 0x7f && r < 0xa0:
			// C0 and C1 controls and DEL.
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			// Bidirectional embeddings, overrides and isolates.
		default:
			sb.WriteRune(r)
		}
	}
	return strings.TrimRight(sb.String(), " \t")
}
