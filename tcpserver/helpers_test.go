package tcpserver

import (
	"bufio"
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a hub and TCP server on a loopback port.
type testServer struct {
	hub  *Hub
	srv  *Server
	addr string
	done chan error // Serve's result
}

func startServer(t *testing.T, hc HubConfig, cfg Config) *testServer {
	t.Helper()
	if hc.MaxPerIP == 0 {
		hc.MaxPerIP = -1
	}
	if hc.AnnounceDelay == 0 {
		hc.AnnounceDelay = -1 // joins announced at once: the tests wait for them
	}
	hub := NewHub(hc, nil)
	srv := New(hub, cfg, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{hub: hub, srv: srv, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and checks that Serve returned as it should.
func (ts *testServer) stop(t *testing.T) {
	if ts.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-ts.done:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after Shutdown")
	}
	ts.done = nil
}

// testClient is a raw TCP chat client.
type testClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	name string
}

// dial connects and reads the welcome, returning a client that knows its
// guest name. It reads up to and including the presence line.
func (ts *testServer) dial(t *testing.T) *testClient {
	t.Helper()
	c := ts.dialRaw(t)
	welcome := c.expect("Welcome to chatbridge")
	_, rest, _ := strings.Cut(welcome, "Welcome to chatbridge, ")
	c.name, _, _ = strings.Cut(rest, "!")
	c.expect(" in lobby: ")
	return c
}

// dialAll connects three clients and waits until each has seen the joins
// of those after it, so that no join notice is still on its way.
func (ts *testServer) dialAll(t *testing.T) (a, b, c *testClient) {
	t.Helper()
	a, b, c = ts.dial(t), ts.dial(t), ts.dial(t)
	a.expect(b.name + " (127.0.0.1:")
	a.expect(c.name + " (127.0.0.1:")
	b.expect(c.name + " (127.0.0.1:")
	return a, b, c
}

func (ts *testServer) dialRaw(t *testing.T) *testClient {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *testClient) send(lines ...string) {
	c.t.Helper()
	for _, l := range lines {
		if _, err := c.conn.Write([]byte(l + "\r\n")); err != nil {
			c.t.Fatalf("send %q: %v", l, err)
		}
	}
}

func (c *testClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readLine returns the next line without its CRLF, or fails the test.
func (c *testClient) readLine() string {
	c.t.Helper()
	line, err := c.tryLine(3 * time.Second)
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	return line
}

func (c *testClient) tryLine(d time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return line, err
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Errorf("line %q does not end in CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}

// expect reads lines until one contains want, and returns it.
func (c *testClient) expect(want string) string {
	c.t.Helper()
	var seen []string
	for range 100 {
		line, err := c.tryLine(3 * time.Second)
		if err != nil {
			c.t.Fatalf("%s: waiting for %q: %v; saw %q", c.name, want, err, seen)
		}
		if strings.Contains(line, want) {
			return line
		}
		seen = append(seen, line)
	}
	c.t.Fatalf("%s: no %q in 100 lines: %q", c.name, want, seen)
	return ""
}

// expectExact reads the next line and checks it.
func (c *testClient) expectExact(want string) {
	c.t.Helper()
	if got := c.readLine(); got != want {
		c.t.Fatalf("%s: got %q, want %q", c.name, got, want)
	}
}

// quiet checks that nothing arrives for a little while.
func (c *testClient) quiet() {
	c.t.Helper()
	if line, err := c.tryLine(150 * time.Millisecond); err == nil {
		c.t.Fatalf("%s: unexpected line %q", c.name, line)
	}
}

// sync sends /rooms and waits for its answer, so that everything the
// server did for earlier lines of this client has happened.
func (c *testClient) sync() {
	c.t.Helper()
	c.send("/rooms")
	c.expect("*** rooms: ")
}

// closed waits for the server to close the connection, returning what it
// said before.
func (c *testClient) closed() []string {
	c.t.Helper()
	var lines []string
	for range 1000 {
		line, err := c.tryLine(5 * time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("%s: connection not closed; saw %q", c.name, lines)
			}
			c.conn.Close() // as telnet does on EOF
			return lines
		}
		lines = append(lines, line)
	}
	c.t.Fatalf("%s: connection not closed after 1000 lines", c.name)
	return nil
}

// historyStamp is the time a replayed line of history starts with.
var historyStamp = regexp.MustCompile(`^\[(\d{4}-\d\d-\d\d )?\d\d:\d\d\] `)

// unstamped returns a replayed line of history without its time, or
// "no time: " and the line if it has none.
func unstamped(line string) string {
	loc := historyStamp.FindStringIndex(line)
	if loc == nil {
		return "no time: " + line
	}
	return line[loc[1]:]
}

func dialTimeout(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}
