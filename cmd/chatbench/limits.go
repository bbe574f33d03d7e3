package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: every
// connection is a descriptor, and the usual soft limit of 1024 is far below
// what a load run needs.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("set RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	return nil
}

// setRecvBuffer sets a socket's receive buffer, before it connects, so the
// window it offers stays small.
func setRecvBuffer(fd uintptr, n int) error {
	if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n); err != nil {
		return fmt.Errorf("SO_RCVBUF: %w", err)
	}
	return nil
}
