//go:build !unix

package bridge

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: read-ahead is for unix systems only.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

// readNow is never called where rawConnOf returns nil.
func readNow(syscall.RawConn, []byte) (int, error) { return 0, nil }
