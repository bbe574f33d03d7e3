package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// churnSources is how many source addresses the churn's connections
// come from, in turn (127.1.0.0 to 127.1.15.255): churn is many people
// coming and going, not one address reconnecting 5,000 times a second,
// which the server refuses (--connect-rate), as the knocker checks. At
// 10,000 connects a second each address connects 2.5 times a second.
const churnSources = 4096

// churnSource is the source address of the n-th connection of the churn.
func churnSource(n int64) netip.Addr {
	k := uint32(n % churnSources)
	return netip.AddrFrom4([4]byte{127, 1, byte(k >> 8), byte(k)})
}

// knockFrom is where the knocker connects from: one address, as fast as
// it can.
var knockFrom = netip.AddrFrom4([4]byte{127, 0, 0, 250})

// runChurn: --workers clients connect, take the welcome and go, over and
// over for --duration; every other one leaves abruptly. Meanwhile one
// address connects as fast as it can, and a watcher counts the joins and
// leaves it is shown.
func runChurn(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	r := &scenarioResult{Params: fmt.Sprintf("%d workers for %s, half abrupt, TCP and WS, from %d addresses in turn", e.v.workers, e.v.duration, churnSources)}
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
	var shown int
	if watcher != nil {
		watching.Go(func() { shown = watcher.discard(quiet, " joined", " left") })
	}

	d := e.cc.newDialer()
	defer d.closeIdle()
	var connects, abrupt, failures, next atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(e.v.duration)
	var wg sync.WaitGroup
	var knock knockResult
	if len(e.cc.tcp) > 0 && e.cc.tcp[0].ipv4 {
		wg.Go(func() { knock = knockFlatOut(ctx, e.cc.tcp[0].dialAddr, end) })
	}
	for w := range e.v.workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
				ep := d.endpointFor(w + i)
				var src netip.Addr
				if ep.ipv4 {
					src = churnSource(next.Add(1))
				}
				c, err := d.dialFrom(ctx, ep, src)
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
	if watcher != nil {
		r.check("nobody who left at once was announced", shown == 0, "the watcher was shown %d joins and leaves of %d members who came and went", shown, connects.Load())
	}
	if knock.tries > 0 {
		// The server's defaults: 100 at once, then 10 a second.
		most := 100 + int(10*secs) + 10
		r.check("one address connecting flat out is slowed down", knock.failed == "" && knock.refused > 0 && knock.admitted <= most,
			"from %s: %d admitted, %d refused (%q), in %.1fs; at most %d due%s", knockFrom, knock.admitted, knock.refused, knock.reason, secs, most, errSuffix(errOrNil(knock.failed)))
	}
	e.checkRSS(r, peak)
	e.settleBack(ctx, r, 32)
	if watcher != nil {
		n, line, err := watcher.who(ctx)
		r.check("no stale member in /who", err == nil && n == 1, "/who answers %q", line)
	}
	return r, nil
}

// knockResult is what one address connecting as fast as it can got.
type knockResult struct {
	tries, admitted, refused int
	reason                   string // the first refusal
	failed                   string // what went wrong otherwise
}

// knockFlatOut connects to the telnet port from knockFrom, one connection
// after another, taking the first line and hanging up, until end.
func knockFlatOut(ctx context.Context, addr string, end time.Time) knockResult {
	var k knockResult
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: knockFrom.AsSlice()}, Timeout: 5 * time.Second}
	buf := make([]byte, 512)
	for time.Now().Before(end) && ctx.Err() == nil {
		c, err := dialReset(ctx, &nd, addr)
		if err != nil {
			k.failed = err.Error()
			return k
		}
		k.tries++
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		c.Close()
		switch line := string(buf[:n]); {
		case strings.Contains(line, "Welcome"):
			k.admitted++
		case n > 0 && strings.Contains(line, "too many connections"):
			k.refused++
			if k.reason == "" {
				k.reason = strings.TrimSpace(line)
			}
		default:
			k.failed = fmt.Sprintf("%q, %v", line, err)
			return k
		}
	}
	return k
}

// errOrNil is an error with text s, or nil if s is "".
func errOrNil(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
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
// server has been quiet for half a second. It returns how many of them
// contained any of count.
func (l *lineClient) discard(stop <-chan struct{}, count ...string) int {
	stopped := false
	n := 0
	for {
		select {
		case <-stop:
			stopped = true
		default:
		}
		l.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		line, err := l.r.ReadString('\n')
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && !stopped {
				continue
			}
			return n
		}
		if slices.ContainsFunc(count, func(s string) bool { return strings.Contains(line, s) }) {
			n++
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
