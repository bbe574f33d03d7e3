package tcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("tcpserver: server closed")

// A conn is a connection a server tracks, so that Shutdown can reach it.
type conn interface {
	// closeGracefully sends reason as a last notice, flushes and closes.
	// It must not block.
	closeGracefully(reason string)
	// closeNow closes at once. It must not block.
	closeNow()
}

// group is the lifecycle Server and EchoServer share: the accept loop, the
// connections being served, and graceful shutdown. Every connection has a
// handler goroutine that group starts and waits for; Serve does not return
// while any is running.
type group struct {
	logs *LogThrottle // failed accepts; set by the server before Serve

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[conn]struct{}
	closed    bool
	handlers  sync.WaitGroup
}

// serve accepts connections on l and runs handle for each in its own
// goroutine, until Shutdown (it returns ErrServerClosed), ctx is done (it
// closes every connection at once and returns ctx.Err()) or accepting
// fails for good. Either way it waits for the handlers first.
func (g *group) serve(ctx context.Context, l net.Listener, handle func(net.Conn)) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	if g.listeners == nil {
		g.listeners = make(map[net.Listener]struct{})
		g.conns = make(map[conn]struct{})
	}
	g.listeners[l] = struct{}{}
	g.mu.Unlock()

	stop := context.AfterFunc(ctx, func() {
		l.Close()
		g.closeAll()
	})
	defer stop()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, l)
		g.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration // how long to sleep on accept failure
	for {
		nc, err := l.Accept()
		if err != nil {
			switch {
			case g.isClosed():
				g.handlers.Wait()
				return ErrServerClosed
			case ctx.Err() != nil:
				g.handlers.Wait()
				return ctx.Err()
			case temporary(err):
				// Out of file descriptors, most likely: wait for some to be
				// freed rather than spin, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				g.logs.Log(slog.LevelWarn, "failed accepts", "accept failed; retrying",
					"addr", l.Addr().String(), "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			g.closeAll()
			g.handlers.Wait()
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		delay = 0
		// A handler is counted under the lock shutdown takes before it
		// waits for them: once shutdown has begun, none is added to what
		// it waits for (a WaitGroup must not grow from zero while waited
		// on), and the connection is closed instead.
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			nc.Close()
			continue
		}
		g.handlers.Add(1)
		g.mu.Unlock()
		go func() {
			defer g.handlers.Done()
			handle(nc)
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

func (g *group) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// track adds c to the served connections; it reports false, and c must be
// closed, if the server is shutting down.
func (g *group) track(c conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *group) untrack(c conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

func (g *group) snapshot() []conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	list := make([]conn, 0, len(g.conns))
	for c := range g.conns {
		list = append(list, c)
	}
	return list
}

func (g *group) closeAll() {
	for _, c := range g.snapshot() {
		c.closeNow()
	}
}

// shutdown stops accepting, tells every connection reason and waits for
// the handlers to finish. If ctx ends first it closes every connection at
// once, waits for the handlers and returns ctx.Err().
func (g *group) shutdown(ctx context.Context, reason string) error {
	g.mu.Lock()
	g.closed = true
	for l := range g.listeners {
		l.Close()
	}
	g.mu.Unlock()
	for _, c := range g.snapshot() {
		c.closeGracefully(reason)
	}

	done := make(chan struct{})
	go func() {
		g.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.closeAll()
		<-done
		return ctx.Err()
	}
}
