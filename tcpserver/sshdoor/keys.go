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

// rewrites are the escape sequences the door changes before the editor
// sees them. The brackets a terminal puts around a paste once asked to
// (the door never asks) go: inside them the editor takes keys without its
// bound on the line's length. Home and End as most terminals send them,
// and the cursor keys in application mode, become the forms the editor
// knows, which it would otherwise take for an unknown key and a letter
// (Home as "H" typed).
var rewrites = [...]struct{ from, to string }{
	{"\x1b[200~", ""}, {"\x1b[201~", ""},
	{"\x1b[1~", "\x1b[H"}, {"\x1b[7~", "\x1b[H"}, {"\x1bOH", "\x1b[H"},
	{"\x1b[4~", "\x1b[F"}, {"\x1b[8~", "\x1b[F"}, {"\x1bOF", "\x1b[F"},
	{"\x1bOA", "\x1b[A"}, {"\x1bOB", "\x1b[B"}, {"\x1bOC", "\x1b[C"}, {"\x1bOD", "\x1b[D"},
}

// errEditorFull says the editor's buffer had no room for another byte,
// which the bound on escape sequences should make impossible.
var errEditorFull = errors.New("line editor's input buffer is full")

// keys is what the line editor reads: the session channel's bytes, less
// what would let a client make the editor grow without bound or spin
// (paste brackets, endless escape sequences), with the keys it would
// misread rewritten (see rewrites), and with Tab handed over alone, so
// that the editor asks for completions (which cost a copy of the line per
// key) only on Tab, and only as fast as tabRate.
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
	nheld int  // bytes held back: the start of what may be one of rewrites
	esc   int  // bytes of the escape sequence in progress; 0: none
	tab   bool // a Tab comes next, alone

	tabTokens float64
	tabAt     time.Time
}

// reserve is the room kept at the start of the editor's buffer for bytes
// held back by an earlier Read: filtering in place never writes past the
// byte it reads.
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
// at least reserve bytes before in, up to and including the first Tab,
// which it does not copy but marks as next. It returns the bytes written
// and read.
func (k *keys) filter(out, in []byte) (n, used int) {
	for used < len(in) {
		b := in[used]
		used++
		var tab bool
		if n, tab = k.step(out, n, b); tab {
			return n, used
		}
	}
	return n, used
}

// step takes one byte: it writes what goes to the editor at out[n:] and
// returns the new n, and whether the byte was a Tab to hand over alone.
// Whatever it writes it has read: the bytes it holds back are written
// only when they turn out not to be a rewrite.
func (k *keys) step(out []byte, n int, b byte) (int, bool) {
	switch {
	case k.nheld > 0:
		k.held[k.nheld] = b
		k.nheld++
		held := k.held[:k.nheld]
		prefix := false
		for _, rw := range rewrites {
			if len(rw.from) == len(held) && rw.from == string(held) {
				k.nheld, k.esc = 0, 0
				return n + copy(out[n:], rw.to), false
			}
			prefix = prefix || strings.HasPrefix(rw.from, string(held))
		}
		if prefix {
			return n, false
		}
		// Not one of them: the sequence goes on to the editor, up to
		// where the editor will see it end; what came after that is
		// taken again as it is.
		end := len(held)
		for i := 1; i < len(held); i++ {
			if endsEscape(held[i]) {
				end = i + 1
				break
			}
		}
		var again [len(k.held)]byte
		m := copy(again[:], held[end:])
		k.nheld = 0
		n += copy(out[n:], held[:end])
		if end < len(held) {
			k.esc = 0
		} else {
			k.esc = len(held)
		}
		tab := false
		for _, c := range again[:m] {
			n, tab = k.step(out, n, c) // a Tab can only be the last
		}
		return n, tab
	case k.esc > 0:
		k.esc++
		switch {
		case endsEscape(b):
			k.esc = 0
		case k.esc >= maxEscape:
			b, k.esc = '~', 0 // ends it where the editor will see it end
		}
		out[n] = b
		return n + 1, false
	case b == 0x1b:
		k.esc, k.held[0], k.nheld = 1, b, 1
		return n, false
	case b == '\t':
		k.tab = true
		return n, true
	}
	out[n] = b
	return n + 1, false
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
