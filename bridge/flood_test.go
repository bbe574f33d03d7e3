package bridge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// Messages over the rate wait their turn, as a telnet user's lines do:
// all are said, in order, at the rate; none is refused.
func TestWebSocketLinesWaitTheirTurn(t *testing.T) {
	const rate, burst, n = 20, 2, 12
	st := start(t, tcpserver.HubConfig{Rate: rate, Burst: burst}, Config{})
	tel := st.telnet(t)
	w := st.plain(t, "")
	tel.expect(w.name + " joined")

	start := time.Now()
	for i := range n {
		w.send(fmt.Sprintf("line %d", i))
	}
	for i := range n {
		if got, want := tel.expect("> line"), fmt.Sprintf("<%s> line %d", w.name, i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if took, least := time.Since(start), time.Duration(n-burst-1)*time.Second/rate; took < least {
		t.Fatalf("%d lines said in %v, faster than the rate allows (%v)", n, took, least)
	}
	if s := st.hub.Stats(); s.Refused != 0 || s.FloodKicks != 0 {
		t.Fatalf("stats %+v: nothing may be refused", s)
	}
}

// What cleans to nothing costs what a line costs: each of these, sent
// flat out, is a flood and its sender is cut off. (A small backlog, so
// that the first read or two that find the flood refuse more than can
// wait, however few messages each finds.)
func TestWebSocketInputThatCleansToNothingIsAFloodToo(t *testing.T) {
	for _, tt := range []struct {
		name, msg string
		json      bool
	}{
		{"empty JSON command", `{"type":"command","text":""}`, true},
		{"empty JSON message", `{"type":"message","text":""}`, true},
		{"JSON of NUL escapes", `{"type":"message","text":"\u0000\u0000\u0000"}`, true},
		{"blank plain frame", ``, false},
		{"plain frame of NUL bytes", "\x00\x00\x00", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := start(t, tcpserver.HubConfig{Rate: 10, Burst: 2, Backlog: 5}, Config{})
			var w *wsClient
			if tt.json {
				w = st.jsonClient(t, "")
			} else {
				w = st.plain(t, "")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for range 400 {
				if w.c.Write(ctx, websocket.MessageText, []byte(tt.msg)) != nil {
					break // cut off while sending
				}
			}
			code, reason := w.closeStatus()
			if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "flooding") {
				t.Fatalf("close %v %q, want 1008 for flooding", code, reason)
			}
			if s := st.hub.Stats(); s.FloodKicks != 1 || s.Refused == 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// While its lines wait, the server reads nothing of a WebSocket, pongs
// included: a member whose lines wait is sending, so it is alive, and is
// not dropped for a late pong.
func TestWaitingWebSocketIsNotDroppedForALatePong(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: 2, Burst: 1}, Config{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	tel := st.telnet(t)
	w := st.plain(t, "")
	tel.expect(w.name + " joined")
	for i := range 5 {
		w.send(fmt.Sprintf("line %d", i))
	}
	// Read on, to answer pings, until the connection ends.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		for {
			if _, _, err := w.c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	for i := range 5 {
		if got, want := tel.expect("> line"), fmt.Sprintf("<%s> line %d", w.name, i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	select {
	case <-ctx.Done():
		t.Fatal("the connection was dropped")
	case <-time.After(300 * time.Millisecond):
	}
	tel.send("/who")
	tel.expect("2 in lobby")
}

// A member cut off while its reader is between messages: the close
// handshake (the writer's, through the library) reads frames while the
// reader looks for the next message. Under the race detector this found
// the reader's look unguarded.
func TestCutOffWhileReading(t *testing.T) {
	st := start(t, tcpserver.HubConfig{Rate: 10, Burst: 2, Backlog: 2}, Config{})
	for range 60 {
		w := st.plain(t, "")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for range 300 {
			if w.c.Write(ctx, websocket.MessageText, []byte("flood")) != nil {
				break
			}
		}
		cancel()
		if code, _ := w.closeStatus(); code != websocket.StatusPolicyViolation {
			t.Fatalf("close %v, want 1008", code)
		}
		w.c.CloseNow()
	}
}

// A flood that reaches the server at once is read on, without waiting,
// while its sender is being refused, as the TCP server reads on: all of
// it is measured, and its sender cut off at once, not when its lines
// that wait have gone (10 s at the defaults).
func TestWebSocketFloodIsMeasuredWhole(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{})
	c := st.dialRaw(t, "", nil)
	c.text(3 * time.Second) // welcome
	var flood []byte
	for i := range 400 {
		flood = append(flood, clientFrame(finBit|opText, fmt.Appendf(nil, "%-100d", i), -1)...)
	}
	start := time.Now()
	c.write(flood)
	code, reason := c.closeFrame(3 * time.Second)
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "flooding") {
		t.Fatalf("close %v %q, want 1008 for flooding", code, reason)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cut off after %v", took)
	}
}
