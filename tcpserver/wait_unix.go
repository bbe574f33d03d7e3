//go:build unix

package tcpserver

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// A readWaiter waits until a connection has data to read without holding a
// buffer, so that an idle member costs no read buffer at all: it asks the
// runtime's poller to wake it, and peeks one byte to tell "data" (or EOF,
// or an error: the next Read reports those) from "nothing yet".
type readWaiter struct {
	rc    syscall.RawConn
	ready func(fd uintptr) bool // built once, not per wait
	peek  [1]byte
}

// newReadWaiter returns a waiter for nc, or nil if nc has no file
// descriptor to poll (net.Pipe in tests); then Read simply blocks.
func newReadWaiter(nc net.Conn) *readWaiter {
	rc := RawConnOf(nc)
	if rc == nil {
		return nil
	}
	w := &readWaiter{rc: rc}
	w.ready = func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), w.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN)
	}
	return w
}

// wait returns once the connection is readable, or with the error that
// ends the wait (closed, deadline).
func (w *readWaiter) wait() error { return w.rc.Read(w.ready) }

// RawConnOf returns nc's raw connection, for ReadNow, or nil if it has no
// descriptor of its own (a TLS connection, a pipe) or the system has no
// poller for it.
func RawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// ReadNow reads into b what the connection behind rc holds now, without
// waiting: n > 0 is data, (0, nil) is nothing yet, io.EOF is the end.
func ReadNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var err error
	if rerr := rc.Read(func(fd uintptr) bool {
		n, err = syscall.Read(int(fd), b)
		return true // never wait
	}); rerr != nil {
		return 0, rerr
	}
	switch {
	case n > 0:
		return n, nil
	case err == nil:
		return 0, io.EOF
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		return 0, nil
	}
	return 0, err
}

// WriteNow writes what of b the connection behind rc takes now, without
// waiting: (0, nil) is a send buffer that is full. A write that must not
// wait for a member (a keepalive's ping, from a goroutine every member
// shares) goes this way.
func WriteNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var err error
	if werr := rc.Write(func(fd uintptr) bool {
		n, err = syscall.Write(int(fd), b)
		return true // never wait
	}); werr != nil {
		return 0, werr
	}
	switch {
	case n > 0:
		return n, nil
	case err == nil, errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		return 0, nil
	}
	return 0, err
}

// Readable reports whether the connection behind rc has something to
// read now (data, its end, an error), without reading it or waiting. A
// connection that cannot be looked at (closed, its read deadline passed)
// is readable: reading it says why.
func Readable(rc syscall.RawConn) bool {
	var peek [1]byte
	readable := false
	if err := rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		readable = !errors.Is(err, syscall.EAGAIN)
		return true // never wait
	}); err != nil {
		return true
	}
	return readable
}
