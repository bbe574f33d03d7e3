package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// runSlow: healthy chat alone, then beside clients that never read and
// clients that read slowly.
func runSlow(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	r := &scenarioResult{Params: fmt.Sprintf("%d receivers, %d senders at %g lines/s of %d bytes, %d never-reading clients, %d reading %d bytes/s, %s per phase",
		e.v.receivers, e.v.senders, e.v.rate, e.v.pad, e.v.slow, e.v.slowReaders, e.v.slowRate, e.v.duration/2)}
	e.baseline(ctx, r)
	stop := e.watchRSS(ctx)
	defer stop()

	base, err := e.fanout(ctx, e.v.duration/2)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	r.addFanout(base)

	// The slow ones: connected, in the room, never reading (or reading at
	// --slow-rate), with the smallest receive buffer the kernel allows so
	// they fill up soon. They come from source addresses of their own, 50
	// each, after the healthy clients', as many users would.
	d := e.cc.newDialer()
	defer d.closeIdle()
	first := e.v.receivers + e.v.senders
	var slow, readers []*slowClient
	defer func() { closeSlow(slow); closeSlow(readers) }()
	for i := range e.v.slow + e.v.slowReaders {
		rate := 0
		if i >= e.v.slow {
			rate = e.v.slowRate
		}
		c, err := dialSlow(ctx, d, d.endpointFor(i), first+i, rate)
		if err != nil {
			return nil, fmt.Errorf("slow client %d: %w", i, err)
		}
		if rate == 0 {
			slow = append(slow, c)
		} else {
			readers = append(readers, c)
		}
	}

	with, err := e.fanout(ctx, e.v.duration/2)
	if err != nil {
		return nil, fmt.Errorf("with slow clients: %w", err)
	}
	r.addFanout(with)
	checkHealthy(r, base)
	checkHealthy(r, with)
	if len(readers) == 0 {
		bound := 2*base.LatP99us + 2000 // 2x, and 2ms for a run too quiet to measure
		r.check("healthy p99 within 2x", with.LatP99us <= bound,
			"p99 %.1f ms alone, %.1f ms beside slow clients (bound %.1f ms)", base.LatP99us/1e3, with.LatP99us/1e3, bound/1e3)
	} else {
		// Writing to the readers is work the server does (and reading,
		// the load tool, on the same machine): the healthy ones may wait
		// for the CPU, but not for the readers' backlogs.
		r.check("healthy p99 under 1 s", with.LatP99us <= 1e6,
			"p99 %.1f ms alone, %.1f ms beside %d slow readers", base.LatP99us/1e3, with.LatP99us/1e3, len(readers))
	}
	r.Clients += len(slow) + len(readers)

	// A slow client's last write may still be waiting for the server's
	// write timeout: give it that long before looking (reading would let
	// the write through). Readers at a rate stay as long as they keep up;
	// the ones that do not are cut off in their turn. Either is right:
	// what matters is what they cost the server while they lag, and that
	// it gives it back. The traffic has stopped; what they still hold
	// after --grace is what the server keeps for them.
	sleepCtx(ctx, e.v.grace)
	if len(readers) > 0 {
		cut := 0
		for _, c := range readers {
			if c.endedByServer() {
				cut++
			}
		}
		r.check("slow readers", true, "%d of %d reading %d bytes/s have read to their end, cut off by the server; server RSS %d KiB %s after the traffic",
			cut, len(readers), e.v.slowRate, e.rss(ctx), e.v.grace)
	}
	if len(slow) > 0 {
		cut := 0
		for _, c := range slow {
			if endedByServer(ctx, c.conn, 10*time.Second) {
				cut++
			}
		}
		r.check("slow clients cut off", cut == len(slow), "%d of %d closed by the server", cut, len(slow))
	}
	e.checkRSS(r, stop())
	closeSlow(slow)
	closeSlow(readers)
	slow, readers = nil, nil
	e.settleBack(ctx, r, 32)
	return r, nil
}

// A slowClient is a member that never reads, or reads at a rate.
type slowClient struct {
	conn benchConn
	// With a rate, a goroutine reads and throws away what comes; done is
	// closed when it stops, and ended says whether the server ended the
	// connection (rather than close).
	done    chan struct{}
	ended   atomic.Bool
	closing atomic.Bool
}

// endedByServer reports whether the reader has seen the server end the
// connection, not waiting for it.
func (c *slowClient) endedByServer() bool {
	select {
	case <-c.done:
		return c.ended.Load()
	default:
		return false
	}
}

// closeSlow hangs up every one of slow, then waits for their readers.
func closeSlow(slow []*slowClient) {
	for _, c := range slow {
		c.closing.Store(true)
		c.conn.close()
	}
	for _, c := range slow {
		if c.done != nil {
			<-c.done
		}
	}
}

// dialSlow connects a client that will not read, or reads at rate bytes a
// second, with a small receive buffer (TCP) so that the server's writes to
// it back up quickly. slot picks its source address (see dialer.sourceFor).
func dialSlow(ctx context.Context, d *dialer, ep endpoint, slot int, rate int) (*slowClient, error) {
	src, err := d.sourceFor(ep, slot)
	if err != nil {
		return nil, err
	}
	nd := d.netDialer(src)
	nd.Control = func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = setRecvBuffer(fd, 4096) })
		return serr
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil || rate <= 0 {
			return c, err
		}
		return &throttledConn{Conn: c, rate: float64(rate)}, nil
	}
	var conn benchConn
	if ep.ws {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, ep.dialAddr)
		}}}
		c, _, err := websocket.Dial(ctx, ep.url, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", ep.given, err)
		}
		c.SetReadLimit(-1)
		conn = newWSConn(c, wsOptions{})
	} else {
		c, err := dial(ctx, ep.dialAddr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", ep.given, err)
		}
		conn = &tcpConn{c: c}
	}
	s := &slowClient{conn: conn}
	if rate > 0 {
		s.done = make(chan struct{})
		go func() {
			defer close(s.done)
			conn.readLoop(make([]byte, 16<<10), func([]byte, bool) {})
			s.ended.Store(!s.closing.Load())
		}()
	}
	return s, nil
}

// throttledConn reads no faster than rate bytes a second, a tenth of a
// second's worth at most at a time: a phone on a slow link, still
// reading.
type throttledConn struct {
	net.Conn
	rate float64   // bytes a second
	next time.Time // when the next read may start; owned by the reader
}

func (t *throttledConn) Read(p []byte) (int, error) {
	if most := max(int(t.rate/10), 1); len(p) > most {
		p = p[:most]
	}
	if wait := time.Until(t.next); wait > 0 {
		time.Sleep(wait)
	}
	n, err := t.Conn.Read(p)
	if now := time.Now(); t.next.Before(now) {
		t.next = now
	}
	t.next = t.next.Add(time.Duration(float64(n) / t.rate * float64(time.Second)))
	return n, err
}

// endedByServer reads what the server sent c (a slow client catching up
// at last) and reports whether the server had closed the connection,
// rather than the reads going quiet for a second within limit.
func endedByServer(ctx context.Context, c benchConn, limit time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	buf := make([]byte, 64<<10)
	switch c := c.(type) {
	case *tcpConn:
		for ctx.Err() == nil {
			c.c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := c.c.Read(buf)
			var ne net.Error
			switch {
			case err == nil:
			case errors.As(err, &ne) && ne.Timeout():
				return false
			default:
				return true // EOF or reset
			}
		}
	case *wsConn:
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			_, rd, err := c.c.Reader(rctx)
			if err == nil {
				_, err = io.CopyBuffer(io.Discard, rd, buf)
			}
			rcancel()
			if err != nil {
				return websocket.CloseStatus(err) != -1 || !errors.Is(err, context.DeadlineExceeded)
			}
		}
	}
	return false
}
