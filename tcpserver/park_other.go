//go:build !linux

package tcpserver

import "errors"

// idlePoller is Linux-only (epoll); elsewhere every idle connection keeps
// a reader goroutine parked in the runtime's poller.
type idlePoller struct{}

func newIdlePoller() (*idlePoller, error) { return nil, errors.New("no idle poller on this system") }

func (*idlePoller) stop()                          {}
func (*idlePoller) prepare(*tcpConn) int           { return 0 }
func (*idlePoller) arm(*tcpConn, uint64, int) bool { return false }
func (*idlePoller) unpark(*tcpConn)                {}
func (*idlePoller) forget(*tcpConn)                {}
