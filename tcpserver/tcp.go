package tcpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"chatbridge/tcpserver/idlepoll"
)

// Config holds the TCP chat server's per-connection settings. Zero fields
// take the defaults in brackets.
type Config struct {
	Queue        int           // events queued for a member before it is cut off as too slow [1024]
	QueueBytes   int           // bytes queued and being written for a member before it is cut off as too slow [DefaultQueueBytes; negative: no bound]
	WriteTimeout time.Duration // longest one write to a member may take before it is cut off, at least three quarters of it (see WriteDeadline) [10s]
	Linger       time.Duration // after the last notice, how long to wait for the client to hang up [2s]
	// SendBuffer caps each connection's kernel send buffer, in bytes
	// [128 KiB; negative: the kernel's own, which grows to megabytes]. A
	// member who stops reading then blocks its writer soon and is cut off
	// as too slow, and cannot make the kernel hold megabytes for it.
	SendBuffer int
}

func (c Config) withDefaults() Config {
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Linger <= 0 {
		c.Linger = 2 * time.Second
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	return c
}

// DefaultSendBuffer is the kernel send buffer a member's socket gets.
const DefaultSendBuffer = 128 << 10

// CapSendBuffer caps nc's kernel send buffer at size bytes, if nc is TCP
// (or TLS over TCP) and size is positive (see Config.SendBuffer). The
// hub's other transports use it too.
func CapSendBuffer(nc net.Conn, size int) {
	if w, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = w.NetConn()
	}
	if tc, ok := nc.(interface{ SetWriteBuffer(int) error }); ok && size > 0 {
		tc.SetWriteBuffer(size)
	}
}

// readBufSize is the size of the buffers lent to readers, only for the
// length of one read. A whole read is split into lines at once.
const readBufSize = 4096

// moreReads is how many more buffers a reader takes, without waiting, when
// a read filled its buffer (see tcpConn.read).
const moreReads = 7

// outBufSize is the size of the buffers lent to writers, only for the
// length of one batch (see writeEvents).
const outBufSize = 32 << 10

// Server is the TCP chat server: telnet and nc users, one line per message.
type Server struct {
	hub     *Hub
	cfg     Config
	log     *slog.Logger
	bufs    sync.Pool // *[]byte of readBufSize
	outBufs sync.Pool // *[]byte of outBufSize capacity
	group   group

	idle idlepoll.Lazy // parks idle members while any Serve runs
	logs *LogThrottle  // refusals and failed accepts, a line per kind per LogEvery
}

// New returns a TCP chat server whose members join hub.
func New(hub *Hub, cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{hub: hub, cfg: cfg.withDefaults(), log: log, logs: NewLogThrottle(log, LogEvery)}
	s.group.logs = s.logs
	s.bufs.New = func() any {
		b := make([]byte, readBufSize)
		return &b
	}
	s.outBufs.New = func() any {
		b := make([]byte, 0, outBufSize)
		return &b
	}
	return s
}

// Serve accepts connections on l until Shutdown is called, when it returns
// ErrServerClosed, or ctx is done, when it closes every connection at once
// and returns ctx.Err(). It waits for every connection it accepted to be
// finished before it returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if err := s.idle.Acquire(); err != nil {
		s.log.Debug("idle connections keep a goroutine each", "why", err)
	}
	// group.serve waits for every reader, parked ones included.
	defer s.idle.Release()
	return s.group.serve(ctx, l, s.handle)
}

// Shutdown stops accepting, tells every member "*** server shutting down",
// flushes what is queued for them and closes their connections. It
// returns when all are closed, or, when ctx ends first, closes the rest at
// once and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	return s.group.shutdown(ctx, "server shutting down")
}

// Refusal is what a telnet or nc client refused at accept (see
// [ConnLimiter]) is told: one line saying why.
func (s *Server) Refusal(reason string) []byte { return []byte("*** " + reason + "\r\n") }

func (s *Server) handle(nc net.Conn) {
	CapSendBuffer(nc, s.cfg.SendBuffer)
	c := &tcpConn{srv: s, conn: nc, deadline: WriteDeadline{Timeout: s.cfg.WriteTimeout}}
	c.out.Init(s.hub, s.cfg.Queue, s.cfg.QueueBytes, c)
	// Whatever a writer may read (c.idle, through wake) is set before the
	// connection is tracked and joins the hub, where a shutdown or a
	// broadcast can start one.
	c.wait = newReadWaiter(nc)
	if p := s.idle.Poller(); p != nil && c.wait != nil {
		c.idle = p.Register(c.wait.rc, c.spawn)
	}
	if !s.group.track(c) {
		nc.Close()
		return
	}
	addr := nc.RemoteAddr().String()
	client, err := s.hub.Connect(c, ConnectInfo{Addr: addr, Transport: "tcp"})
	if err != nil {
		s.group.untrack(c)
		s.logs.Log(slog.LevelInfo, "connections refused ("+err.Error()+")", "connection refused", "addr", addr, "reason", err)
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(noticeLine(err.Error()))
		nc.Close()
		return
	}
	c.client = client
	c.lines.Max = s.hub.cfg.MaxLine
	c.lines.answerTelnet()
	c.next()
}

// emit hands the client one line the reader split off (see LineReader).
func (c *tcpConn) emit(line []byte, tooLong bool) {
	if tooLong {
		c.client.TooLong()
		return
	}
	c.client.Handle(line)
}

// tcpConn is one telnet or nc user: a [Member] whose writer goroutine runs
// only while there is something to write, and whose reader holds no buffer
// while it waits.
type tcpConn struct {
	srv  *Server
	conn net.Conn

	// Owned by the reader.
	client *Client
	lines  LineReader
	wait   *readWaiter // nil where there is no poller

	// idle parks the connection between reads (see package idlepoll);
	// nil where connections are not parked. pause stops the reader while
	// the member's lines wait for the rate.
	idle  *idlepoll.Conn
	pause Pause

	out      Outbox        // the queue and its writer; tcpConn is its Sink
	deadline WriteDeadline // the writer's; guarded by out's lock
}

// Send queues ev (see [Outbox.Send]).
func (c *tcpConn) Send(ev *Event) { c.out.Send(ev) }

// QueueBound returns the bytes its queue may hold (see [QueueBounded]).
func (c *tcpConn) QueueBound() int { return c.out.Bound() }

// TrySend queues ev if there is room for it (see [Outbox.TrySend]).
func (c *tcpConn) TrySend(ev *Event) bool { return c.out.TrySend(ev) }

// Close sends what is queued, then "*** reason", then hangs up.
func (c *tcpConn) Close(reason string) { c.closeGracefully(reason) }

func (c *tcpConn) closeGracefully(reason string) {
	c.out.Close(reason, (&Event{Kind: KindSystem, Text: reason}).finish())
}

func (c *tcpConn) closeNow() {
	c.wake()
	c.conn.Close()
}

// BeginBatch makes sure the write of the next batch has a deadline.
func (c *tcpConn) BeginBatch() { c.deadline.Refresh(c.conn) }

// Interrupt ends a write in progress: the member is cut off.
func (c *tcpConn) Interrupt() {
	c.deadline.Forget()
	c.conn.SetWriteDeadline(time.Now())
}

// Cost is what ev weighs in the member's queue: its text line.
func (c *tcpConn) Cost(ev *Event) int { return len(ev.line) }

// WriteEvents writes batch in as few writes as the out buffer allows: the
// lines are copied into a pooled buffer, borrowed for the call. (writev
// would save the copy but leaves every connection's descriptor holding an
// iovec array as long as its biggest batch, up to 16 KiB, for good.)
func (c *tcpConn) WriteEvents(batch []*Event) error {
	if len(batch) == 1 {
		_, err := c.conn.Write(batch[0].line)
		return err
	}
	bp := c.srv.outBufs.Get().(*[]byte)
	defer c.srv.outBufs.Put(bp)
	b := (*bp)[:0]
	for _, ev := range batch {
		if len(b)+len(ev.line) > cap(b) && len(b) > 0 {
			if _, err := c.conn.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if len(ev.line) > cap(b) {
			if _, err := c.conn.Write(ev.line); err != nil {
				return err
			}
			continue
		}
		b = append(b, ev.line...)
	}
	if len(b) == 0 {
		return nil
	}
	_, err := c.conn.Write(b)
	return err
}

// Failed closes a connection whose write failed.
func (c *tcpConn) Failed(error) {
	c.wake()
	c.conn.Close()
}

// Abort tries once, briefly, to tell a member that is being cut off why,
// then closes the connection.
func (c *tcpConn) Abort(reason string) {
	c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.conn.Write(noticeLine("disconnected: " + reason))
	c.wake()
	c.conn.Close()
}

// Drained ends a connection once its last notice is written: it sends FIN
// and leaves the reader a little while to see the client hang up, so that
// whatever the client still sends does not turn our close into a reset
// that would throw away the notice.
func (c *tcpConn) Drained(string) {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.conn.SetReadDeadline(time.Now().Add(c.srv.cfg.Linger))
		c.wake() // a parked reader would never see the deadline
		return
	}
	c.wake()
	c.conn.Close()
}

func (c *tcpConn) leaveReason() string {
	if r := c.out.Reason(); r != "server shutting down" {
		return r
	}
	return ""
}

// finish closes the connection and waits for the writer; after it the
// member takes no more events.
func (c *tcpConn) finish() {
	c.out.Stop()
	c.conn.Close()
	c.out.Wait()
}

// hop goes on reading in a new goroutine, and the caller must return.
//
// Handling a line (a broadcast, a command) grows the reader's stack, and
// the runtime will not shrink a stack below 4 KiB for a goroutine parked
// in a read, so an idle member would keep twice the stack it needs. A new
// goroutine starts with the smallest stack. The reader is thus a chain of
// goroutines, one at a time, each counted by the server's group.
func (c *tcpConn) hop() {
	c.srv.group.handlers.Add(1)
	c.spawn()
}

// spawn starts a reader that takes over one count in the group's handlers.
func (c *tcpConn) spawn() {
	go func() {
		defer c.srv.group.handlers.Done()
		c.read()
	}()
}

// read reads lines and hands them to the client until the connection
// ends, when it has the client leave. Between reads it waits for data
// without holding a buffer; the buffer for one read is borrowed from a
// pool. After a read with data in it, it yields to the writers that read
// may have woken and hops (see hop). While the member's lines wait for
// the rate it reads nothing (see lagging).
func (c *tcpConn) read() {
	if c.lagging() {
		return
	}
	if c.wait != nil {
		if err := c.wait.wait(); err != nil {
			c.end()
			return
		}
	}
	bp := c.srv.bufs.Get().(*[]byte)
	n, err := c.conn.Read(*bp)
	var wait time.Duration
	// Once the connection is closing, what the member still sends is not
	// said; one look per read, not per line.
	if n > 0 && !c.out.Closing() {
		c.client.Hold()
		c.lines.Feed((*bp)[:n], c.emit)
		// A full buffer says the client sent more than it holds: what has
		// already arrived is read too, without waiting, up to moreReads
		// buffers, and said in the same batch. A client sending flat out
		// then costs each member one write per moreReads+1 buffers of
		// lines, not one per buffer. (A flood is read on too, and what
		// does not fit in its sender's backlog is refused.)
		for k := 0; n == len(*bp) && err == nil && c.wait != nil && k < moreReads; k++ {
			n, err = ReadNow(c.wait.rc, *bp)
			c.lines.Feed((*bp)[:n], c.emit)
		}
		wait = c.client.Resume()
		c.client.Flush()
		// Answers to telnet negotiation go after whatever the lines
		// before them made (a DO TIMING-MARK is answered once what was
		// sent before it is done), through the queue, in order.
		if ev := c.lines.takeTelnetAnswers(); ev != nil {
			c.out.Send(ev)
		}
	}
	c.srv.bufs.Put(bp)
	// Lines that wait are said before the end of the stream is acted on:
	// a paste followed by a hang-up arrives whole. The end is read again
	// once they have gone.
	if (err == nil || errors.Is(err, io.EOF)) && c.pauseFor(wait) {
		return
	}
	if err != nil {
		c.end()
		return
	}
	// A sender whose socket is full of lines would otherwise fan out read
	// after read while the writers it woke wait for a CPU, and their
	// queues, not their readers, would overflow. Let them run first.
	runtime.Gosched()
	c.next()
}

// next waits for the next read without a goroutine if it can (park), or
// in a new one (hop). Either way the caller must return. A parked
// connection holds one count in the group's handlers, as a reader would,
// so that Serve and Shutdown wait for it; the reader that spawn starts
// when it is ready takes the count over.
func (c *tcpConn) next() {
	if c.idle != nil {
		c.srv.group.handlers.Add(1)
		if c.idle.Park() {
			return
		}
		c.spawn()
		return
	}
	c.hop()
}

// lagging hands the client the turn of the lines that wait for the rate,
// if any, and reports true if some still wait: the reader is then paused
// until the next may go (see pauseFor), and the caller must return. Once
// the connection is closing nothing more is said: the lines that wait are
// dropped when the member leaves.
func (c *tcpConn) lagging() bool {
	if !c.client.Waiting() || c.out.Closing() {
		return false
	}
	c.client.Hold()
	wait := c.client.Resume()
	c.client.Flush()
	return c.pauseFor(wait)
}

// pauseFor pauses the reader for d, if d is positive, without a goroutine
// (see Pause), and reports whether it did: then the caller must return.
// A paused connection holds one count in the group's handlers, as a
// parked one does, which the reader the pause starts takes over. It does
// not pause a connection being ended (see wake).
func (c *tcpConn) pauseFor(d time.Duration) bool {
	if d <= 0 {
		return false
	}
	c.srv.group.handlers.Add(1)
	if c.pause.Sleep(d, c.spawn) {
		return true
	}
	c.srv.group.handlers.Done()
	return false
}

// wake makes sure a reader runs for c from now on: the server is ending
// the connection, and a parked or paused one would never see it end. It
// must be called before the connection is closed.
func (c *tcpConn) wake() {
	if c.idle != nil {
		c.idle.Wake()
	}
	c.pause.Wake()
}

// end finishes the session once the connection is done with.
func (c *tcpConn) end() {
	if c.idle != nil {
		c.idle.Forget()
	}
	c.client.Leave(c.leaveReason())
	c.finish()
	c.srv.group.untrack(c)
}
