package tcpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWelcomeNamesGuestAndPointsAtHelp(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	c := ts.dialRaw(t)
	welcome := c.readLine()
	if !regexp.MustCompile(`^\*\*\* Welcome to chatbridge, guest-\d{4}! You are in lobby\. Type /help for commands\.$`).MatchString(welcome) {
		t.Fatalf("welcome = %q", welcome)
	}
	if got := c.readLine(); !regexp.MustCompile(`^\*\*\* 1 in lobby: guest-\d{4}$`).MatchString(got) {
		t.Fatalf("presence = %q", got)
	}
}

func TestBroadcastReachesOthersNotSender(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b, c := ts.dialAll(t)

	a.send("hello, world")
	b.expectExact("<" + a.name + "> hello, world")
	c.expectExact("<" + a.name + "> hello, world")
	a.quiet()
}

func TestJoinAndLeaveAreAnnouncedWithAddress(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a := ts.dial(t)
	b := ts.dial(t)
	local := b.conn.LocalAddr().String()
	a.expectExact("*** " + b.name + " (" + local + ") joined")
	b.conn.Close()
	a.expectExact("*** " + b.name + " (" + local + ") left")
}

func TestHistoryIsReplayedOnJoin(t *testing.T) {
	ts := startServer(t, HubConfig{History: 3}, Config{})
	a := ts.dial(t)
	for i := range 5 {
		a.send(fmt.Sprintf("line %d", i))
	}
	a.send("/me waves")
	a.sync()

	b := ts.dialRaw(t)
	b.expect("Welcome")
	for _, want := range []string{"<" + a.name + "> line 3", "<" + a.name + "> line 4", "* " + a.name + " waves"} {
		if got := b.readLine(); unstamped(got) != want {
			t.Fatalf("got %q, want the time and %q", got, want)
		}
	}
	b.expectExact("*** end of history: 3 earlier lines, times in UTC")
	if got := b.readLine(); !strings.HasPrefix(got, "*** 2 in lobby: ") {
		t.Fatalf("after the history %q, want who is here", got)
	}
}

func TestCommands(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")
	b.send("/nick bill")
	a.expect("is now known as bill")
	b.expect("is now known as bill")
	b.name = "bill"

	tests := []struct {
		name    string
		send    string
		toA     string // what a sees first, "" for nothing
		toB     string // what b sees first, "" for nothing
		aQuiet  bool
		bQuietA bool
	}{
		{name: "help", send: "/help", toA: "*** Commands:"},
		{name: "unknown", send: "/frobnicate now", toA: "! unknown command /frobnicate; type /help for the list"},
		{name: "who", send: "/who", toA: "*** 2 in lobby: "},
		{name: "me", send: "/me waves", toB: "* " + a.name + " waves"},
		{name: "me needs text", send: "/me", toA: "! usage: /me ACTION"},
		{name: "double slash says a slash line", send: "//etc/passwd is a path", toB: "<" + a.name + "> /etc/passwd is a path"},
		{name: "nick bad", send: "/nick no spaces", toA: `! nick "no spaces" is not valid: use 1-24 letters, digits, - or _`},
		{name: "nick long", send: "/nick " + strings.Repeat("x", 25), toA: "is not valid"},
		{name: "nick taken", send: "/nick " + strings.ToUpper(b.name), toA: `! nick "BILL" is taken`},
		{name: "nick like another", send: "/nick bi1I", toA: `! nick "bi1I" looks too much like the name of someone here: bill`},
		{name: "nick reserved", send: "/nick Admin", toA: `! nick "Admin" is kept for the server`},
		{name: "nick like reserved", send: "/nick r00t", toA: `! nick "r00t" reads as "root", which is kept for the server`},
		{name: "nick guest", send: "/nick guest-1234", toA: `! nick "guest-1234" is not yours to take: guest names are given out by the server`},
		{name: "nick usage", send: "/nick", toA: "! usage: /nick NAME"},
		{name: "msg unknown", send: "/msg nobody hi", toA: "! no one called nobody is here"},
		{name: "msg usage", send: "/msg " + b.name, toA: "! usage: /msg NAME TEXT"},
		{name: "join bad", send: "/join no/slash", toA: "is not valid"},
		{name: "join same", send: "/join lobby", toA: "! you are already in lobby"},
		{name: "rooms", send: "/rooms", toA: "*** rooms: lobby (2)"},
	}
	parent := t
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.t, b.t = t, t
			defer func() { a.t, b.t = parent, parent }()
			a.send(tt.send)
			if tt.toA != "" {
				if got := a.readLine(); !strings.Contains(got, tt.toA) {
					t.Fatalf("a got %q, want %q", got, tt.toA)
				}
			}
			if tt.toB != "" {
				b.expectExact(tt.toB)
			}
			a.sync()
			if tt.toB == "" {
				b.quiet()
			}
			// Drain the rest of a's answer (help is several lines).
			for {
				line, err := a.tryLine(100 * time.Millisecond)
				if err != nil {
					break
				}
				_ = line
			}
		})
	}
}

func TestNickChange(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")
	old := a.name
	a.send("/nick Alice")
	a.expectExact("*** " + old + " is now known as Alice")
	b.expectExact("*** " + old + " is now known as Alice")
	a.send("hi")
	b.expectExact("<Alice> hi")

	// Names are unique without regard to case, but one may change one's own case.
	b.send("/nick alice")
	b.expect(`nick "alice" is taken`)
	a.send("/nick ALICE")
	a.expectExact("*** Alice is now known as ALICE")
	a.send("/who")
	if got := a.expect("in lobby"); !strings.Contains(got, "ALICE") {
		t.Fatalf("who = %q", got)
	}
}

func TestRoomsAreIsolated(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b, c := ts.dialAll(t)

	a.send("/join Dev")
	a.expectExact("*** You are now in dev as " + a.name + ".")
	a.expectExact("*** 1 in dev: " + a.name)
	b.expect(a.name + " (127.0.0.1:")
	b.send("/join dev")
	a.expect(b.name + " (127.0.0.1:")

	b.expectExact("*** You are now in dev as " + b.name + ".")
	b.expect("*** 2 in dev: ")
	a.send("in dev")
	b.expectExact("<" + a.name + "> in dev")
	c.send("in lobby")
	a.quiet()
	b.quiet()

	c.send("/rooms")
	c.expect("*** rooms: dev (2), lobby (1)")
	b.send("/who")
	b.expect("*** 2 in dev: ")
}

func TestPrivateMessage(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b, c := ts.dialAll(t)
	b.send("/join elsewhere")
	b.expect("You are now in elsewhere")
	b.sync()
	a.expect(b.name + " (127.0.0.1:")

	a.send("/msg " + b.name + " psst, secret")
	a.expectExact("-> *" + b.name + "* psst, secret")
	b.expectExact("*" + a.name + "* psst, secret")
	c.expect(b.name + " (") // b's leave from lobby
	c.quiet()
}

func TestQuit(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")
	b.send("/quit", "said after quit")
	if got := b.closed(); len(got) == 0 || got[len(got)-1] != "*** bye" {
		t.Fatalf("b saw %q before close, want last line %q", got, "*** bye")
	}
	a.expect(b.name + " (")
	a.quiet()
}

func TestBadInput(t *testing.T) {
	parent := t
	ts := startServer(t, HubConfig{}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")
	b.send("/nick bill")
	a.expect("is now known as bill")
	b.expect("is now known as bill")
	b.name = "bill"

	tests := []struct {
		name string
		in   []byte
		want []string // what b sees, whole lines after "<a> "
	}{
		{"telnet negotiation is consumed", []byte("\xff\xfd\x03\xff\xfb\x18he\xff\xf1llo\r\n"), []string{"hello"}},
		{"subnegotiation is consumed", []byte("\xff\xfa\x18\x00xterm\xff\xf0ok\r\n"), []string{"ok"}},
		{"escaped IAC is a bad byte", []byte("a\xff\xffb\r\n"), []string{"a\uFFFDb"}},
		{"lone CR ends a line", []byte("one\rtwo\r"), []string{"one", "two"}},
		{"CR NUL", []byte("three\r\x00four\r\n"), []string{"three", "four"}},
		{"LF only", []byte("five\n"), []string{"five"}},
		{"invalid UTF-8", []byte("bad \xc3\x28 byte\r\n"), []string{"bad \uFFFD( byte"}},
		{"escape sequences removed", []byte("\x1b[2J\x1b]0;pwned\x07red\x1b[31m!\r\n"), []string{"red!"}},
		{"arrow keys removed whole", []byte("abc\x1b[D\x1b[DX\x1bOA\r\n"), []string{"abcX"}},
		{"NUL and DEL removed", []byte("n\x00u\x7fl\r\n"), []string{"nul"}},
		{"C1 controls removed", []byte("c\u00851\r\n"), []string{"c1"}},
		{"C1 CSI removed with its parameters", []byte("c\u009b1mx\r\n"), []string{"cx"}},
		{"tab kept", []byte("a\tb\r\n"), []string{"a\tb"}},
		{"bidi override removed", []byte("abc\u202edef\r\n"), []string{"abcdef"}},
		{"utf-8 kept", []byte("héllo wörld ✓\r\n"), []string{"héllo wörld ✓"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.t, b.t = t, t
			defer func() { a.t, b.t = parent, parent }()
			a.write(tt.in)
			for _, want := range tt.want {
				b.expectExact("<" + a.name + "> " + want)
			}
		})
	}
	// Empty and blank lines are ignored.
	a.write([]byte("\r\n\n\r   \r\n\x1b\r\n"))
	a.sync()
	b.quiet()
}

func TestOverlongLineIsRefusedAndSkipped(t *testing.T) {
	ts := startServer(t, HubConfig{MaxLine: 64}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	a.write([]byte(strings.Repeat("x", 65) + "\r\n"))
	a.expectExact("! line too long (more than 64 bytes); it was not sent")
	// Exactly the limit is fine.
	a.send(strings.Repeat("y", 64))
	b.expectExact("<" + a.name + "> " + strings.Repeat("y", 64))

	// A long line in pieces, with the next line right after its end.
	for range 10 {
		a.write([]byte(strings.Repeat("z", 50)))
	}
	a.write([]byte("zzz\r\nnext\r\n"))
	a.expectExact("! line too long (more than 64 bytes); it was not sent")
	b.expectExact("<" + a.name + "> next")
	a.sync()
	b.quiet()
}

// Over the rate, lines wait their turn; past the backlog they are
// refused, with one notice saying how many; a member that goes on
// flooding is cut off.
func TestFloodWaitsThenIsRefusedThenCut(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 1, Burst: 3, Backlog: 2}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	a.write([]byte("1\r\n2\r\n3\r\n4\r\n5\r\n6\r\n")) // in one read
	for _, want := range []string{"1", "2", "3"} {
		b.expectExact("<" + a.name + "> " + want)
	}
	a.expectExact("! slow down: 1 line was not sent (at most 1 lines a second, and 2 waiting their turn)")
	b.quiet()
	for _, want := range []string{"4", "5"} {
		b.expectExact("<" + a.name + "> " + want) // a second apart
	}
	b.quiet()

	// Keep flooding: cut off with a reason, and the room is told.
	var flood strings.Builder
	for i := range 20 {
		fmt.Fprintf(&flood, "flood %d\r\n", i)
	}
	a.write([]byte(flood.String()))
	got := a.closed()
	if len(got) == 0 || got[len(got)-1] != "*** disconnected: flooding (more than 1 lines a second)" {
		t.Fatalf("flooder saw %q before close", got)
	}
	b.expect(a.name + " (127.0.0.1:")
	if st := ts.hub.Stats(); st.FloodKicks != 1 {
		t.Fatalf("FloodKicks = %d, want 1", st.FloodKicks)
	}
}

func TestSlowConsumerIsCutAndOthersKeepReceiving(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: -1}, Config{Queue: 64, WriteTimeout: time.Second})
	slow := ts.dialRaw(t) // never reads
	sender := ts.dial(t)
	fast := ts.dial(t)
	sender.expect(fast.name + " (")

	// Enough to fill the slow client's socket buffers and then its queue;
	// paced so that a client that does read keeps up.
	const n = 8000
	payload := strings.Repeat("payload ", 120) + "end"
	prefix := "<" + sender.name + "> "
	received := make(chan int)
	go func() {
		got := 0
		fast.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for got < n {
			l, err := fast.r.ReadSlice('\n')
			if err != nil {
				t.Errorf("fast client: %v after %d lines", err, got)
				break
			}
			if !strings.HasPrefix(string(l), prefix) {
				continue
			}
			seq, rest, _ := strings.Cut(string(l[len(prefix):]), " ")
			if seq != strconv.Itoa(got) || rest != payload+"\r\n" {
				t.Errorf("line %d = %.40q...", got, l)
			}
			got++
		}
		received <- got
	}()
	for i := range n {
		sender.send(fmt.Sprintf("%d %s", i, payload))
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	if got := <-received; got != n {
		t.Fatalf("fast client got %d lines, want %d", got, n)
	}
	sender.expect(") left (too slow)")
	if st := ts.hub.Stats(); st.SlowKicks != 1 {
		t.Fatalf("SlowKicks = %d, want 1", st.SlowKicks)
	}
	// The slow client is disconnected: draining it ends in EOF.
	slow.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, slow.conn); err != nil {
		t.Fatalf("slow client: %v, want EOF", err)
	}
}

func TestWriteTimeoutCutsAStuckReader(t *testing.T) {
	// No bound in events or bytes: only the write timeout cuts.
	ts := startServer(t, HubConfig{Rate: -1}, Config{Queue: 1 << 20, QueueBytes: -1, WriteTimeout: 300 * time.Millisecond})
	stuck := ts.dialRaw(t) // never reads
	sender := ts.dial(t)
	payload := strings.Repeat("x", 1000)
	for i := 0; i < 20000; i++ {
		sender.send(payload)
		if st := ts.hub.Stats(); st.SlowKicks > 0 {
			break
		}
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
	}
	sender.expect(") left (too slow)")
	if st := ts.hub.Stats(); st.SlowKicks != 1 {
		t.Fatalf("SlowKicks = %d, want 1", st.SlowKicks)
	}
	stuck.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, stuck.conn); err != nil {
		t.Fatalf("stuck client: %v, want EOF", err)
	}
}

// A member that stops reading is cut off once what it has waiting passes
// QueueBytes, long before its queue is full of events or a write times
// out; the others keep receiving.
func TestQueueBytesCutsAMemberFarBehind(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: -1, MaxLine: 8192}, Config{Queue: 1 << 20, QueueBytes: 64 << 10, WriteTimeout: time.Minute})
	stuck := ts.dialRaw(t) // never reads
	// Its join is announced before the others come, not among the lines
	// fast must read.
	for deadline := time.Now().Add(5 * time.Second); ts.hub.Stats().Clients["tcp"] != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stuck client never joined")
		}
	}
	sender := ts.dial(t)
	fast := ts.dial(t)
	sender.expect(fast.name + " (")
	payload := strings.Repeat("x", 4000)
	start := time.Now()
	for i := 0; ts.hub.Stats().SlowKicks == 0; i++ {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("not cut off after %d lines of 4 KB", i)
		}
		sender.send(payload)
		if l := fast.readLine(); !strings.HasSuffix(l, payload) {
			t.Fatalf("fast member got %.40q", l)
		}
	}
	sender.expect(") left (too slow)")
	stuck.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, stuck.conn); err != nil {
		t.Fatalf("stuck client: %v, want EOF", err)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Run("max clients", func(t *testing.T) {
		ts := startServer(t, HubConfig{MaxClients: 2}, Config{})
		ts.dial(t)
		ts.dial(t)
		c := ts.dialRaw(t)
		if got := c.closed(); len(got) != 1 || got[0] != "*** server full, try again later" {
			t.Fatalf("third client saw %q", got)
		}
		if st := ts.hub.Stats(); st.Rejected != 1 || st.Clients["tcp"] != 2 {
			t.Fatalf("stats = %+v", st)
		}
	})
	t.Run("max per ip", func(t *testing.T) {
		ts := startServer(t, HubConfig{MaxPerIP: 1}, Config{})
		a := ts.dial(t)
		c := ts.dialRaw(t)
		if got := c.closed(); len(got) != 1 || got[0] != "*** too many connections from your address" {
			t.Fatalf("second client saw %q", got)
		}
		// A slot freed is a slot to be had.
		a.send("/quit")
		a.closed()
		deadline := time.Now().Add(3 * time.Second)
		for ts.hub.Stats().Clients["tcp"] != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		ts.dial(t)
	})
}

func TestShutdownTellsEveryoneAndFlushes(t *testing.T) {
	ts := startServer(t, HubConfig{}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")
	a.send("last words")
	b.expectExact("<" + a.name + "> last words")

	ts.stop(t)
	for _, c := range []*testClient{a, b} {
		got := c.closed()
		if len(got) == 0 || got[len(got)-1] != "*** server shutting down" {
			t.Fatalf("%s saw %q before close", c.name, got)
		}
	}
	// Nobody is let in any more.
	if c, err := dialTimeout(ts.addr); err == nil {
		c.Close()
		t.Fatal("dial after shutdown succeeded")
	}
}

// What a client sent at once, more than a read buffer holds, is read
// on without waiting and said as one batch: every line arrives, in order,
// and the room gets fewer, bigger batches than one per buffer.
func TestLinesSentAtOnceAreSaidInBigBatches(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: -1, History: -1}, Config{})
	m := &fakeMember{}
	if _, err := ts.hub.Connect(m, ConnectInfo{Addr: "192.0.2.1:1", Transport: "fake"}); err != nil {
		t.Fatal(err)
	}
	sender := ts.dial(t)
	const n = 2000
	var all bytes.Buffer
	for i := range n {
		fmt.Fprintf(&all, "line %05d of a sender in a hurry\r\n", i)
	}
	perBuffer := readBufSize / (all.Len() / n)
	sender.write(all.Bytes())

	deadline := time.Now().Add(5 * time.Second)
	var got []string
	biggest := 0
	for len(got) < n && time.Now().Before(deadline) {
		m.mu.Lock()
		evs := m.events
		m.events = nil
		m.mu.Unlock()
		for _, ev := range evs {
			lines := []*Event{ev}
			if ev.Kind == KindBatch {
				lines = ev.Events
			}
			if ev.Kind != KindMessage && ev.Kind != KindBatch {
				continue
			}
			biggest = max(biggest, len(lines))
			for _, l := range lines {
				got = append(got, l.Text)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("got %d lines of %d", len(got), n)
	}
	for i, l := range got {
		if want := fmt.Sprintf("line %05d of a sender in a hurry", i); l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
	if biggest <= perBuffer {
		t.Fatalf("the biggest batch had %d lines, no more than one %d-byte buffer's %d", biggest, readBufSize, perBuffer)
	}
}

// Shutdown while connections keep arriving: every connection accepted
// before or during it is either served and closed or closed at once, and
// Serve returns once all handlers are done (a handler counted after
// shutdown began to wait would be a WaitGroup misuse the race detector
// reports).
func TestShutdownWhileAccepting(t *testing.T) {
	for range 30 {
		hub := NewHub(HubConfig{MaxPerIP: -1}, nil)
		srv := New(hub, Config{}, nil)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background(), l) }()
		stop := make(chan struct{})
		var dialers sync.WaitGroup
		for range 4 {
			dialers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
						c.Close()
					}
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		cancel()
		close(stop)
		dialers.Wait()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
	}
}

// History a member is sent, at join or by /history, keeps to half of its
// queue in bytes: a room's lines bigger than --queue-bytes must not cut
// off every newcomer as too slow, nor whoever scrolls back.
func TestHistoryKeepsToHalfTheQueue(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: -1, MaxLine: 1000, History: 50, AnnounceDelay: -1},
		Config{QueueBytes: 16000, WriteTimeout: time.Minute})
	sender, reader := ts.dial(t), ts.dial(t)
	line := strings.Repeat("x", 990)
	for i := range 60 {
		sender.send(fmt.Sprintf("%03d %s", i, line))
		reader.expect(fmt.Sprintf("%03d ", i))
	}
	c := ts.dialRaw(t)
	c.expect("Welcome to chatbridge")
	var got []string
	for {
		l := c.readLine()
		if strings.Contains(l, "end of history") {
			break
		}
		got = append(got, l)
	}
	// Half of 16000 bytes is 7 lines of about 1,030 bytes and more.
	if len(got) == 0 || len(got) > 8 || !strings.Contains(got[len(got)-1], "059 ") {
		t.Fatalf("join replayed %d lines, the last %.20q; want the newest few, up to 059", len(got), got[len(got)-1:])
	}
	c.expect(" in lobby: ")
	c.send("/history 200")
	var back []string
	for {
		l := c.readLine()
		if strings.Contains(l, "end of history") {
			break
		}
		back = append(back, l)
	}
	if len(back) == 0 || len(back) > 8 {
		t.Fatalf("/history 200 showed %d lines; want a few, within half the queue", len(back))
	}
	c.send("still here")
	reader.expect("> still here")
	if st := ts.hub.Stats(); st.SlowKicks != 0 {
		t.Fatalf("%d members cut off as too slow", st.SlowKicks)
	}
}
