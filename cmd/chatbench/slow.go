package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// runSlow: healthy chat alone, then beside clients that never read.
func runSlow(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	r := &scenarioResult{Params: fmt.Sprintf("%d receivers, %d senders at %g lines/s of %d bytes, %d never-reading clients, %s per phase",
		e.v.receivers, e.v.senders, e.v.rate, e.v.pad, e.v.slow, e.v.duration/2)}
	e.baseline(ctx, r)
	stop := e.watchRSS(ctx)
	defer stop()

	base, err := e.fanout(ctx, e.v.duration/2)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	r.addFanout(base)

	// The slow ones: connected, in the room, never reading, with the
	// smallest receive buffer the kernel allows so they fill up soon.
	d := e.cc.newDialer()
	defer d.closeIdle()
	var slow []benchConn
	for i := range e.v.slow {
		ep := d.endpointFor(i)
		c, err := dialSlow(ctx, ep)
		if err != nil {
			return nil, fmt.Errorf("slow client %d: %w", i, err)
		}
		defer c.close()
		slow = append(slow, c)
	}

	with, err := e.fanout(ctx, e.v.duration/2)
	if err != nil {
		return nil, fmt.Errorf("with slow clients: %w", err)
	}
	r.addFanout(with)
	checkHealthy(r, base)
	checkHealthy(r, with)
	bound := 2*base.LatP99us + 2000 // 2x, and 2ms for a run too quiet to measure
	r.check("healthy p99 within 2x", with.LatP99us <= bound,
		"p99 %.1f ms alone, %.1f ms beside slow clients (bound %.1f ms)", base.LatP99us/1e3, with.LatP99us/1e3, bound/1e3)

	// A slow client's last write may still be waiting for the server's
	// write timeout: give it that long before looking (reading would let
	// the write through).
	sleepCtx(ctx, e.v.grace)
	cut := 0
	for _, c := range slow {
		if endedByServer(ctx, c, 10*time.Second) {
			cut++
		}
	}
	r.Clients += len(slow)
	r.check("slow clients cut off", cut == len(slow), "%d of %d closed by the server", cut, len(slow))
	e.checkRSS(r, stop())
	e.settleBack(ctx, r, 32)
	return r, nil
}

// dialSlow connects a client that will not read, with a small receive
// buffer (TCP) so that the server's writes to it back up quickly.
func dialSlow(ctx context.Context, ep endpoint) (benchConn, error) {
	nd := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = setRecvBuffer(fd, 4096) })
		return serr
	}}
	if ep.ws {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return nd.DialContext(ctx, network, ep.dialAddr)
		}}}
		c, _, err := websocket.Dial(ctx, ep.url, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", ep.given, err)
		}
		c.SetReadLimit(-1)
		return newWSConn(c, wsOptions{}), nil
	}
	c, err := nd.DialContext(ctx, "tcp", ep.dialAddr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ep.given, err)
	}
	return &tcpConn{c: c}, nil
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
