//go:build unix

package tcpserver

import (
	"net"
	"testing"
	"time"
)

// loopbackPair returns both ends of a TCP connection on loopback.
func loopbackPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// Readable looks without reading or waiting: nothing, then data (left
// for the read), then the peer's end; a connection it cannot look at
// says so by being readable, so that a read says why.
func TestReadable(t *testing.T) {
	c, s := loopbackPair(t)
	rc := RawConnOf(s)
	if Readable(rc) {
		t.Fatal("readable before anything was sent")
	}
	c.Write([]byte("x"))
	deadline := time.Now().Add(5 * time.Second)
	for !Readable(rc) {
		if time.Now().After(deadline) {
			t.Fatal("not readable with a byte sent")
		}
		time.Sleep(time.Millisecond)
	}
	var b [4]byte
	if n, err := s.Read(b[:]); n != 1 || err != nil {
		t.Fatalf("read after Readable: %d, %v; want the byte", n, err)
	}
	if Readable(rc) {
		t.Fatal("readable after the byte was read")
	}
	s.SetReadDeadline(time.Unix(1, 0))
	if !Readable(rc) {
		t.Fatal("a connection whose read deadline passed is not readable")
	}
	s.SetReadDeadline(time.Time{})
	c.Close()
	for !Readable(rc) {
		if time.Now().After(deadline) {
			t.Fatal("not readable at the peer's end")
		}
		time.Sleep(time.Millisecond)
	}
}

// WriteNow writes what the socket takes without waiting and says 0 once
// it is full; past the write deadline it writes nothing and says so (the
// bridge refreshes the deadline of an idle connection before a ping).
func TestWriteNow(t *testing.T) {
	c, s := loopbackPair(t)
	s.SetWriteBuffer(4096)
	rc := RawConnOf(s)
	if n, err := WriteNow(rc, []byte("ping")); n != 4 || err != nil {
		t.Fatalf("WriteNow = %d, %v; want 4", n, err)
	}
	var b [4]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(b[:]); err != nil || string(b[:]) != "ping" {
		t.Fatalf("read %q, %v", b, err)
	}
	chunk := make([]byte, 64<<10)
	full := false
	for range 1000 {
		n, err := WriteNow(rc, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("64 MiB written to a peer that reads nothing, and never full")
	}
	s.SetWriteDeadline(time.Unix(1, 0))
	if _, err := WriteNow(rc, []byte("x")); err == nil {
		t.Fatal("WriteNow past the write deadline: no error")
	}
}
