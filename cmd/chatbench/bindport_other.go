//go:build !linux

package main

import "syscall"

// bindNoPort: only Linux can put off a bound socket's port to its connect.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }
