package sshdoor

import (
	"errors"
	"io"
	"strings"
	"time"

	"golang.org/x/term"
)

// Limits on what a client may type.
const (
	// maxEscape is the longest escape sequence passed to the editor. Keys
	// are a few bytes (a mouse report about twenty); the editor takes a
	// sequence to end at its first letter or '~', and one that never
	// ends would fill its 256-byte buffer and leave it reading nothing,
	// for ever, at full speed.
	maxEscape = 64
	// Tab completions a member may ask for at once, and per second after
	// that. A completion costs the editor copies of the whole line, up
	// to 16 KiB, so a client cannot be let send Tabs as fast as it can.
	tabBurst = 5
	tabRate  = 2
)

// pasteMarkers are the brackets a terminal puts around a paste once asked
// to (the door never asks). Inside them the editor takes keys without
// its bound on the line's length, so they are removed.
var pasteMarkers = [...]string{"\x1b[200~", "\x1b[201~"}

// errEditorFull says the editor's buffer had no room for another byte,
// which the bound on escape sequences should make impossible.
var errEditorFull = errors.New("line editor's input buffer is full")

// keys is what the line editor reads: the session channel's bytes, less
// what would let a client make the editor grow without bound or spin
// (bracketed paste markers, endless escape sequences), with Tab handed
// over alone so that the editor asks for completions (which cost a copy
// of the line per key) only on Tab, and only as fast as tabRate.
//
// It is called by the editor's ReadLine only, in the reader goroutine,
// with the editor unlocked; the completion callback is read there too.
type keys struct {
	r        io.Reader
	t        *term.Terminal
	complete func(line string, pos int, key rune) (string, int, bool)
	err      error // the channel's read error, once it has come

	rest  []byte // read but not handed over yet: what followed a Tab
	held  [6]byte
	nheld int  // bytes held back: the start of what may be a paste marker
	esc   int  // bytes of the escape sequence in progress; 0: none
	tab   bool // a Tab comes next, alone

	tabTokens float64
	tabAt     time.Time
}

// reserve is the room kept at the start of the editor's buffer for bytes
// held back by an earlier Read: filtering in place never writes past
// the byte it reads.
const reserve = len(keys{}.held)

func (k *keys) Read(p []byte) (int, error) {
	k.t.AutoCompleteCallback = nil // the Tab handed over last time is done with
	if len(p) < 2*reserve {
		return 0, errEditorFull
	}
	for {
		if k.tab {
			k.tab = false
			if k.allowTab(time.Now()) {
				k.t.AutoCompleteCallback = k.complete
				p[0] = '\t'
				return 1, nil
			}
		}
		var in []byte
		var err error
		fromRest := len(k.rest) > 0
		if fromRest {
			in = k.rest[:min(len(k.rest), len(p)-reserve)]
		} else {
			if k.err != nil {
				return 0, k.err
			}
			var n int
			n, err = k.r.Read(p[reserve:])
			in = p[reserve : reserve+n]
			k.err = err
		}
		n, used := k.filter(p, in)
		switch {
		case fromRest:
			if k.rest = k.rest[used:]; len(k.rest) == 0 {
				k.rest = nil
			}
		case used < len(in):
			// Stopped after a Tab: the rest waits. (The only copy: a Tab
			// typed with more in the same packet.)
			k.rest = append([]byte(nil), in[used:]...)
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// filter copies in to out, which may be in's buffer as long as out starts
// at least reserve bytes before in, without paste markers, with escape
// sequences cut at maxEscape, up to and including the first Tab, which it
// does not copy but marks as next. It returns the bytes written and read.
func (k *keys) filter(out, in []byte) (n, used int) {
	for used < len(in) {
		b := in[used]
		used++
		if k.esc > 0 {
			k.esc++
			if k.nheld > 0 {
				k.held[k.nheld] = b
				k.nheld++
				if isMarkerStart(k.held[:k.nheld]) {
					if k.nheld == len(k.held) {
						k.nheld, k.esc = 0, 0 // a whole marker: gone
					}
					continue
				}
				// Not a marker: the sequence goes on to the editor.
				n += copy(out[n:], k.held[:k.nheld])
				k.nheld = 0
				if endsEscape(b) {
					k.esc = 0
				}
				continue
			}
			switch {
			case endsEscape(b):
				k.esc = 0
			case k.esc >= maxEscape:
				b, k.esc = '~', 0 // ends it where the editor will see it end
			}
			out[n] = b
			n++
			continue
		}
		switch b {
		case 0x1b:
			k.esc, k.held[0], k.nheld = 1, b, 1
			continue
		case '\t':
			k.tab = true
			return n, used
		}
		out[n] = b
		n++
	}
	return n, used
}

// isMarkerStart reports whether b is the start of a paste marker.
func isMarkerStart(b []byte) bool {
	for _, m := range pasteMarkers {
		if strings.HasPrefix(m, string(b)) {
			return true
		}
	}
	return false
}

// endsEscape reports whether b ends an escape sequence, as the editor
// reads them: a letter or '~'.
func endsEscape(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '~'
}

// allowTab takes a token for a completion, if there is one.
func (k *keys) allowTab(now time.Time) bool {
	if k.tabAt.IsZero() {
		k.tabTokens = tabBurst
	} else {
		k.tabTokens = min(tabBurst, k.tabTokens+now.Sub(k.tabAt).Seconds()*tabRate)
	}
	k.tabAt = now
	if k.tabTokens < 1 {
		return false
	}
	k.tabTokens--
	return true
}
