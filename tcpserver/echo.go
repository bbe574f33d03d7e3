package tcpserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"
)

// EchoWelcome is the line the seed's echo server greets each client with.
const EchoWelcome = "Welcome to the server. Type something and hit enter\n"

// EchoServer is the seed's threaded echo service, byte for byte: it greets
// each client with [EchoWelcome] and answers every line with "OK..." and
// the line, its line end included. Unlike the seed it keeps no more than
// maxLine bytes of a line in memory: a longer line is answered in pieces,
// as the seed answers each 1024-byte read.
type EchoServer struct {
	maxLine int
	timeout time.Duration
	log     *slog.Logger
	group   group
}

// NewEcho returns an echo server that holds at most maxLine bytes per
// line (4096 if maxLine <= 0) and gives up on a client whose writes take
// longer than writeTimeout (10s if <= 0).
func NewEcho(maxLine int, writeTimeout time.Duration, log *slog.Logger) *EchoServer {
	if maxLine <= 0 {
		maxLine = 4096
	}
	if writeTimeout <= 0 {
		writeTimeout = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &EchoServer{maxLine: maxLine, timeout: writeTimeout, log: log}
}

// Serve accepts echo clients on l; see [Server.Serve].
func (s *EchoServer) Serve(ctx context.Context, l net.Listener) error {
	return s.group.serve(ctx, l, s.handle)
}

// Shutdown stops accepting and closes every client; see [Server.Shutdown].
func (s *EchoServer) Shutdown(ctx context.Context) error {
	return s.group.shutdown(ctx, "")
}

// echoConn needs no goodbye: the seed's protocol has none.
type echoConn struct{ net.Conn }

func (c echoConn) closeGracefully(string) { c.Close() }
func (c echoConn) closeNow()              { c.Close() }

func (s *EchoServer) handle(nc net.Conn) {
	c := echoConn{nc}
	if !s.group.track(c) {
		nc.Close()
		return
	}
	defer s.group.untrack(c)
	defer nc.Close()

	if err := s.write(nc, []byte(EchoWelcome)); err != nil {
		return
	}
	r := bufio.NewReaderSize(nc, s.maxLine)
	reply := make([]byte, 0, len("OK...")+s.maxLine)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			reply = append(append(reply[:0], "OK..."...), line...)
			if werr := s.write(nc, reply); werr != nil {
				return
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("echo client read failed", "addr", nc.RemoteAddr(), "err", err)
			}
			return
		}
	}
}

func (s *EchoServer) write(nc net.Conn, b []byte) error {
	nc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := nc.Write(b)
	return err
}
