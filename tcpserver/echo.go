package tcpserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
)

// EchoWelcome is the line the seed's echo server greets each client with.
const EchoWelcome = "Welcome to the server. Type something and hit enter\n"

// EchoServer is the seed's threaded echo service, byte for byte: it greets
// each client with [EchoWelcome] and answers every line with "OK..." and
// the line, its line end included. Unlike the seed it keeps no more than
// MaxLine bytes of a line in memory (a longer line is answered in pieces,
// as the seed answers each 1024-byte read), and it hangs up on a client
// that sends nothing for IdleTimeout: echo is not a chat room, and an idle
// connection is a descriptor someone else could use. How many connections
// it takes is the listener's business (see [ConnLimiter]).
type EchoServer struct {
	cfg   EchoConfig
	log   *slog.Logger
	group group
}

// EchoConfig holds the echo server's settings. Zero fields take the
// defaults in brackets.
type EchoConfig struct {
	MaxLine      int           // bytes of a line held at once [4096]
	WriteTimeout time.Duration // longest a write may take before the client is dropped [10s]
	IdleTimeout  time.Duration // longest a client may send nothing before it is dropped [2m]
}

// NewEcho returns an echo server with the given settings.
func NewEcho(cfg EchoConfig, log *slog.Logger) *EchoServer {
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 4096
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &EchoServer{cfg: cfg, log: log}
	s.group.logs = NewLogThrottle(log, LogEvery)
	return s
}

// Serve accepts echo clients on l; see [Server.Serve].
func (s *EchoServer) Serve(ctx context.Context, l net.Listener) error {
	return s.group.serve(ctx, l, s.handle)
}

// Shutdown stops accepting and closes every client; see [Server.Shutdown].
func (s *EchoServer) Shutdown(ctx context.Context) error {
	return s.group.shutdown(ctx, "")
}

// Refusal is what an echo client refused at accept (see [ConnLimiter])
// is told: the seed's protocol has no refusal, so one line saying why.
func (s *EchoServer) Refusal(reason string) []byte { return []byte(reason + "\n") }

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
	r := bufio.NewReaderSize(idleReader{nc, s.cfg.IdleTimeout}, s.cfg.MaxLine)
	reply := make([]byte, 0, len("OK...")+s.cfg.MaxLine)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			reply = append(append(reply[:0], "OK..."...), line...)
			if werr := s.write(nc, reply); werr != nil {
				return
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.log.Debug("echo client idle; dropped", "addr", nc.RemoteAddr(), "after", s.cfg.IdleTimeout)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("echo client read failed", "addr", nc.RemoteAddr(), "err", err)
			}
			return
		}
	}
}

func (s *EchoServer) write(nc net.Conn, b []byte) error {
	nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	_, err := nc.Write(b)
	return err
}

// idleReader gives each read of a connection a deadline of timeout from
// its start: a client that sends nothing for that long is dropped.
type idleReader struct {
	nc      net.Conn
	timeout time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	r.nc.SetReadDeadline(time.Now().Add(r.timeout))
	return r.nc.Read(p)
}
