package tcpserver

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeListener hands out the server ends of net.Pipe connections, so the
// server runs over connections with no socket and no poller behind them.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

func (l *pipeListener) dial(t *testing.T) *testClient {
	client, server := net.Pipe()
	l.conns <- server
	t.Cleanup(func() { client.Close() })
	return &testClient{t: t, conn: client, r: bufio.NewReader(client)}
}

func TestChatOverNetPipe(t *testing.T) {
	hub := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1}, nil)
	srv := New(hub, Config{}, nil)
	l := newPipeListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()

	// net.Pipe is unbuffered: every client must be read while the server
	// writes, so each is drained into a channel by its own goroutine.
	type client struct {
		*testClient
		lines chan string
	}
	open := func() client {
		c := client{l.dial(t), make(chan string, 100)}
		go func() {
			defer close(c.lines)
			for {
				line, err := c.r.ReadString('\n')
				if err != nil {
					return
				}
				c.lines <- line
			}
		}()
		return c
	}
	next := func(c client) string {
		t.Helper()
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatal("connection closed")
			}
			return line
		case <-time.After(3 * time.Second):
			t.Fatal("no line")
		}
		return ""
	}

	a := open()
	next(a) // welcome
	next(a) // presence
	b := open()
	next(b)
	next(b)
	if got := next(a); !strings.HasPrefix(got, "*** ") || !strings.Contains(got, "(pipe) joined") {
		t.Fatalf("a saw %q", got)
	}
	a.send("/nick alice", "over a pipe")
	next(a) // alice's own nick notice
	next(b)
	if got := next(b); got != "<alice> over a pipe\r\n" {
		t.Fatalf("b saw %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, c := range []client{a, b} {
		var last string
		for line := range c.lines {
			last = line
		}
		if last != "*** server shutting down\r\n" {
			t.Fatalf("last line %q", last)
		}
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}
