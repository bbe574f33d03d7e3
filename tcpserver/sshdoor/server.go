package sshdoor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"chatbridge/tcpserver"
)

// Config holds the SSH door's settings. Zero fields take the defaults in
// brackets.
type Config struct {
	// HostKey is the server's identity (see [HostKey]); required.
	HostKey ssh.Signer

	Queue        int           // events queued for a member before it is cut off as too slow [1024]
	QueueBytes   int           // bytes queued and being written for a member, counted as its text lines, before it is cut off as too slow [tcpserver.DefaultQueueBytes; negative: no bound]
	WriteTimeout time.Duration // longest a write to a member may take, on the socket or waiting for SSH window, before it is cut off [10s]
	SendBuffer   int           // kernel send buffer of each connection, in bytes [128 KiB; negative: the kernel's own]
	Linger       time.Duration // after the last notice, how long to wait for the client to hang up [2s]

	// HandshakeTimeout is how long a connection has, from accept, to
	// finish the SSH handshake, authenticate, open its session and ask
	// for a shell [10s]. A connection that sits there instead is closed.
	HandshakeTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = tcpserver.DefaultQueueBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = tcpserver.DefaultSendBuffer
	}
	if c.Linger <= 0 {
		c.Linger = 2 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	return c
}

// keyExtension is where the authentication step leaves the fingerprint
// of the key a client proved it holds, for the session to find.
const keyExtension = "chatbridge-key"

// Server is the SSH door: it serves SSH clients as members of hub.
type Server struct {
	hub  *tcpserver.Hub
	cfg  Config
	log  *slog.Logger
	conf *ssh.ServerConfig
	bufs sync.Pool // *[]byte: a writer's render buffer, only for one batch

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closed    bool
	handlers  sync.WaitGroup
}

// New returns an SSH door whose members join hub.
func New(hub *tcpserver.Hub, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("sshdoor: no host key")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		hub:       hub,
		cfg:       cfg.withDefaults(),
		log:       log,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
	}
	s.conf = &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-chatbridge",
		// Any key is welcome, as in ssh-chat: the library checks that
		// the client holds it, and the member carries its fingerprint.
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			return &ssh.Permissions{Extensions: map[string]string{keyExtension: ssh.FingerprintSHA256(key)}}, nil
		},
		// A client without a key is asked nothing and comes in without
		// one. ("none" is not accepted: OpenSSH tries it first, and would
		// then never offer its key.)
		KeyboardInteractiveCallback: func(ssh.ConnMetadata, ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			return nil, nil
		},
	}
	s.conf.AddHostKey(cfg.HostKey)
	s.bufs.New = func() any {
		b := make([]byte, 0, renderBufSize)
		return &b
	}
	return s, nil
}

// renderBufSize is the size of the buffers writers borrow to render a
// batch; a bigger batch grows its buffer, which then goes back to the pool.
const renderBufSize = 8 << 10

// Refusal is what an SSH client refused at accept (see
// [tcpserver.ConnLimiter]) is sent: one line before any SSH, which the
// protocol allows a server to send before its version (RFC 4253, 4.2)
// and OpenSSH shows when the connection then closes.
func (s *Server) Refusal(reason string) []byte { return []byte("*** " + reason + "\r\n") }

// Serve accepts connections on l until Shutdown is called, when it returns
// tcpserver.ErrServerClosed, or ctx is done, when it closes every
// connection at once and returns ctx.Err(). It waits for every connection
// it accepted to be finished before it returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return tcpserver.ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()

	stop := context.AfterFunc(ctx, func() {
		l.Close()
		s.closeAll()
	})
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration // how long to sleep on accept failure
	for {
		nc, err := l.Accept()
		if err != nil {
			switch {
			case s.isClosed():
				s.handlers.Wait()
				return tcpserver.ErrServerClosed
			case ctx.Err() != nil:
				s.handlers.Wait()
				return ctx.Err()
			case temporary(err):
				// Out of file descriptors, most likely: wait for some to be
				// freed rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			s.closeAll()
			s.handlers.Wait()
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		delay = 0
		// Counted under the lock that Shutdown sets closed under, so that
		// no handler is added once Shutdown waits for them.
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.handlers.Done()
			s.handle(nc)
		}()
	}
}

func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// Shutdown stops accepting, tells every member "*** server shutting
// down", flushes what is queued for them and closes their sessions;
// connections not yet in a session are closed at once. It returns when
// all are closed, or, when ctx ends first, closes the rest at once and
// returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	for _, ss := range s.snapshot() {
		ss.closeGracefully("server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeAll()
		<-done
		return ctx.Err()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track adds ss to the connections served; it reports false, and ss must
// be closed, if the server is shutting down.
func (s *Server) track(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[ss] = struct{}{}
	return true
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	return list
}

func (s *Server) closeAll() {
	for _, ss := range s.snapshot() {
		ss.closeNow()
	}
}

// handle serves one connection: the handshake, within HandshakeTimeout,
// then its requests until it ends.
func (s *Server) handle(nc net.Conn) {
	tcpserver.CapSendBuffer(nc, s.cfg.SendBuffer)
	conn := &deadlineConn{Conn: nc, deadline: tcpserver.WriteDeadline{Timeout: s.cfg.WriteTimeout}}
	ss := &session{srv: s, nc: conn, addr: nc.RemoteAddr().String()}
	if !s.track(ss) {
		nc.Close()
		return
	}
	untrack := true
	defer func() {
		if untrack {
			s.untrack(ss)
		}
	}()
	// Reads and writes alike: the handshake, authentication, the session
	// channel and the shell request must all be done by then. The shell
	// request lifts it (see session.start).
	nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.conf)
	if err != nil {
		nc.Close()
		s.log.Debug("ssh handshake failed", "addr", ss.addr, "err", err)
		return
	}
	ss.sc = sc
	// The handshake grew this goroutine's stack (key exchange, signing),
	// and the runtime gives a stack back only slowly; the session's
	// requests are served, for as long as it lasts, on a new one.
	s.handlers.Go(func() {
		defer s.untrack(ss)
		ss.serve(chans, reqs)
	})
	untrack = false
}

// deadlineConn keeps a write deadline on every write the SSH library
// makes to the socket (channel data, replies, window adjustments, key
// exchange), moved forward as tcpserver.WriteDeadline does: a client that
// stops reading cannot hold a write, and with it the connection, for
// longer than WriteTimeout. The library serialises its writes; the mutex
// is for the rare write that is not (a reply to a global request and
// channel data, say).
type deadlineConn struct {
	net.Conn
	mu       sync.Mutex
	deadline tcpserver.WriteDeadline
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline.Refresh(c.Conn)
	return c.Conn.Write(p)
}

// lift takes away the handshake's deadlines: reads may wait for as long
// as the member is idle, and writes get theirs from Write.
func (c *deadlineConn) lift() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline.Forget()
	c.Conn.SetDeadline(time.Time{})
}
