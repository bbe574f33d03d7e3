//go:build !unix

package tcpserver

import "net"

type readWaiter struct{}

// newReadWaiter returns nil where there is no poller to wait on: the
// reader then blocks in Read, holding its buffer.
func newReadWaiter(net.Conn) *readWaiter { return nil }

func (*readWaiter) wait() error { return nil }
