//go:build unix

package bridge

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// rawConnOf returns nc's raw connection for readNow, or nil if it has no
// descriptor of its own (a TLS connection, a pipe).
func rawConnOf(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// readNow reads into b what the network holds now, without waiting:
// n > 0 is data, (0, nil) is nothing yet, io.EOF is the end.
func readNow(raw syscall.RawConn, b []byte) (int, error) {
	var n int
	var err error
	if rerr := raw.Read(func(fd uintptr) bool {
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
