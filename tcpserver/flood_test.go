package tcpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Lines a member sent within the rate can reach the server together, when
// the server (or the network) fell behind: they wait their turn and are
// said at the rate, in order; none is refused and nobody is told to slow
// down.
func TestLinesOverTheRateWaitTheirTurn(t *testing.T) {
	const rate, burst, n = 20, 2, 12
	ts := startServer(t, HubConfig{Rate: rate, Burst: burst}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	start := time.Now()
	a.send(lines...)
	for _, l := range lines {
		b.expectExact("<" + a.name + "> " + l)
	}
	// The first burst went at once, the rest one every 1/rate.
	if took, least := time.Since(start), time.Duration(n-burst-1)*time.Second/rate; took < least {
		t.Fatalf("%d lines said in %v, faster than the rate allows (%v)", n, took, least)
	}
	a.sync()
	a.quiet()
	if st := ts.hub.Stats(); st.Refused != 0 || st.FloodKicks != 0 || st.LinesIn != n+1 {
		t.Fatalf("stats %+v: want %d lines in, none refused", st, n+1)
	}
}

// Commands wait in the same queue as lines: everything the member sent
// happens in the order it was sent.
func TestCommandsKeepTheirOrderWithWaitingLines(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 50, Burst: 1}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	a.send("one", "/me two", "/nick ayla", "three", "/me four", "//five")
	b.expectExact("<" + a.name + "> one")
	b.expectExact("* " + a.name + " two")
	b.expect("is now known as ayla")
	b.expectExact("<ayla> three")
	b.expectExact("* ayla four")
	b.expectExact("<ayla> /five")
}

// Issue #15: a paste of 80 lines into telnet arrives whole, at the rate,
// and its sender stays; so does one of 50 followed at once by the end of
// the connection (printf ... | nc -N).
func TestPastesArriveWhole(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 100}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	var paste strings.Builder
	for i := range 80 {
		fmt.Fprintf(&paste, "pasted %d\r\n", i)
	}
	a.write([]byte(paste.String()))
	for i := range 80 {
		b.expectExact(fmt.Sprintf("<%s> pasted %d", a.name, i))
	}
	a.sync()
	a.quiet()

	c := ts.dial(t)
	b.expect(c.name + " (")
	paste.Reset()
	for i := range 50 {
		fmt.Fprintf(&paste, "then gone %d\n", i)
	}
	c.write([]byte(paste.String()))
	c.conn.(*net.TCPConn).CloseWrite()
	for i := range 50 {
		b.expectExact(fmt.Sprintf("<%s> then gone %d", c.name, i))
	}
	b.expect(c.name + " (127.0.0.1:")
	if st := ts.hub.Stats(); st.Refused != 0 || st.FloodKicks != 0 {
		t.Fatalf("stats %+v: nothing may be refused", st)
	}
}

// A line that cleans to nothing still costs what a line costs: lines of
// NUL bytes, sent flat out, are a flood like any other.
func TestLinesThatCleanToNothingAreAFloodToo(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 10, Burst: 2}, Config{})
	a, b := ts.dial(t), ts.dial(t)
	a.expect(b.name + " (")

	a.write([]byte(strings.Repeat("\x00\x00\x00\r\n", 400)))
	got := a.closed()
	if len(got) == 0 || !strings.Contains(got[len(got)-1], "disconnected: flooding") {
		t.Fatalf("flooder saw %q before close", got)
	}
	if st := ts.hub.Stats(); st.FloodKicks != 1 || st.Refused == 0 {
		t.Fatalf("stats %+v: want one flood kick and lines refused", st)
	}
}

// Shutdown does not wait for lines that wait their turn: the member is
// told at once, and what waited is dropped. So is what waits behind a
// /quit; what came before it is said.
func TestWaitingLinesEndWithTheConnection(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 2, Burst: 1}, Config{})
	a, b, c := ts.dialAll(t)

	a.send("first", "second", "/quit", "never")
	b.expectExact("<" + a.name + "> first")
	b.expectExact("<" + a.name + "> second")
	b.expect(a.name + " (127.0.0.1:") // left, without "never"
	if got := a.closed(); len(got) == 0 || got[len(got)-1] != "*** bye" {
		t.Fatalf("a saw %q before the end", got)
	}

	c.send("one", "two", "three", "four", "five", "six")
	b.expectExact("<" + c.name + "> one")
	start := time.Now()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ts.stop(t)
	}()
	got := c.closed()
	if took := time.Since(start); took > time.Second {
		t.Fatalf("told of the shutdown after %v, with lines waiting 2.5 s for their turn", took)
	}
	if len(got) == 0 || got[len(got)-1] != "*** server shutting down" {
		t.Fatalf("c saw %q before the end", got)
	}
	<-stopped
	for _, l := range b.closed() {
		if strings.Contains(l, "four") || strings.Contains(l, "six") {
			t.Fatalf("b got %q, said after the shutdown began", l)
		}
	}
}

// A member whose lines wait for the rate holds no goroutine meanwhile: a
// timer starts its reader when the next line may go.
func TestWaitingMembersHoldNoGoroutine(t *testing.T) {
	ts := startServer(t, HubConfig{Rate: 0.4, Burst: 1, AnnounceLimit: 1}, Config{})
	watcher := ts.dial(t)
	const n = 40
	clients := make([]*testClient, n)
	for i := range clients {
		clients[i] = ts.dial(t) // welcomed: a member
	}
	base := settledGoroutines()
	for _, c := range clients {
		c.send("now", "in 2.5 seconds", "in five")
	}
	// Everyone's first line has been said, the rest wait.
	for range n {
		watcher.expect("> now")
	}
	if got := settledGoroutines(); got > base+5 {
		t.Fatalf("%d goroutines with %d members waiting for the rate, %d before", got, n, base)
	}
	for range n {
		watcher.expect("> in 2.5 seconds")
	}
}

// settledGoroutines counts goroutines once those that were ending have.
func settledGoroutines() int {
	var n int
	for range 20 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// Over connections with no poller behind them (net.Pipe), lines wait and
// arrive as they do over TCP.
func TestLinesWaitOverNetPipe(t *testing.T) {
	hub := NewHub(HubConfig{MaxPerIP: -1, Rate: 20, Burst: 1}, nil)
	srv := New(hub, Config{}, nil)
	l := newPipeListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()

	a := l.dial(t)
	a.expect(" in lobby: ")
	a.write([]byte("/nick alice\r\n/me waits\r\none\r\ntwo\r\nthree\r\n/rooms\r\n"))
	a.expect("is now known as alice")
	a.expect("rooms: lobby (1)")
	if st := hub.Stats(); st.LinesIn != 6 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}

	// A pipe has no buffer: the client reads while the server shuts down.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	a.closed()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

// BenchmarkHandle is one line from a member to a room of ten, through
// flood control (at a rate it never reaches) and without it, and with
// 1,000 members muted elsewhere (by name and address) and another room
// moderated: what every line asks of moderation then.
func BenchmarkHandle(b *testing.B) {
	for _, tt := range []struct {
		name  string
		rate  float64
		mutes int
	}{{"no-limit", -1, 0}, {"flood-control", 1e12, 0}, {"mutes-elsewhere", -1, 1000}} {
		b.Run(tt.name, func(b *testing.B) {
			h := NewHub(HubConfig{MaxPerIP: -1, Rate: tt.rate, Burst: 1 << 30, History: -1}, nil)
			for i := range tt.mutes {
				name := fmt.Sprintf("pest-%d", i)
				h.mod.apply(bucketMutes, name, fmt.Appendf(nil, `{"name":%q,"source":"198.51.100.%d","by":"op"}`, name, i%250))
			}
			if tt.mutes > 0 {
				h.mod.apply(bucketModes, "elsewhere", []byte(`{"moderated":true}`))
			}
			var sender *Client
			for i := range 10 {
				c, err := h.Connect(discardMember{}, ConnectInfo{Addr: fmt.Sprintf("192.0.2.1:%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				sender = c
			}
			line := []byte("hello, everybody: a line of typical length")
			b.ReportAllocs()
			for b.Loop() {
				sender.Handle(line)
			}
		})
	}
}

// A rate so slow that the wait overflows a Duration still waits: it was
// negative, which the private-message limits read as allowed, so
// --private-rate 1e-15 limited nothing.
func TestTokenBucketWaitAtVerySlowRates(t *testing.T) {
	now := time.Now()
	var b tokenBucket
	b.take(now, 1e-15, 1)
	if w := b.wait(now, 1e-15, 1); w <= 0 {
		t.Fatalf("wait = %v after the only token went, want a long wait", w)
	}
}
