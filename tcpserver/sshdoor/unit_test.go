package sshdoor

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"chatbridge/tcpserver"
)

// trickle hands over its bytes a few at a time, as a network may.
type trickle struct {
	b    []byte
	step int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// editor is a line editor reading input through keys, as a session's is.
func editor(input string, step int, complete func(string, int, rune) (string, int, bool)) (*term.Terminal, *keys) {
	k := &keys{r: &trickle{b: []byte(input), step: step}, complete: complete}
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{k, io.Discard}, "> ")
	k.t = t
	return t, k
}

// readLines reads lines until the input ends, in a goroutine, so that an
// editor that spins fails the test instead of hanging it.
func readLines(t *testing.T, ed *term.Terminal) []string {
	t.Helper()
	done := make(chan []string, 1)
	go func() {
		var lines []string
		for {
			line, err := ed.ReadLine()
			if err != nil {
				done <- lines
				return
			}
			lines = append(lines, line)
		}
	}()
	select {
	case lines := <-done:
		return lines
	case <-time.After(5 * time.Second):
		t.Fatal("the editor never finished its input")
		return nil
	}
}

func TestKeysRemovePasteMarkersAndCutEscapes(t *testing.T) {
	for _, step := range []int{1, 2, 5, 7, 4096} {
		input := "\x1b[200~" + strings.Repeat("a", 5000) + "\x1b[201~\r" +
			"\x1b[" + strings.Repeat("9", 300) + "\rnext\r" +
			"\x1b[20x\r" + // not a marker: an unknown key, dropped by the editor
			"left\x1b[D\x1b[DX\r"
		ed, _ := editor(input, step, nil)
		lines := readLines(t, ed)
		if len(lines) < 4 {
			t.Fatalf("step %d: lines %q", step, lines)
		}
		if n := len(lines[0]); n != 4096 {
			t.Errorf("step %d: a pasted line of %d characters, want the editor's bound, 4096", step, n)
		}
		if lines[len(lines)-2] != "next" && lines[len(lines)-3] != "next" {
			t.Errorf("step %d: lines after an endless escape: %q", step, lines[1:])
		}
		if last := lines[len(lines)-1]; last != "leXft" {
			t.Errorf("step %d: arrow keys: %q, want leXft", step, last)
		}
	}
}

func TestKeysRewriteHomeEndAndApplicationCursorKeys(t *testing.T) {
	for _, step := range []int{1, 2, 4096} {
		input := "bc\x1b[1~a\x1b[4~d\r" + // Home and End as screen, tmux and the Linux console send them
			"bc\x1bOHa\x1bOFd\r" + // as xterm does in application mode
			"bc\x1b[7~a\x1b[8~d\r" + // rxvt
			"ab\x1bODX\x1bOC\x1bOCY\r" + // application-mode arrows
			"x\x1bO5\r" + // unknown: the editor drops ESC O, and 5 is typed
			"\x1b[1;5Dz\r" // Ctrl-Left, unknown: dropped whole
		ed, _ := editor(input, step, nil)
		want := []string{"abcd", "abcd", "abcd", "aXbY", "x5", "z"}
		if got := readLines(t, ed); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("step %d: lines %q, want %q", step, got, want)
		}
	}
}

func TestTabAsksForCompletionOnlyOnTabAndAtARate(t *testing.T) {
	calls := 0
	complete := func(line string, pos int, key rune) (string, int, bool) {
		calls++
		if key != '\t' {
			t.Errorf("completion asked for key %q", key)
		}
		return line + "!", pos + 1, true
	}
	ed, _ := editor(strings.Repeat("typing", 100)+strings.Repeat("\t", 50)+"\r", 3, complete)
	lines := readLines(t, ed)
	if calls != tabBurst {
		t.Fatalf("%d completions for 50 Tabs sent at once, want %d", calls, tabBurst)
	}
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "typing"+strings.Repeat("!", tabBurst)) {
		t.Fatalf("lines %q", lines)
	}
	// A Tab in the middle of a packet is handed over alone, the rest after it.
	calls = 0
	ed, _ = editor("ab\tcd\r", 4096, complete)
	if lines := readLines(t, ed); calls != 1 || len(lines) != 1 || lines[0] != "ab!cd" {
		t.Fatalf("calls %d, lines %q", calls, lines)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	var h history
	for i := range 200 {
		h.Add(strings.Repeat("x", i))
	}
	if h.Len() > historyLines || h.bytes > historyBytes {
		t.Fatalf("%d lines, %d bytes", h.Len(), h.bytes)
	}
	if h.At(0) != strings.Repeat("x", 199) {
		t.Fatal("the newest line is not first")
	}
	h.Add("same")
	h.Add("same")
	if h.At(0) != "same" || h.At(1) == "same" {
		t.Fatal("a line typed twice in a row is kept twice")
	}
	h.Add(strings.Repeat("y", historyBytes+1))
	if h.At(0) != "same" {
		t.Fatal("a line bigger than the whole history was kept")
	}
}

// hubEvents has alice, bob and carol do things in a hub and returns what
// dave, in the room with them, was sent.
func hubEvents(t *testing.T, do func(alice, bob, carol *tcpserver.Client)) []*tcpserver.Event {
	t.Helper()
	h := tcpserver.NewHub(tcpserver.HubConfig{MaxPerIP: -1, Rate: -1, AnnounceDelay: -1}, nil)
	var cs []*tcpserver.Client
	for _, n := range []string{"alice", "bob", "carol"} {
		c, err := h.Connect(&recorder{}, tcpserver.ConnectInfo{Nick: n, Addr: "192.0.2.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	dave := &recorder{}
	if _, err := h.Connect(dave, tcpserver.ConnectInfo{Nick: "dave", Addr: "192.0.2.2:1"}); err != nil {
		t.Fatal(err)
	}
	dave.events = nil
	do(cs[0], cs[1], cs[2])
	return dave.events
}

type recorder struct{ events []*tcpserver.Event }

func (r *recorder) Send(ev *tcpserver.Event) { r.events = append(r.events, ev) }
func (r *recorder) Close(string)             {}

func TestRenderColoursNamesAsWholeWords(t *testing.T) {
	c := func(name string) string { return "\x1b[" + palette256.colourOf(name) + "m" + name + colourEnd }
	evs := hubEvents(t, func(alice, bob, carol *tcpserver.Client) {
		bob.Handle([]byte("/nick al"))
		bob.Handle([]byte("al alice al"))
		alice.Handle([]byte("/me waves at al"))
		carol.Handle([]byte("/msg dave psst"))
	})
	want := []string{
		"*** " + c("bob") + " is now known as " + c("al") + "\n",
		"<" + c("al") + "> al alice al\n",
		"* " + c("alice") + " waves at al\n",
		"*" + c("carol") + "* psst\n",
	}
	if len(evs) != len(want) {
		t.Fatalf("events %d, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if got := string(render(nil, ev, style{palette: palette256})); got != want[i] {
			t.Errorf("render = %q\nwant     %q", got, want[i])
		}
		if got, plain := string(render(nil, ev, style{})), strings.ReplaceAll(string(ev.Line()), "\r\n", "\n"); got != plain {
			t.Errorf("without colour: %q, want the telnet line %q", got, plain)
		}
	}

	// Who is here, and a history, each line its own name.
	h := tcpserver.NewHub(tcpserver.HubConfig{MaxPerIP: -1, Rate: -1, AnnounceDelay: -1}, nil)
	for _, n := range []string{"alice", "bob"} {
		cl, _ := h.Connect(&recorder{}, tcpserver.ConnectInfo{Nick: n, Addr: "192.0.2.1:1"})
		cl.Handle([]byte("I am " + n))
	}
	rec := &recorder{}
	h.Connect(rec, tcpserver.ConnectInfo{Nick: "carol", Addr: "192.0.2.1:1"})
	var got string
	for _, ev := range rec.events {
		got += string(render(nil, ev, style{palette: palette256}))
	}
	for _, w := range []string{"<" + c("alice") + "> I am alice\n", "<" + c("bob") + "> I am bob\n", ": " + c("alice") + ", " + c("bob") + ", " + c("carol") + "\n"} {
		if !strings.Contains(got, w) {
			t.Errorf("no %q in\n%q", w, got)
		}
	}
}

func TestRenderWrapsAtTheWindowWidth(t *testing.T) {
	for _, tc := range []struct {
		line  string
		width int
		want  string
	}{
		{"<bob> one two three four five six", 14, "<bob> one two\n  three four\n  five six\n"},
		// A word that does not fit goes to the next row whole, if it fits
		// there; one longer than a row is cut.
		{"<bob> " + strings.Repeat("x", 20), 16, "<bob>\n  xxxxxxxxxxxxxx\n  xxxxxx\n"},
		{"a\tb c", 0, "a       b c\n"},
		{"<bob> a\tb", 8, "<bob> a\nb\n"}, // too narrow to indent
		{"<bob> 漢字漢字漢字漢字", 16, "<bob>\n  漢字漢字漢字漢\n  字\n"},
		{"<bob> short", 80, "<bob> short\n"},
		{"<bob> e\u0301e\u0301e\u0301", 8, "<bob>\ne\u0301e\u0301e\u0301\n"},
	} {
		got := string(appendLine(nil, []byte(tc.line), nil, style{width: tc.width}))
		if got != tc.want {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.line, tc.width, got, tc.want)
		}
		if tc.width == 0 {
			continue
		}
		for _, row := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
			w := 0
			for _, r := range row {
				w += runeWidth(r)
			}
			if w > tc.width {
				t.Errorf("wrap(%q, %d): row %q is %d columns", tc.line, tc.width, row, w)
			}
		}
	}
}

func TestHostKeyIsMadeOnceAndKeptPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "host_key")
	k1, created, err := HostKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	k2, created, err := HostKey(path)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if ssh.FingerprintSHA256(k1.PublicKey()) != ssh.FingerprintSHA256(k2.PublicKey()) {
		t.Fatal("the host key changed between starts")
	}
	if k1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s", k1.PublicKey().Type())
	}

	os.Chmod(path, 0o644)
	if _, _, err := HostKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key others may read: %v", err)
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	if _, _, err := HostKey(garbage); err == nil {
		t.Fatal("garbage taken as a key")
	}
	if _, _, err := HostKey(dir); err == nil {
		t.Fatal("a directory taken as a key")
	}
	if _, _, err := HostKey(filepath.Join(dir, "missing", "key")); err == nil {
		t.Fatal("a key written where there is no directory")
	}
	if _, _, err := HostKey(""); err == nil {
		t.Fatal("no file name accepted")
	}
}
