package tcpserver

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// feedAll runs the reader over chunks and returns the lines it emits, with
// "!TOOLONG" standing for a too-long line.
func feedAll(r *LineReader, chunks ...[]byte) []string {
	var out []string
	for _, c := range chunks {
		r.Feed(bytes.Clone(c), func(line []byte, tooLong bool) {
			if tooLong {
				out = append(out, "!TOOLONG")
				return
			}
			out = append(out, string(line))
		})
	}
	return out
}

func TestLineReader(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		chunks []string
		want   []string
	}{
		{"lf", 10, []string{"a\nb\n"}, []string{"a", "b"}},
		{"crlf", 10, []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"lone cr", 10, []string{"a\rb\r"}, []string{"a", "b"}},
		{"crlf split across reads", 10, []string{"a\r", "\nb\n"}, []string{"a", "b"}},
		{"cr then cr is an empty line", 10, []string{"a\r\rb\n"}, []string{"a", "", "b"}},
		{"line split across reads", 10, []string{"he", "ll", "o\n"}, []string{"hello"}},
		{"no end yet", 10, []string{"partial"}, nil},
		{"exactly max", 5, []string{"12345\n"}, []string{"12345"}},
		{"over max in one read", 5, []string{"123456\nok\n"}, []string{"!TOOLONG", "ok"}},
		{"over max across reads", 5, []string{"123", "456", "789\nok\n"}, []string{"!TOOLONG", "ok"}},
		{"over max reported once", 5, []string{"123456", "7890", "abc", "def\r\nok\r\n"}, []string{"!TOOLONG", "ok"}},
		{"max reached by partial plus end", 5, []string{"123", "456\n"}, []string{"!TOOLONG"}},
		{"telnet stripped before length", 5, []string{"\xff\xfb\x01\xff\xfd\x03abcde\n"}, []string{"abcde"}},
		{"telnet split across reads", 10, []string{"a\xff", "\xfb", "\x01b\xff\xfa", "xx\xff", "\xf0c\n"}, []string{"abc"}},
		{"escaped iac", 10, []string{"\xff\xff\n"}, []string{"\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &LineReader{Max: tt.max}
			var chunks [][]byte
			for _, c := range tt.chunks {
				chunks = append(chunks, []byte(c))
			}
			if got := feedAll(r, chunks...); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLineReaderHoldsAtMostMax(t *testing.T) {
	r := &LineReader{Max: 4096}
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	tooLong := 0
	for range 1600 { // 100 MiB, no newline
		r.Feed(chunk, func(line []byte, tl bool) {
			if tl {
				tooLong++
			}
		})
		if cap(r.partial) > 4096 {
			t.Fatalf("partial grew to %d bytes", cap(r.partial))
		}
	}
	if tooLong != 1 {
		t.Fatalf("too long reported %d times, want 1", tooLong)
	}
	if got := feedAll(r, []byte("tail\nnext\n")); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("after the long line got %q", got)
	}
}

func TestCleanLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"trailing space  \t", "trailing space"},
		{"  leading kept", "  leading kept"},
		{"\x1b[31mred\x1b[0m", "red"},
		// Escape sequences go whole: what a telnet user's keys send, and
		// what would move a cursor or set a title.
		{"abc\x1b[DX", "abcX"},
		{"up\x1b[A down\x1b[B right\x1b[C", "up down right"},
		{"application mode \x1bOA\x1bOD!", "application mode !"},
		{"home\x1b[1~ end\x1b[4~ f5\x1b[15~ f12\x1b[24~", "home end f5 f12"},
		{"ctrl-right \x1b[1;5C shift-f3 \x1b[1;2R", "ctrl-right  shift-f3"},
		{"linux console f1 \x1b[[A f5 \x1b[[E", "linux console f1  f5"},
		{"private modes \x1b[?1049h\x1b[?25l gone", "private modes  gone"},
		{"cursor style \x1b[2 q gone", "cursor style  gone"},
		{"bracketed paste \x1b[200~pasted\x1b[201~", "bracketed paste pasted"},
		{"clear \x1b[2J\x1b[H screen", "clear  screen"},
		{"title \x1b]0;pwned\x07 bell", "title  bell"},
		{"title st \x1b]2;pwned\x1b\\ done", "title st  done"},
		{"hyperlink \x1b]8;;http://x.example/\x1b\\text\x1b]8;;\x1b\\", "hyperlink text"},
		{"title unterminated \x1b]0;pwned title", "title unterminated"},
		{"title ended by a new escape \x1b]0;t\x1b[31mred", "title ended by a new escape red"},
		{"title in utf-8 \x1b]0;titré ✓\x07ok", "title in utf-8 ok"},
		{"charset \x1b(B ok \x1b#8", "charset  ok"},
		{"alt-x \x1bx alt-1 \x1b1 reset \x1bc", "alt-x  alt-1  reset"},
		{"esc at the end \x1b", "esc at the end"},
		{"csi at the end \x1b[1;", "csi at the end"},
		{"esc before a letter that is not ascii \x1bé", "esc before a letter that is not ascii é"},
		{"esc esc \x1b\x1b[D!", "esc esc !"},
		{"esc tab \x1b\tx", "esc tab \tx"},
		{"csi cut by a control \x1b[1\x07m", "csi cut by a control m"},
		{"c1 csi \u009b31mred", "c1 csi red"},
		{"c1 osc \u009d0;title\u009c after", "c1 osc  after"},
		{"c1 ss3 \u008fA!", "c1 ss3 !"},
		{"marks count across an escape e\u0301\x1b[D\u0302\u0303\u0304", "marks count across an escape e\u0301\u0302\u0303"},
		{"bell\x07", "bell"},
		{"nul\x00", "nul"},
		{"del\x7f", "del"},
		{"c1\u0085\u009b", "c1"},
		{"tab\there", "tab\there"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{"truncated \xe2\x9c", "truncated \uFFFD\uFFFD"},
		{"rtl \u202eevil\u202c \u2066iso\u2069", "rtl evil iso"},
		{"emoji 🎉 ok", "emoji 🎉 ok"},
		{"zero\u200bwidth\u200c non\u200djoiners", "zerowidth nonjoiners"},
		{"word\u2060joiner, invisible\u2061\u2062\u2063\u2064 operators", "wordjoiner, invisible operators"},
		{"\ufeffbyte order mark", "byte order mark"},
		{"marks \u200eltr\u200f rtl \u061carabic", "marks ltr rtl arabic"},
		{"line\u2028and\u2029paragraph", "lineandparagraph"},
		{"hangul \u3164\u115f\u1160\uffa0fillers", "hangul fillers"},
		{"tags \U000e0001\U000e0041\U000e007f\U000e0000 gone", "tags  gone"},
		{"soft\u00adhyphen", "softhyphen"},
		{"only invisible at the end \u200b\u200b", "only invisible at the end"},
		{"ad\u200bmin", "admin"},
		// A zero width joiner stays where it joins two pictographs.
		{"coder 👩\u200d💻", "coder 👩\u200d💻"},
		{"family 👨\u200d👩\u200d👧", "family 👨\u200d👩\u200d👧"},
		{"rainbow 🏳\ufe0f\u200d🌈", "rainbow 🏳\ufe0f\u200d🌈"},
		{"heart on fire ❤\ufe0f\u200d🔥", "heart on fire ❤\ufe0f\u200d🔥"},
		{"runner 🏃\u200d♀\ufe0f", "runner 🏃\u200d♀\ufe0f"},
		{"toned 👩🏽\u200d💻", "toned 👩🏽\u200d💻"},
		{"joiner between letters a\u200db", "joiner between letters ab"},
		{"joiner after an emoji 👩\u200dx", "joiner after an emoji 👩x"},
		{"joiner at the end 👩\u200d", "joiner at the end 👩"},
		{"two joiners 👩\u200d\u200d💻", "two joiners 👩\u200d💻"},
		{"the flag of England 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", "the flag of England 🏴"},
		{"variation selectors stay: ☺\ufe0f 葛\U000e0100", "variation selectors stay: ☺\ufe0f 葛\U000e0100"},
		// At most three combining marks on a character.
		{"zalgo z\u0300\u0301\u0302\u0303\u0304\u0305a\u0306", "zalgo z\u0300\u0301\u0302a\u0306"},
		{"vietnamese ệ Việt", "vietnamese ệ Việt"},
		{"decomposed vie\u0323\u0302t", "decomposed vie\u0323\u0302t"},
		{"a fourth mark goes, even cantillation \u05e9\u05c1\u05b8\u05bc\u0591", "a fourth mark goes, even cantillation \u05e9\u05c1\u05b8\u05bc"},
		{"marks first \u0301\u0301\u0301\u0301x", "marks first \u0301\u0301\u0301x"},
		{"selectors do not count e\u0301\ufe0f\u0302\u0303\u0304", "selectors do not count e\u0301\ufe0f\u0302\u0303"},
	}
	for _, tt := range tests {
		if got := CleanLine([]byte(tt.in)); got != tt.want {
			t.Errorf("CleanLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCleanLineRemovesEveryFormatCharacter: every format character (Cf)
// is invisible, and none survives, whatever is around it.
func TestCleanLineRemovesEveryFormatCharacter(t *testing.T) {
	n := 0
	for _, rng := range unicode.Cf.R16 {
		for r := rune(rng.Lo); r <= rune(rng.Hi); r += rune(rng.Stride) {
			n += checkRemoved(t, r)
		}
	}
	for _, rng := range unicode.Cf.R32 {
		for r := rune(rng.Lo); r <= rune(rng.Hi); r += rune(rng.Stride) {
			n += checkRemoved(t, r)
		}
	}
	if n < 100 {
		t.Fatalf("only %d format characters checked", n)
	}
}

func checkRemoved(t *testing.T, r rune) int {
	t.Helper()
	in := "a" + string(r) + "b"
	if r == zwj {
		in = "👩" + string(r) + "b" // not between two pictographs
	}
	if got, want := CleanLine([]byte(in)), strings.Replace(in, string(r), "", 1); got != want {
		t.Errorf("CleanLine(%q) = %q, want %q", in, got, want)
	}
	return 1
}

// A clean ASCII line, nearly every line, costs nothing but the string it
// becomes.
func TestCleanLineASCIIAllocatesOnlyItsString(t *testing.T) {
	line := []byte("hello, everybody: a line of typical length")
	if n := testing.AllocsPerRun(100, func() { CleanLine(line) }); n != 1 {
		t.Fatalf("%v allocations for a clean ASCII line, want 1", n)
	}
}

// BenchmarkCleanLine: a clean ASCII line, the common case, must cost
// nothing but the string it returns; the others take the slow path.
func BenchmarkCleanLine(b *testing.B) {
	for _, tt := range []struct{ name, line string }{
		{"ascii", "hello, everybody: a line of typical length"},
		{"accents", "héllo, tout le monde : une ligne de longueur typique"},
		{"emoji", "hello 👩\u200d💻 and 👍🏽, a line of typical length"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			line := []byte(tt.line)
			b.ReportAllocs()
			for b.Loop() {
				CleanLine(line)
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in        string
		name, arg string
		ok        bool
	}{
		{"/nick bob", "nick", "bob", true},
		{"/NICK  bob  ", "nick", "bob", true},
		{"/who", "who", "", true},
		{"/msg bob hi there", "msg", "bob hi there", true},
		{"//not a command", "", "", false},
		{"/", "", "", false},
		{"/ spaced", "", "", false},
		{"plain", "", "", false},
	}
	for _, tt := range tests {
		name, arg, ok := ParseCommand(tt.in)
		if name != tt.name || arg != tt.arg || ok != tt.ok {
			t.Errorf("ParseCommand(%q) = %q, %q, %v; want %q, %q, %v", tt.in, name, arg, ok, tt.name, tt.arg, tt.ok)
		}
	}
}

func TestValidNickAndRoom(t *testing.T) {
	for _, ok := range []string{"a", "Bob", "guest-1234", "x_y", strings.Repeat("n", 24)} {
		if err := ValidNick(ok); err != nil {
			t.Errorf("ValidNick(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "émile", "a.b", "<b>", strings.Repeat("n", 25)} {
		if err := ValidNick(bad); err == nil {
			t.Errorf("ValidNick(%q) = nil", bad)
		}
	}
	if got, err := RoomName("#Dev"); err != nil || got != "dev" {
		t.Errorf("RoomName(#Dev) = %q, %v", got, err)
	}
	if _, err := RoomName("a/b"); err == nil {
		t.Error("RoomName(a/b) = nil error")
	}
}

// FuzzLineReader checks that however the input is cut into reads, the
// reader emits the same lines, none longer than Max and none with a line
// end or a telnet command in it.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("hello\r\nworld\n"), uint8(3))
	f.Add([]byte("\xff\xfd\x03\xff\xfb\x18a\xff\xff\r\x00b\r"), uint8(1))
	f.Add([]byte("\xff\xfa\x18\x00xterm\xff\xf0ok\n"), uint8(5))
	f.Add(bytes.Repeat([]byte("x"), 100), uint8(7))
	f.Add([]byte("abc\x1b[D\xff\xf4\xff\xfd\x06X\r\n\xff\xfd\x01\xff\xf6"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		const max = 16
		wr, sr := &LineReader{Max: max}, &LineReader{Max: max}
		if cut&0x80 != 0 { // as the TCP server reads: answering
			wr.answerTelnet()
			sr.answerTelnet()
		}
		whole := feedAll(wr, in)
		var chunks [][]byte
		step := int(cut%17) + 1
		for i := 0; i < len(in); i += step {
			chunks = append(chunks, in[i:min(i+step, len(in))])
		}
		split := feedAll(sr, chunks...)
		if !slices.Equal(whole, split) {
			t.Fatalf("whole %q != split by %d %q", whole, step, split)
		}
		wa, sa := wr.takeTelnetAnswers(), sr.takeTelnetAnswers()
		if (wa == nil) != (sa == nil) || wa != nil && !bytes.Equal(wa.Line(), sa.Line()) {
			t.Fatalf("answers whole %v != split %v", wa, sa)
		}
		if wa != nil && cut&0x80 == 0 {
			t.Fatalf("answers %q from a reader not asked to answer", wa.Line())
		}
		for _, l := range whole {
			if l == "!TOOLONG" {
				continue
			}
			if len(l) > max {
				t.Fatalf("line %q longer than %d", l, max)
			}
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("line %q has a line end", l)
			}
		}
	})
}

// FuzzTelnetDecode checks the decoder is the same whole or split, data and
// answers, never grows its input, leaves no IAC that was not escaped, and
// answers only with refusals, WILL TIMING-MARK and the AYT line, at most
// one of each per option.
func FuzzTelnetDecode(f *testing.F) {
	f.Add([]byte("\xff\xfd\x03plain\xff\xff"), uint8(2))
	f.Add([]byte("\xff\xfa\x18\x00xterm\xff\xf0\xff\xf1"), uint8(1))
	f.Add([]byte("a\xff\xf4\xff\xfd\x06b\xff\xfe\x06\xff\xf6"), uint8(3))
	f.Add([]byte("\xff\xfd\x01\xff\xfe\x01\xff\xfd\x01\xff\xfb\x1f\xff\xfc\x1f\xff\xfb\x1f\xff\xfd\xff"), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		d := telnetDecoder{answer: true}
		whole := bytes.Clone(d.decode(bytes.Clone(in)))
		if len(whole) > len(in) {
			t.Fatalf("decode grew %d bytes to %d", len(in), len(whole))
		}
		var answers []byte
		if ev := d.take(); ev != nil {
			answers = ev.Line()
		}
		e := telnetDecoder{answer: true}
		var split []byte
		step := int(cut%7) + 1
		for i := 0; i < len(in); i += step {
			split = append(split, e.decode(bytes.Clone(in[i:min(i+step, len(in))]))...)
		}
		if !bytes.Equal(whole, split) {
			t.Fatalf("whole %q != split %q", whole, split)
		}
		var splitAnswers []byte
		if ev := e.take(); ev != nil {
			splitAnswers = ev.Line()
		}
		if !bytes.Equal(answers, splitAnswers) {
			t.Fatalf("answers whole %q != split %q", answers, splitAnswers)
		}
		if n, m := bytes.Count(whole, []byte{0xff}), bytes.Count(in, []byte{0xff, 0xff}); n > m {
			t.Fatalf("%d IAC bytes out, only %d escaped in", n, m)
		}
		seen := map[[2]byte]bool{}
		rest := bytes.TrimSuffix(answers, []byte(aytAnswer))
		for ; len(rest) >= 3 && rest[0] == telnetIAC; rest = rest[3:] {
			verb, opt := rest[1], rest[2]
			if verb != telnetWONT && verb != telnetDONT && !(verb == telnetWILL && opt == telnetTimingMark) || seen[[2]byte{verb, opt}] {
				t.Fatalf("answers %q to %q", answers, in)
			}
			seen[[2]byte{verb, opt}] = true
		}
		if len(rest) != 0 {
			t.Fatalf("answers %q to %q: %q is not an answer", answers, in, rest)
		}
	})
}

// FuzzCleanLine checks the cleaned text is valid UTF-8 with no control
// character but tab, no character that hides text, no zero width joiner
// but between two pictographs, no more than maxMarks combining marks on a
// character, and that cleaning twice changes nothing.
func FuzzCleanLine(f *testing.F) {
	f.Add([]byte("\x1b[2Jhi\x07\xff"))
	f.Add([]byte("\u202eabc\t "))
	f.Add([]byte("a\u200bb\u200cc\u200dd\u2060e\ufeff\u200e\u200f\u061c\u2028\u2029"))
	f.Add([]byte("\u3164\u115f\u1160\uffa0 \U000e0041\U000e007f \u00ad"))
	f.Add([]byte("👩\u200d💻 👩\u200d\u200d💻 👩\u200d \u200d💻 ❤\ufe0f\u200d🔥 👩🏽\u200d💻"))
	f.Add([]byte("z\u0300\u0301\u0302\u0303\u0304\ufe0f\u0305 \u0301\u0301\u0301\u0301"))
	f.Add([]byte("👩\u0301\u200d💻 \u200d\u200d \xff\u200d🎉"))
	f.Add([]byte("abc\x1b[DX \x1bOA \x1b[1;5C \x1b[[A \x1b[200~p\x1b[201~"))
	f.Add([]byte("\x1b]0;title\x07 \x1b]2;t\x1b\\ \x1b]8;;u\u009c \x1b]0;t\x1b[31m \x1b]unterminated"))
	f.Add([]byte("\x1b(B \x1bx \x1b\x1b[D \x1b\t \x1b[1\x07m \u009b31m \u008fA e\u0301\x1b[D\u0302\u0303\u0304 \x1b"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := CleanLine(in)
		if !utf8.ValidString(out) {
			t.Fatalf("CleanLine(%q) = %q, not UTF-8", in, out)
		}
		rs := []rune(out)
		marks := 0
		for i, r := range rs {
			switch {
			case (r < 0x20 && r != '\t') || (r >= 0x7f && r < 0xa0):
				t.Fatalf("CleanLine(%q) kept control %U", in, r)
			case r == zwj:
				prev := i - 1
				for prev >= 0 && variationSelector(rs[prev]) {
					prev--
				}
				if prev < 0 || !pictographic(rs[prev]) || i+1 == len(rs) || !pictographic(rs[i+1]) {
					t.Fatalf("CleanLine(%q) = %q kept a joiner not between pictographs", in, out)
				}
			case hidden(r), unicode.Is(unicode.Cf, r), r == 0x2028, r == 0x2029, r >= 0xe0000 && r <= 0xe007f:
				t.Fatalf("CleanLine(%q) kept hidden %U", in, r)
			case variationSelector(r):
			case unicode.In(r, unicode.Mn, unicode.Me):
				if marks++; marks > maxMarks {
					t.Fatalf("CleanLine(%q) = %q kept more than %d marks on a character", in, out, maxMarks)
				}
			default:
				marks = 0
			}
		}
		if again := CleanLine([]byte(out)); again != out {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
		// A whole escape sequence after plain text leaves nothing behind,
		// whatever follows it.
		cut := 0
		for cut < len(in) && in[cut] >= 0x20 && in[cut] < 0x7f {
			cut++
		}
		cut /= 2
		plain := CleanLine(slices.Concat(in[:cut], in[cut:]))
		for _, seq := range []string{"\x1b[D", "\x1b[1;31m", "\x1b[?25l", "\x1b]0;title\x07", "\x1b]2;t\x1b\\", "\x1bOA", "\x1b(B", "\x1bx", "\u009b2J", "\x1b[[A"} {
			if got := CleanLine(slices.Concat(in[:cut], []byte(seq), in[cut:])); got != plain {
				t.Fatalf("%q with %q at %d cleaned to %q, without it %q", in, seq, cut, got, plain)
			}
		}
	})
}

// FuzzParseCommand checks commands are lower case and have no outer space.
func FuzzParseCommand(f *testing.F) {
	f.Add("/nick bob")
	f.Add("//x")
	f.Fuzz(func(t *testing.T, in string) {
		name, arg, ok := ParseCommand(in)
		if !ok {
			return
		}
		if name == "" || name != strings.ToLower(name) || strings.Contains(name, " ") {
			t.Fatalf("ParseCommand(%q) name %q", in, name)
		}
		if arg != strings.TrimSpace(arg) {
			t.Fatalf("ParseCommand(%q) arg %q", in, arg)
		}
	})
}

// ValidNick and RoomName accept exactly 1 to 24 (32 for rooms) ASCII
// letters, digits, '-' and '_', and never panic.
func FuzzValidNick(f *testing.F) {
	for _, s := range []string{"alice", "guest-4821", "a_b", "", "x y", "\x1b[31m", "é", strings.Repeat("a", 25), "#dev"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plain := s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
		if got := ValidNick(s) == nil; got != (plain && len(s) <= MaxNickLen) {
			t.Fatalf("ValidNick(%q) ok = %v", s, got)
		}
		room, err := RoomName(s)
		bare := strings.TrimPrefix(s, "#")
		plainRoom := bare != "" && strings.Trim(bare, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
		if (err == nil) != (plainRoom && len(bare) <= MaxRoomLen) {
			t.Fatalf("RoomName(%q) = %q, %v", s, room, err)
		}
		if err == nil && room != strings.ToLower(bare) {
			t.Fatalf("RoomName(%q) = %q, want %q", s, room, strings.ToLower(bare))
		}
	})
}
