package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ceilingServer is the thinnest TCP broadcaster we can write, the yardstick
// for deliveries per server CPU-second: a goroutine per connection reading
// into 512 bytes, and each read's complete lines sent on, unchanged, to every
// other connection. Lines are cut at the last newline of a read (the rest
// waits for the next read) so that two senders' lines never interleave
// mid-line; a 512-byte run with no newline goes on as it is.
//
// Each message is one allocation shared read-only by every receiver. A
// receiver's writer goroutine exists only while its queue has something in
// it; a receiver whose queue is full is dropped.
type ceilingServer struct {
	log        *slog.Logger
	queueLimit int

	// mu is held for reading while a broadcast walks peers, and for
	// writing by join and leave, which are O(1) (a copy-on-write list
	// would make N joins cost O(N^2)).
	mu    sync.RWMutex
	peers []*ceilingPeer // guarded by mu; peers[p.slot] == p

	conns sync.WaitGroup // every reader and writer goroutine

	accepted, dropped, reads, bytesIn atomic.Int64
}

// ceilingPeer is one connection.
type ceilingPeer struct {
	c    net.Conn
	slot int // index in ceilingServer.peers; guarded by the server's mu

	mu      sync.Mutex
	queue   [][]byte // guarded by mu: messages waiting for the writer
	spare   [][]byte // guarded by mu: the last batch's slice, to reuse
	writing bool     // guarded by mu: a writer goroutine is running
	closed  bool     // guarded by mu
}

func newCeilingServer(log *slog.Logger, queueLimit int) *ceilingServer {
	return &ceilingServer{log: log, queueLimit: max(queueLimit, 1)}
}

// serve accepts on l until ctx ends, then closes l and every connection and
// waits for all their goroutines.
func (s *ceilingServer) serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var err error
	for {
		var c net.Conn
		c, err = l.Accept()
		if err != nil {
			if ctx.Err() == nil && acceptCanContinue(err) {
				// Out of descriptors, or a client gave up in the backlog:
				// this connection is lost, the server is not.
				s.log.Warn("accept", "err", err)
				if sleepCtx(ctx, 10*time.Millisecond) == nil {
					continue
				}
			}
			break
		}
		s.accepted.Add(1)
		p := &ceilingPeer{c: c}
		s.join(p)
		s.conns.Go(func() { s.readLoop(p) })
	}
	l.Close()
	s.mu.RLock()
	for _, p := range s.peers {
		p.close()
	}
	s.mu.RUnlock()
	s.conns.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accept on %s: %w", l.Addr(), err)
}

func acceptCanContinue(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS)
}

func (s *ceilingServer) join(p *ceilingPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.slot = len(s.peers)
	s.peers = append(s.peers, p)
}

// leave swaps the last peer into p's slot.
func (s *ceilingServer) leave(p *ceilingPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.peers[len(s.peers)-1]
	s.peers[p.slot] = last
	last.slot = p.slot
	s.peers[len(s.peers)-1] = nil
	s.peers = s.peers[:len(s.peers)-1]
}

func (s *ceilingServer) readLoop(p *ceilingPeer) {
	defer s.leave(p)
	defer p.close()
	buf := make([]byte, 512)
	held := 0 // bytes of an unfinished line kept at the front of buf
	for {
		n, err := p.c.Read(buf[held:])
		if n > 0 {
			s.reads.Add(1)
			s.bytesIn.Add(int64(n))
			end := held + n
			cut := 0
			if i := bytes.LastIndexByte(buf[held:end], '\n'); i >= 0 {
				cut = held + i + 1
			} else if end == len(buf) {
				cut = end
			}
			if cut > 0 {
				s.broadcast(p, bytes.Clone(buf[:cut]))
			}
			held = copy(buf, buf[cut:end])
		}
		if err != nil {
			if held > 0 {
				s.broadcast(p, bytes.Clone(buf[:held]))
			}
			return
		}
	}
}

// broadcast queues msg (which nobody may change any more) for everyone but from.
func (s *ceilingServer) broadcast(from *ceilingPeer, msg []byte) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.peers {
		if p != from && !s.enqueue(p, msg) {
			s.dropped.Add(1)
		}
	}
}

// enqueue adds msg to p's queue and starts p's writer if it is idle. It
// never blocks on the network; it reports false if it dropped p because
// its queue was full.
func (s *ceilingServer) enqueue(p *ceilingPeer, msg []byte) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return true
	}
	if len(p.queue) >= s.queueLimit {
		p.mu.Unlock()
		p.close()
		return false
	}
	p.queue = append(p.queue, msg)
	start := !p.writing
	p.writing = true
	p.mu.Unlock()
	if start {
		s.conns.Go(func() { p.writeLoop() })
	}
	return true
}

// writeLoop writes p's queue in batches, one writev each, and exits when
// the queue is empty or the connection fails.
func (p *ceilingPeer) writeLoop() {
	for {
		p.mu.Lock()
		batch := p.queue
		if len(batch) == 0 || p.closed {
			p.writing = false
			p.mu.Unlock()
			return
		}
		p.queue, p.spare = p.spare[:0], nil
		p.mu.Unlock()

		bufs := net.Buffers(batch) // WriteTo consumes bufs, so keep batch to reuse
		_, err := bufs.WriteTo(p.c)
		clear(batch)
		p.mu.Lock()
		p.spare = batch[:0]
		p.mu.Unlock()
		if err != nil {
			p.close()
		}
	}
}

func (p *ceilingPeer) close() {
	p.mu.Lock()
	p.closed = true
	p.queue = nil
	p.mu.Unlock()
	p.c.Close()
}

// ceilingConfig is one ceiling run.
type ceilingConfig struct {
	listen   string
	duration time.Duration
	queue    int
}

// ceilingReport is what the ceiling server prints when it stops.
type ceilingReport struct {
	Mode      string  `json:"mode"`
	Clients   int64   `json:"clients"`
	Reads     int64   `json:"reads"`
	BytesIn   int64   `json:"bytes_in"`
	Dropped   int64   `json:"dropped"`
	DurationS float64 `json:"duration_s"`
}

// runCeiling serves on cfg.listen until ctx ends or cfg.duration passes.
func runCeiling(ctx context.Context, cfg ceilingConfig, log *slog.Logger) (*ceilingReport, error) {
	addr, err := checkListenLoopback(ctx, cfg.listen)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("ceiling listening", "addr", l.Addr().String(), "duration", cfg.duration)
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	s := newCeilingServer(log, cfg.queue)
	start := time.Now()
	if err := s.serve(ctx, l); err != nil && !errors.Is(err, net.ErrClosed) {
		return nil, err
	}
	return &ceilingReport{
		Mode: "ceiling", Clients: s.accepted.Load(), Reads: s.reads.Load(),
		BytesIn: s.bytesIn.Load(), Dropped: s.dropped.Load(),
		DurationS: time.Since(start).Seconds(),
	}, nil
}

func (r *ceilingReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, r)
	}
	_, err := fmt.Fprintf(w, "ceiling: %d clients, %d reads, %d bytes in, %d dropped, %.1fs\n",
		r.Clients, r.Reads, r.BytesIn, r.Dropped, r.DurationS)
	return err
}
