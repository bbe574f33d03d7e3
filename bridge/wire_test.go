package bridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// A wireConn read through a small bufio.Reader, as the library reads it,
// gives back the stream exactly, read-ahead or not, and then its end.
func TestWireReadAheadKeepsTheStream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var want bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	sent := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			sent <- err
			return
		}
		// In pieces, so that reads find sometimes a little, sometimes a lot.
		b := want.Bytes()
		for len(b) > 0 {
			n := min(len(b), 1+len(b)%7000)
			if _, err := c.Write(b[:n]); err != nil {
				sent <- err
				return
			}
			b = b[n:]
		}
		sent <- c.Close()
	}()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pool := &sync.Pool{New: func() any { b := make([]byte, aheadSize); return &b }}
	w := &wireConn{Conn: nc, aheadPool: pool, raw: tcpserver.RawConnOf(nc)}
	if w.raw == nil {
		t.Skip("no raw connection on this system: nothing is read ahead")
	}
	got, err := io.ReadAll(bufio.NewReaderSize(w, connReadBuf))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %d bytes, want %d; the stream changed", len(got), want.Len())
	}
	if w.ahead != nil || len(w.early) > 0 {
		t.Fatal("a read-ahead buffer is still held after the end")
	}
}

// Frames a browser sends faster than the server reads them may be said as
// one batch; telnet users still get every line, in order, once.
func TestFastWebSocketSenderArrivesWhole(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: -1}, Config{})
	tel := st.telnet(t)
	tel.send("/nick telly")
	tel.expect("is now known as telly")
	w := st.plain(t, "nick=fast")
	tel.expect("*** fast joined")

	const n = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := w.c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	tel.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		line, err := tel.r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d lines: %v", i, err)
		}
		if want := fmt.Sprintf("<fast> m%d", i); strings.TrimRight(line, "\r\n") != want {
			t.Fatalf("line %d = %q, want %q", i, line, want)
		}
	}
}

// frame builds a WebSocket frame header for a payload of n bytes, then the
// payload.
func frame(n int, masked bool) []byte {
	b := []byte{0x81}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if masked {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, make([]byte, n)...)
}

// The counter is at a boundary exactly where a frame ends, whatever the
// sizes and however the bytes are cut.
func TestFrameCounterFindsFrameEnds(t *testing.T) {
	var stream []byte
	ends := map[int]bool{0: true}
	for _, f := range [][]byte{frame(0, true), frame(5, true), frame(125, false), frame(126, true), frame(300, true), frame(70000, true), frame(2, false)} {
		stream = append(stream, f...)
		ends[len(stream)] = true
	}
	var f frameCounter
	for i := range stream {
		if f.atBoundary() != ends[i] {
			t.Fatalf("after %d bytes: boundary %v, want %v", i, f.atBoundary(), ends[i])
		}
		f.feed(stream[i : i+1])
	}
	if !f.atBoundary() {
		t.Fatal("not at a boundary after the last frame")
	}
}

// Feeding in two pieces ends in the same state as feeding at once, for
// any bytes at all and any limit; the counter takes everything unless a
// header went over the limit, and no message it let through is longer;
// endsMessage peeks without changing anything.
func FuzzFrameCounter(f *testing.F) {
	f.Add(frame(5, true), uint16(3), uint16(0))
	f.Add(frame(200, true), uint16(2), uint16(100))
	f.Add(append(frame(70000, false)[:20], 0xff, 0xff), uint16(11), uint16(0))
	// A message in fragments with a ping between, and one over the limit.
	f.Add(slices.Concat(clientFrame(opText, []byte("abc"), -1), clientFrame(finBit|opPing, nil, -1),
		clientFrame(finBit|opCont, []byte("de"), -1)), uint16(9), uint16(5))
	f.Add(slices.Concat(clientFrame(opText, []byte("abc"), -1), clientFrame(finBit|opCont, []byte("de"), -1),
		clientFrame(finBit|opBinary, nil, 1<<40)), uint16(4), uint16(4))
	f.Add(slices.Concat(clientFrame(finBit|opText, nil, -1), clientFrame(finBit|opClose, closePayload(1000, "\xff"), -1)), uint16(1), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, cut, limit uint16) {
		k := int(cut) % (len(data) + 1)
		whole := frameCounter{limit: uint64(limit)}
		split := whole
		before := whole
		peek := whole.endsMessage(data)
		if whole != before {
			t.Fatal("endsMessage changed the counter")
		}
		took := whole.feed(data)
		tookSplit := split.feed(data[:k]) + split.feed(data[k:])
		if whole != split || took != tookSplit {
			t.Fatalf("whole %+v took %d, split at %d %+v took %d", whole, took, k, split, tookSplit)
		}
		if took < len(data) && !whole.over {
			t.Fatalf("took %d of %d bytes, not over the limit", took, len(data))
		}
		if limit > 0 && !whole.over && whole.msgLen > uint64(limit) {
			t.Fatalf("message of %d bytes let through, limit %d", whole.msgLen, limit)
		}
		if peek != (whole.ended > 0) {
			t.Fatalf("endsMessage %v, but %d messages ended", peek, whole.ended)
		}
	})
}

// The counter counts the data messages that end, whatever control frames
// come between their fragments, and stops at the header that takes one
// over the limit, with none of its payload taken.
func TestFrameCounterFollowsMessages(t *testing.T) {
	x := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	stream := slices.Concat(
		clientFrame(finBit|opText, x(10), -1),   // message 1
		clientFrame(finBit|opPing, x(3), -1),    // control, alone
		clientFrame(opText, x(40), -1),          // message 2 begins
		clientFrame(finBit|opPong, nil, -1),     // control, between fragments
		clientFrame(opCont, x(30), -1),          //
		clientFrame(finBit|opCont, nil, -1),     // message 2 ends: 70 bytes
		clientFrame(finBit|opBinary, nil, -1),   // message 3, empty
		clientFrame(finBit|opClose, x(125), -1), // control frames do not count toward the limit
	)
	f := frameCounter{limit: 70}
	for i := range stream {
		if n := f.feed(stream[i : i+1]); n != 1 {
			t.Fatalf("byte %d not taken", i)
		}
	}
	if f.ended != 3 || f.over || !f.atBoundary() {
		t.Fatalf("after three messages: %+v", f)
	}
	over := slices.Concat(clientFrame(opText, x(50), -1), clientFrame(finBit|opCont, x(21), -1))
	head := len(over) - 21 // the second header's end
	if n := f.feed(over); n != head || !f.over {
		t.Fatalf("took %d of the 71-byte message, want %d up to its second header; over %v", n, head, f.over)
	}
	if n := f.feed(x(5)); n != 0 || f.ended != 3 {
		t.Fatalf("took %d after going over; %d messages", n, f.ended)
	}
}

// The server writes data frames itself (wireConn.gatherFrame): a client
// library must read every length form of the header, 7-bit, 16-bit and
// 64-bit, whole and in order.
func TestFramesOfEveryLengthForm(t *testing.T) {
	st := start(t, tcpserver.HubConfig{MaxLine: 80 << 10, Rate: 1000, Burst: 1000}, Config{})
	w := st.plain(t, "")
	w.c.SetReadLimit(-1)
	tc := st.telnet(t)
	w.expect(tc.name + " (")
	for _, n := range []int{1, 100, 125 - len("<> ") - len(tc.name), 126, 300, 0xffff - len("<> ") - len(tc.name), 0xffff, 70 << 10} {
		text := strings.Repeat(string(rune('a'+n%26)), n)
		tc.send(text)
		if got, want := w.read(), "<"+tc.name+"> "+text; got != want {
			t.Fatalf("line of %d: got a frame of %d bytes, want %d", n, len(got), len(want))
		}
	}
}

// A JSON client gets what one wake-up of its writer found queued in one
// frame: a lone event as itself, several as an array, in order.
func TestJSONBatchIsOneFrameOfAnArray(t *testing.T) {
	events := []*tcpserver.Event{
		{Kind: tcpserver.KindMessage, Room: "lobby", From: "ada", Text: "one"},
		{Kind: tcpserver.KindAction, Room: "lobby", From: "bob", Text: "waves"},
		{Kind: tcpserver.KindSystem, Text: "three"},
	}
	for _, tc := range []struct {
		batch []*tcpserver.Event
		want  string
	}{
		{events[:1], string(events[0].JSON())},
		{events, "[" + string(events[0].JSON()) + "," + string(events[1].JSON()) + "," + string(events[2].JSON()) + "]"},
	} {
		server, client := net.Pipe()
		pool := &sync.Pool{New: func() any { return new([]byte) }}
		c := &wsConn{json: true, wire: &wireConn{Conn: server, pool: pool, deadline: tcpserver.WriteDeadline{Timeout: time.Second}}}
		done := make(chan error, 1)
		go func() { done <- c.WriteEvents(tc.batch) }()
		typ, payload := readFrame(t, client)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		server.Close()
		if rest, _ := io.ReadAll(client); len(rest) != 0 {
			t.Fatalf("%d bytes after the frame", len(rest))
		}
		if typ != finText || string(payload) != tc.want {
			t.Fatalf("frame %#x %s, want text %s", typ, payload, tc.want)
		}
	}
}

// A JSON client that fell behind gets what was queued as several frames,
// each an array (or a lone event) of at most 64 KiB, in order; an event
// bigger than that alone is a frame of its own.
func TestJSONBatchFramesAreAtMost64KiB(t *testing.T) {
	var batch []*tcpserver.Event
	for i := range 300 {
		text := fmt.Sprintf("%d %s", i, strings.Repeat("x", 1000))
		if i == 150 {
			text = fmt.Sprintf("%d %s", i, strings.Repeat("y", 100<<10))
		}
		batch = append(batch, &tcpserver.Event{Kind: tcpserver.KindMessage, Room: "lobby", From: "ada", Text: text})
	}
	server, client := net.Pipe()
	defer client.Close()
	pool := &sync.Pool{New: func() any { return new([]byte) }}
	c := &wsConn{json: true, wire: &wireConn{Conn: server, pool: pool, deadline: tcpserver.WriteDeadline{Timeout: 5 * time.Second}}}
	done := make(chan error, 1)
	go func() {
		done <- c.WriteEvents(batch)
		server.Close()
	}()
	var got []event
	frames := 0
	for len(got) < len(batch) {
		typ, payload := readFrame(t, client)
		frames++
		if typ != finText {
			t.Fatalf("frame %d: first byte %#x", frames, typ)
		}
		var evs []event
		if payload[0] == '[' {
			if err := json.Unmarshal(payload, &evs); err != nil || len(evs) < 2 {
				t.Fatalf("frame %d: an array of %d events: %v", frames, len(evs), err)
			}
		} else {
			evs = make([]event, 1)
			if err := json.Unmarshal(payload, &evs[0]); err != nil {
				t.Fatalf("frame %d: %v", frames, err)
			}
		}
		if len(payload) > 64<<10 && len(evs) > 1 {
			t.Fatalf("frame %d: %d events in %d bytes", frames, len(evs), len(payload))
		}
		got = append(got, evs...)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(client); len(rest) != 0 {
		t.Fatalf("%d bytes after the events", len(rest))
	}
	for i, ev := range got {
		if ev.Text != batch[i].Text {
			t.Fatalf("event %d is %.20q, want %.20q", i, ev.Text, batch[i].Text)
		}
	}
	// 149 events of about 1.1 KB, the big one, 149 more: at least 3+1+3.
	if frames < 7 {
		t.Fatalf("%d frames for %d events", frames, len(batch))
	}
}

// readFrame reads one unmasked frame as the server writes it.
func readFrame(t *testing.T, r io.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(r, b[:])
		n = uint64(b[0])<<8 | uint64(b[1])
	case 127:
		var b [8]byte
		io.ReadFull(r, b[:])
		n = 0
		for _, x := range b {
			n = n<<8 | uint64(x)
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	return h[0], p
}

// writeRecorder is a connection that keeps what is written to it, and
// the size and first byte's address of each write.
type writeRecorder struct {
	net.Conn
	got    bytes.Buffer
	writes []recordedWrite
}

type recordedWrite struct {
	n     int
	first *byte
}

func (r *writeRecorder) Write(p []byte) (int, error) {
	if len(p) > 0 {
		r.writes = append(r.writes, recordedWrite{len(p), &p[0]})
	}
	return r.got.Write(p)
}

func (r *writeRecorder) SetWriteDeadline(time.Time) error { return nil }

// eventSink is a member that keeps what it is sent.
type eventSink struct {
	mu     sync.Mutex
	events []*tcpserver.Event
}

func (m *eventSink) Send(ev *tcpserver.Event) {
	m.mu.Lock()
	m.events = append(m.events, ev)
	m.mu.Unlock()
}
func (m *eventSink) Close(string) {}

// saidEvents has a member say each of texts and returns the events
// another member of the room got for them, as the hub makes them. The
// speaker's join is announced at once, not with its first line.
func saidEvents(t *testing.T, texts []string) []*tcpserver.Event {
	t.Helper()
	hub := tcpserver.NewHub(tcpserver.HubConfig{AnnounceDelay: -1, Rate: -1, MaxPerIP: -1, MaxLine: 1 << 20}, nil)
	speaker, err := hub.Connect(&eventSink{}, tcpserver.ConnectInfo{Addr: "192.0.2.1:1", Nick: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	listener := &eventSink{}
	if _, err := hub.Connect(listener, tcpserver.ConnectInfo{Addr: "192.0.2.2:1"}); err != nil {
		t.Fatal(err)
	}
	listener.mu.Lock()
	listener.events = nil // the welcome
	listener.mu.Unlock()
	for _, text := range texts {
		speaker.Handle([]byte(text))
	}
	listener.mu.Lock()
	defer listener.mu.Unlock()
	if len(listener.events) != len(texts) {
		t.Fatalf("%d events for %d lines", len(listener.events), len(texts))
	}
	return listener.events
}

// historyEvent says texts and returns the history a newcomer gets then,
// one event of several lines.
func historyEvent(t *testing.T, texts []string) *tcpserver.Event {
	t.Helper()
	hub := tcpserver.NewHub(tcpserver.HubConfig{Rate: -1, MaxPerIP: -1, MaxLine: 1 << 20}, nil)
	speaker, err := hub.Connect(&eventSink{}, tcpserver.ConnectInfo{Addr: "192.0.2.1:1", Nick: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		speaker.Handle([]byte(text))
	}
	newcomer := &eventSink{}
	if _, err := hub.Connect(newcomer, tcpserver.ConnectInfo{Addr: "192.0.2.2:1"}); err != nil {
		t.Fatal(err)
	}
	newcomer.mu.Lock()
	defer newcomer.mu.Unlock()
	for _, ev := range newcomer.events {
		if ev.Kind == tcpserver.KindHistory {
			return ev
		}
	}
	t.Fatal("no history")
	return nil
}

// A member far behind is written in chunks of at most corkChunk, not in
// one write of its whole backlog through a buffer as big; a payload that
// big is written from the event's own bytes, never copied; and the
// pooled buffer stays small. Every frame arrives whole and in order.
func TestWriterWritesBacklogInChunks(t *testing.T) {
	var texts []string
	for i := range 300 {
		text := fmt.Sprintf("%d %s", i, strings.Repeat("x", 1000))
		if i == 150 {
			text = fmt.Sprintf("%d %s", i, strings.Repeat("y", 100<<10))
		}
		texts = append(texts, text)
	}
	batch := saidEvents(t, texts)
	big := batch[150]
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			rec := &writeRecorder{}
			pool := &sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
			c := &wsConn{json: asJSON, wire: &wireConn{Conn: rec, pool: pool, deadline: tcpserver.WriteDeadline{Timeout: time.Second}}}
			if err := c.WriteEvents(batch); err != nil {
				t.Fatal(err)
			}
			bigPayload := trimLineEnd(big.Line())
			if asJSON {
				bigPayload = big.JSON()
			}
			sawBig := false
			for i, w := range rec.writes {
				if w.first == &bigPayload[0] && w.n == len(bigPayload) {
					sawBig = true
					continue
				}
				if w.n > corkChunk {
					t.Fatalf("write %d of %d: %d bytes, more than %d", i, len(rec.writes), w.n, corkChunk)
				}
			}
			if !sawBig {
				t.Fatalf("the %d-byte event was not written from its own bytes", len(bigPayload))
			}
			if bp := pool.Get().(*[]byte); cap(*bp) > corkKeep {
				t.Fatalf("the pool kept a buffer of %d bytes", cap(*bp))
			}

			var got []string
			for rec.got.Len() > 0 {
				typ, payload := readFrame(t, &rec.got)
				if typ != finText {
					t.Fatalf("frame %d: first byte %#x", len(got), typ)
				}
				if !asJSON {
					got = append(got, string(payload))
					continue
				}
				var evs []event
				if payload[0] != '[' {
					payload = []byte("[" + string(payload) + "]")
				}
				if err := json.Unmarshal(payload, &evs); err != nil {
					t.Fatalf("frame after %d events: %v", len(got), err)
				}
				for _, ev := range evs {
					got = append(got, "<"+ev.From+"> "+ev.Text)
				}
			}
			if len(got) != len(texts) {
				t.Fatalf("%d events arrived, want %d", len(got), len(texts))
			}
			for i, line := range got {
				if want := "<ada> " + texts[i]; line != want {
					t.Fatalf("event %d is %.30q, want %.30q", i, line, want)
				}
			}
		})
	}
}

// What a member's queue counts for an event (Cost) is what its writer
// writes for it, frame headers aside: the text line, or the JSON, which
// for a line of "<" is six times longer.
func TestCostIsWhatTheWriterWrites(t *testing.T) {
	texts := []string{"hello", strings.Repeat("<", 4000), "é" + strings.Repeat("x", 70<<10)}
	events := append(saidEvents(t, texts), historyEvent(t, texts))
	for _, asJSON := range []bool{false, true} {
		for i, ev := range events {
			rec := &writeRecorder{}
			pool := &sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
			c := &wsConn{json: asJSON, wire: &wireConn{Conn: rec, pool: pool, deadline: tcpserver.WriteDeadline{Timeout: time.Second}}}
			if err := c.WriteEvents([]*tcpserver.Event{ev}); err != nil {
				t.Fatal(err)
			}
			frames := 1
			if !asJSON && ev.Kind == tcpserver.KindHistory {
				frames = len(ev.Events)
			}
			// Plain frames lose the CRLF of their line; each has a
			// header of 2 to 10 bytes. A history's JSON envelope is
			// reckoned, not encoded: within 32 bytes.
			cost, wrote := c.Cost(ev), rec.got.Len()
			slack := 0
			if asJSON && ev.Kind == tcpserver.KindHistory {
				slack = 32
			}
			if cost < wrote-10*frames-slack || cost > wrote+2*frames+slack {
				t.Errorf("json=%v, event %d: costs %d, the writer wrote %d in %d frames", asJSON, i, cost, wrote, frames)
			}
		}
	}
}
