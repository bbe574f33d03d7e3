//go:build unix

package tcpserver

import (
	"errors"
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
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
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
