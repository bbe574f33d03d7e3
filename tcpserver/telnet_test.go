package tcpserver

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// The negotiation a real telnet client sends on Ctrl-C, Ctrl-\ and Ctrl-Z:
// interrupt process (break, suspend), then DO TIMING-MARK.
var (
	ctrlC         = []byte{telnetIAC, 244, telnetIAC, telnetDO, telnetTimingMark}
	ctrlBackslash = []byte{telnetIAC, 243, telnetIAC, telnetDO, telnetTimingMark}
	ctrlZ         = []byte{telnetIAC, 237, telnetIAC, telnetDO, telnetTimingMark}
)

// feedAnswers decodes each chunk with an answering decoder and takes the
// answers after each, as a read of the TCP server does; it returns the
// data and the answers of each read.
func feedAnswers(chunks ...string) (data string, answers []string) {
	d := telnetDecoder{answer: true}
	for _, c := range chunks {
		data += string(d.decode([]byte(c)))
		var a string
		if ev := d.take(); ev != nil {
			a = string(ev.Line())
		}
		answers = append(answers, a)
	}
	return data, answers
}

func TestTelnetAnswers(t *testing.T) {
	const (
		willTM   = "\xff\xfb\x06"
		wontTM   = "\xff\xfc\x06"
		wontEcho = "\xff\xfc\x01"
	)
	tests := []struct {
		name    string
		chunks  []string
		data    string
		answers []string // after each chunk; "" for none
	}{
		{"ctrl-c", []string{string(ctrlC)}, "", []string{willTM}},
		{"ctrl-\\ and ctrl-z", []string{string(ctrlBackslash), string(ctrlZ)}, "", []string{willTM, willTM}},
		{"ctrl-c split across reads", []string{"ab\xff", "\xf4\xff", "\xfd", "\x06cd"}, "abcd", []string{"", "", "", willTM}},
		{"ctrl-c twice in one read: one mark", []string{string(ctrlC) + string(ctrlC)}, "", []string{willTM}},
		{"ctrl-c in each read: a mark each", []string{string(ctrlC), "x", string(ctrlC)}, "x", []string{willTM, "", willTM}},
		{"DO refused with WONT", []string{"\xff\xfd\x01"}, "", []string{wontEcho}},
		{"WILL refused with DONT", []string{"\xff\xfb\x1f"}, "", []string{"\xff\xfe\x1f"}},
		{"an option is refused once", []string{"\xff\xfd\x01", "\xff\xfd\x01\xff\xfd\x01"}, "", []string{wontEcho, ""}},
		{"asked again after DONT", []string{"\xff\xfd\x01", "\xff\xfe\x01", "\xff\xfd\x01"}, "", []string{wontEcho, "", wontEcho}},
		{"WILL asked again after WONT", []string{"\xff\xfb\x03", "\xff\xfb\x03", "\xff\xfc\x03\xff\xfb\x03"}, "", []string{"\xff\xfe\x03", "", "\xff\xfe\x03"}},
		{"DO and DONT and DO in one read: one WONT", []string{"\xff\xfd\x01\xff\xfe\x01\xff\xfd\x01"}, "", []string{wontEcho}},
		{"WONT and DONT are never answered", []string{"\xff\xfc\x01\xff\xfe\x03\xff\xfc\x06\xff\xfe\x06"}, "", []string{""}},
		{"our answers sent back are not answered", []string{"\xff\xfd\x01", wontEcho + "\xff\xfe\x01"}, "", []string{wontEcho, ""}},
		{"DONT TIMING-MARK after our WILL", []string{string(ctrlC), "\xff\xfe\x06", "\xff\xfe\x06"}, "", []string{willTM, wontTM, ""}},
		{"several answers in one read", []string{"\xff\xfd\x01hi\xff\xfb\x18\xff\xfd\x06\xff\xfd\x03"}, "hi", []string{"\xff\xfc\x01\xff\xfc\x03\xff\xfe\x18" + willTM}},
		{"are you there", []string{"a\xff\xf6b"}, "ab", []string{"*** [yes]\r\n"}},
		{"are you there, many times: one answer", []string{"\xff\xf6\xff\xf6\xff\xf6"}, "", []string{"*** [yes]\r\n"}},
		{"IP AO BRK EC EL NOP DM GA SUSP ABORT EOF: nothing", []string{"a\xff\xf4b\xff\xf5c\xff\xf3d\xff\xf7e\xff\xf8f\xff\xf1g\xff\xf2h\xff\xf9i\xff\xedj\xff\xeek\xff\xecl"}, "abcdefghijkl", []string{""}},
		{"IAC IAC is data", []string{"a\xff\xffb"}, "a\xffb", []string{""}},
		{"subnegotiation is not answered", []string{"\xff\xfa\x18\x01\xff\xf0ok", "\xff\xfa\x1f\x00\xff\xff\x00", "\x18\xff\xf0"}, "ok", []string{"", "", ""}},
		{"an option byte of 0xff", []string{"\xff\xfd\xff"}, "", []string{"\xff\xfc\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, answers := feedAnswers(tt.chunks...)
			if data != tt.data {
				t.Errorf("data %q, want %q", data, tt.data)
			}
			if fmt.Sprintf("%q", answers) != fmt.Sprintf("%q", tt.answers) {
				t.Errorf("answers %q, want %q", answers, tt.answers)
			}
		})
	}
}

// TestTelnetNotAnsweredUnlessAsked: a LineReader answers nothing unless its
// transport asked it to (a WebSocket cannot send the answers), and keeps
// nothing for it.
func TestTelnetNotAnsweredUnlessAsked(t *testing.T) {
	r := &LineReader{Max: 100}
	got := feedAll(r, ctrlC, []byte("\xff\xfd\x01\xff\xfb\x18\xff\xf6hi\n"))
	if len(got) != 1 || got[0] != "hi" {
		t.Fatalf("lines %q", got)
	}
	if ev := r.takeTelnetAnswers(); ev != nil || r.telnet.q != nil {
		t.Fatalf("answers %q, state %v", ev.Line(), r.telnet.q)
	}
}

// TestTelnetAnswersBounded: however much a client negotiates, it gets at
// most one refusal per option (until it takes its request back) and one
// answer of each kind per read.
func TestTelnetAnswersBounded(t *testing.T) {
	var d telnetDecoder
	d.answer = true
	// A million DO and WILL requests, for every option, in 4 KiB reads.
	var storm []byte
	for i := range 1 << 20 {
		storm = append(storm, telnetIAC, byte(telnetWILL+2*(i&1)), byte(i>>1))
	}
	out, reads := 0, 0
	for p := storm; len(p) > 0; reads++ {
		n := min(len(p), readBufSize)
		if data := d.decode(bytes.Clone(p[:n])); len(data) != 0 {
			t.Fatalf("data %q from negotiation", data)
		}
		if ev := d.take(); ev != nil {
			out += len(ev.Line())
		}
		p = p[n:]
	}
	// A refusal for each option but TIMING-MARK, WILL and DO alike, and a
	// mark for each read (every read of the storm has a DO TIMING-MARK).
	if want := (2*256-1)*3 + 3*reads; out != want {
		t.Fatalf("%d requests in %d reads got %d bytes of answers, want %d", 1<<20, reads, out, want)
	}

	// Asking and taking back in turn gets one answer per read at most.
	var flip []byte
	for range 100_000 {
		flip = append(flip, telnetIAC, telnetDO, 1, telnetIAC, telnetDONT, 1, telnetIAC, telnetWILL, 1, telnetIAC, telnetWONT, 1)
	}
	out, reads = 0, 0
	for p := flip; len(p) > 0; reads++ {
		n := min(len(p), readBufSize)
		d.decode(bytes.Clone(p[:n]))
		if ev := d.take(); ev != nil {
			out += len(ev.Line())
		}
		p = p[n:]
	}
	if out > 2*3*reads {
		t.Fatalf("%d bytes of answers in %d reads, want at most 6 a read", out, reads)
	}
}

// TestTelnetCtrlCAllocatesNothing: answering Ctrl-C costs no allocation
// once the answering state is made.
func TestTelnetCtrlCAllocatesNothing(t *testing.T) {
	d := telnetDecoder{answer: true}
	d.decode(bytes.Clone(ctrlC))
	d.take()
	buf := make([]byte, len(ctrlC))
	if n := testing.AllocsPerRun(100, func() {
		copy(buf, ctrlC)
		d.decode(buf)
		if d.take() == nil {
			t.Fatal("no answer")
		}
	}); n != 0 {
		t.Fatalf("%v allocations to answer Ctrl-C", n)
	}
}

// TestTelnetTimingMarkAnswered: after telnet's Ctrl-C the server answers
// the timing mark, in order with the member's other output, and lines go
// on arriving. Without the answer telnet throws away everything it
// receives, for good.
func TestTelnetTimingMarkAnswered(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	// The answer follows the reply to the line before it, in one read.
	a.write(append([]byte("/rooms\r\n"), ctrlC...))
	got := readUntil(t, a, []byte{telnetIAC, telnetWILL, telnetTimingMark})
	if !bytes.Contains(got, []byte("rooms: ")) || bytes.IndexByte(got, telnetIAC) != len(got)-3 {
		t.Fatalf("before the mark %q, want the answer to /rooms and nothing else", got)
	}
	b.send("after ctrl-c")
	a.expectExact("<" + b.name + "> after ctrl-c")

	// Refusals too, once each.
	a.write([]byte("\xff\xfd\x01\xff\xfd\x01\xff\xfb\x1f"))
	readUntil(t, a, []byte("\xff\xfc\x01\xff\xfe\x1f"))
	a.write([]byte("\xff\xfd\x01"))
	a.sync()
	b.send("still here")
	if line := a.expect("still here"); strings.IndexByte(line, telnetIAC) >= 0 {
		t.Fatalf("a repeated request answered: %q", line)
	}
}

// readUntil reads c's raw bytes until they end in want, and returns them.
func readUntil(t *testing.T, c *testClient, want []byte) []byte {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var got []byte
	for !bytes.HasSuffix(got, want) {
		ch, err := c.r.ReadByte()
		if err != nil {
			t.Fatalf("waiting for %q: %v; got %q", want, err, got)
		}
		got = append(got, ch)
	}
	return got
}

// TestNoNegotiationUnprompted: the server never starts telnet
// negotiation, so nc and the seed's clients, which send no IAC, never
// receive a 0xFF byte, even from a room where a telnet client negotiates.
func TestNoNegotiationUnprompted(t *testing.T) {
	ts := startServer(t, HubConfig{ChangeBurst: -1}, Config{})
	a := ts.dialRaw(t) // sends no IAC
	all := readUntil(t, a, []byte(" in lobby: "))
	tel := ts.dial(t) // negotiates all along
	all = append(all, readUntil(t, a, []byte(" joined\r\n"))...)
	tel.write(append(append([]byte("\xff\xfd\x01\xff\xfb\x18\xff\xf6"), ctrlC...), "hello\r\n/me waves\r\n"...))
	tel.send("/nick tel", "/join other", "/join lobby")
	tel.write(ctrlZ)
	tel.send("last")
	tel.sync()
	a.send("/nick nc", "/who", "/help", "/msg tel psst", "/nosuch", "plain line")
	tel.expect("<nc> plain line")
	c := ts.dial(t)
	tel.expect(c.name + " (")
	c.conn.Close()
	tel.expect(c.name + " (")
	a.send("/rooms")
	all = append(all, readUntil(t, a, []byte("*** rooms: "))...)
	all = append(all, readUntil(t, a, []byte("\r\n"))...)
	if i := bytes.IndexByte(all, telnetIAC); i >= 0 {
		t.Fatalf("0xFF at %d of %q", i, all)
	}
	for _, want := range []string{"Welcome", "hello", "waves", "is now known as nc", "psst", "is now known as tel", "<tel> last", c.name + " (127.0.0.1:", " left"} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("no %q in %q", want, all)
		}
	}
	// And nothing more is on its way.
	a.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if rest, _ := io.ReadAll(a.r); bytes.IndexByte(rest, telnetIAC) >= 0 {
		t.Fatalf("0xFF in %q", rest)
	}
}
