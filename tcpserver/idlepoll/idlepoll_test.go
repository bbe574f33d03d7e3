package idlepoll

import (
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

func raw(t *testing.T, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func waitReady(t *testing.T, ready chan struct{}, want bool) {
	t.Helper()
	select {
	case <-ready:
		if !want {
			t.Fatal("ready called, want not")
		}
	case <-time.After(300 * time.Millisecond):
		if want {
			t.Fatal("ready not called")
		}
	}
}

func TestParkWakesOnEachWayAConnectionCanStir(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Skip(err) // not Linux: callers keep a goroutine per connection
	}
	defer p.Close()

	server, client := pair(t)
	ready := make(chan struct{}, 10)
	c := p.Register(raw(t, server), func() { ready <- struct{}{} })
	defer c.Forget()

	// Nothing to read: parked, and stays so.
	if !c.Park() {
		t.Fatal("Park failed on an open connection")
	}
	waitReady(t, ready, false)

	// Data wakes it, once.
	client.Write([]byte("x"))
	waitReady(t, ready, true)
	waitReady(t, ready, false)

	// Armed while data is already waiting: ready at once.
	if !c.Park() {
		t.Fatal("Park failed")
	}
	waitReady(t, ready, true)
	server.Read(make([]byte, 8))

	// The client hanging up wakes it.
	if !c.Park() {
		t.Fatal("Park failed")
	}
	client.Close()
	waitReady(t, ready, true)
}

func TestWakeTakesAParkedConnectionOut(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Skip(err)
	}
	defer p.Close()
	server, _ := pair(t)
	ready := make(chan struct{}, 10)
	c := p.Register(raw(t, server), func() { ready <- struct{}{} })
	if !c.Park() {
		t.Fatal("Park failed")
	}
	c.Wake()
	waitReady(t, ready, true)
	if c.Park() {
		t.Fatal("Park after Wake: want false, the reader stays")
	}
	c.Wake() // not parked: nothing to do
	waitReady(t, ready, false)
	c.Forget()
}

func TestParkFailsOnAClosedConnection(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Skip(err)
	}
	defer p.Close()
	server, _ := pair(t)
	ready := make(chan struct{}, 1)
	c := p.Register(raw(t, server), func() { ready <- struct{}{} })
	server.Close()
	if c.Park() {
		t.Fatal("Park on a closed connection: want false")
	}
	waitReady(t, ready, false)
	c.Forget()
}
