//go:build unix

package tcpserver

import (
	"io"
	"os"
	"syscall"
)

// fileLimit returns the process's open-file limit (the soft one, which
// the Go runtime raises to the hard one at start), or 0 if unknown.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// openSpare holds one descriptor back, for ConnLimiter.shed; nil if none
// can be had.
func openSpare() io.Closer {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return f
}
