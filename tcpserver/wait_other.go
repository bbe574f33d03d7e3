//go:build !unix

package tcpserver

import (
	"net"
	"syscall"
)

type readWaiter struct{ rc syscall.RawConn }

// newReadWaiter returns nil where there is no poller to wait on: the
// reader then blocks in Read, holding its buffer.
func newReadWaiter(net.Conn) *readWaiter { return nil }

func (*readWaiter) wait() error { return nil }

// RawConnOf returns nil: reading without waiting is for unix systems.
func RawConnOf(net.Conn) syscall.RawConn { return nil }

// ReadNow is never called where RawConnOf returns nil.
func ReadNow(syscall.RawConn, []byte) (int, error) { return 0, nil }

// Readable is never called where RawConnOf returns nil.
func Readable(syscall.RawConn) bool { return true }

// WriteNow is never called where RawConnOf returns nil.
func WriteNow(syscall.RawConn, []byte) (int, error) { return 0, nil }
