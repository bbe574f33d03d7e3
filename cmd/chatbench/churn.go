package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// runChurn: --workers clients connect, take the welcome and go, over and
// over for --duration; every other one leaves abruptly.
func runChurn(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	r := &scenarioResult{Params: fmt.Sprintf("%d workers for %s, half abrupt, TCP and WS", e.v.workers, e.v.duration)}
	var watcher *lineClient
	if len(e.cc.tcp) > 0 {
		var err error
		if watcher, err = dialLines(ctx, e.cc.tcp[0].dialAddr); err != nil {
			return nil, fmt.Errorf("watcher: %w", err)
		}
		defer watcher.close()
	}
	e.baseline(ctx, r)
	stop := e.watchRSS(ctx)
	// The watcher takes in every join and leave, as a member would.
	quiet := make(chan struct{})
	var watching sync.WaitGroup
	if watcher != nil {
		watching.Go(func() { watcher.discard(quiet) })
	}

	d := e.cc.newDialer()
	defer d.closeIdle()
	var connects, abrupt, failures atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(e.v.duration)
	var wg sync.WaitGroup
	for w := range e.v.workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				ep := d.endpointFor(w + i)
				// Worker w always dials from the same source address (50
				// workers an address), as one user would.
				c, err := d.dial(ctx, ep, w)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					sleepCtx(ctx, 10*time.Millisecond)
					continue
				}
				connects.Add(1)
				rude := (w+i)%2 == 0
				if why := takeWelcome(ctx, c); why != "" {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, why)
				}
				if rude {
					abrupt.Add(1)
				}
				hangUp(c, rude)
			}
		})
	}
	wg.Wait()
	close(quiet)
	watching.Wait()
	peak := stop()
	secs := e.v.duration.Seconds()
	r.Clients = int(connects.Load())
	r.Params += fmt.Sprintf("; %d connects (%.0f/s), %d abrupt", connects.Load(), float64(connects.Load())/secs, abrupt.Load())
	first, _ := firstErr.Load().(string)
	r.check("connects succeeded", failures.Load() == 0 && connects.Load() > 0, "%d connects, %d failed %s", connects.Load(), failures.Load(), first)
	e.checkRSS(r, peak)
	e.settleBack(ctx, r, 32)
	if watcher != nil {
		n, line, err := watcher.who(ctx)
		r.check("no stale member in /who", err == nil && n == 1, "/who answers %q", line)
	}
	return r, nil
}

// takeWelcome reads the first line or message a new client gets, and
// says what was wrong with it, if anything.
func takeWelcome(ctx context.Context, c benchConn) string {
	var b []byte
	var err error
	switch c := c.(type) {
	case *tcpConn:
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b = make([]byte, 512)
		var n int
		n, err = c.c.Read(b)
		b = b[:n]
	case *wsConn:
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, b, err = c.c.Read(ctx)
	}
	switch {
	case err != nil:
		return err.Error()
	case !strings.Contains(string(b), "Welcome"):
		return fmt.Sprintf("no welcome: %q", b)
	}
	return ""
}

// hangUp leaves politely (FIN, or a WebSocket close frame) or rudely (a
// TCP reset; a WebSocket dropped without a close frame).
func hangUp(c benchConn, rude bool) {
	switch c := c.(type) {
	case *tcpConn:
		if tc, ok := c.c.(*net.TCPConn); ok && rude {
			tc.SetLinger(0)
		}
		c.c.Close()
	case *wsConn:
		if rude {
			c.c.CloseNow()
			return
		}
		c.c.Close(websocket.StatusNormalClosure, "")
	}
}

// lineClient is a plain TCP chat client that reads lines.
type lineClient struct {
	c net.Conn
	r *bufio.Reader
}

func dialLines(ctx context.Context, addr string) (*lineClient, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &lineClient{c: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (l *lineClient) close() { l.c.Close() }

func (l *lineClient) send(line string) error {
	l.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := l.c.Write([]byte(line + "\r\n"))
	return err
}

// until reads lines until one contains want, for at most d.
func (l *lineClient) until(want string, d time.Duration) (string, error) {
	l.c.SetReadDeadline(time.Now().Add(d))
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("waiting for %q: %w", want, err)
		}
		if strings.Contains(line, want) {
			return strings.TrimRight(line, "\r\n"), nil
		}
	}
}

// discard reads and drops lines until stop is closed, then until the
// server has been quiet for half a second.
func (l *lineClient) discard(stop <-chan struct{}) {
	stopped := false
	for {
		select {
		case <-stop:
			stopped = true
		default:
		}
		l.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := l.r.ReadString('\n'); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && !stopped {
				continue
			}
			return
		}
	}
}

// who asks /who and returns how many the server says are in the room,
// from its answer "*** 3 in lobby: a, b, c". Nothing else may be unread.
func (l *lineClient) who(ctx context.Context) (int, string, error) {
	if err := l.send("/who"); err != nil {
		return 0, "", err
	}
	l.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for ctx.Err() == nil {
		line, err := l.r.ReadString('\n')
		if err != nil {
			return 0, "", fmt.Errorf("waiting for the /who answer: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "***" && f[2] == "in" && strings.HasSuffix(f[3], ":") {
			n, err := strconv.Atoi(f[1])
			if err == nil {
				return n, line, nil
			}
		}
	}
	return 0, "", ctx.Err()
}
