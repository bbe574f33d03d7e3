package bridge

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
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
	w := &wireConn{Conn: nc, aheadPool: pool, raw: rawConnOf(nc)}
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
	if w.ahead != nil || w.buffered() {
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
	tel.expect("* fast (127.0.0.1:")

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
