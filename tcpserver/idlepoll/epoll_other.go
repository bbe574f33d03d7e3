//go:build !linux

package idlepoll

import (
	"errors"
	"syscall"
)

// A Poller parks nothing here: New fails.
type Poller struct{}

// New reports that this system has no Poller.
func New() (*Poller, error) { return nil, errors.New("idlepoll: parking needs Linux") }

// Close does nothing.
func (*Poller) Close() {}

func (*Poller) prepare(*Conn) int                     { return 0 }
func (*Poller) arm(syscall.RawConn, uint64, int) bool { return false }
func (*Poller) disarm(syscall.RawConn)                {}
func (*Poller) forget(*Conn)                          {}
