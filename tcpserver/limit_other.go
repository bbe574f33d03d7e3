//go:build !unix

package tcpserver

import "io"

func fileLimit() int { return 0 }

func openSpare() io.Closer { return nil }
