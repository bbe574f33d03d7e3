package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The abuse scenario's checks of fair flood control. They assume the
// server's default rate, 10 lines a second after a burst of 20, with up
// to 100 lines waiting their turn.

// pasteArrives: a member writes n lines at once, as a terminal pastes
// them, or as the kernel hands over a member's lines after the server
// (or the network) stalled; another, from another address, must get all
// of them, in order, at the rate, and the sender must not be refused
// anything or cut off. The sender comes from src, the receiver from rcv.
func pasteArrives(ctx context.Context, addr string, src, rcv net.IP, n int, tag string) (bool, string) {
	recv, err := dialLinesFrom(ctx, addr, rcv)
	if err != nil {
		return false, err.Error()
	}
	defer recv.close()
	send, err := dialLinesFrom(ctx, addr, src)
	if err != nil {
		return false, err.Error()
	}
	defer send.close()
	// Both are welcomed before anything is said.
	for _, c := range []*lineClient{recv, send} {
		if _, err := c.until(" in ", 10*time.Second); err != nil {
			return false, "no welcome: " + err.Error()
		}
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s-%d\r\n", tag, i)
	}
	start := time.Now()
	send.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := send.c.Write([]byte(b.String())); err != nil {
		return false, err.Error()
	}
	// At 10 a second after the first 20, and some for a busy server.
	limit := time.Duration(max(n-20, 0))*time.Second/10 + 10*time.Second
	got := 0
	for got < n {
		line, err := recv.until(tag+"-", time.Until(start.Add(limit)))
		if err != nil {
			return false, fmt.Sprintf("%d of %d lines in %v: %v", got, n, limit, err)
		}
		want := fmt.Sprintf("%s-%d", tag, got)
		if !strings.HasSuffix(line, "> "+want) {
			return false, fmt.Sprintf("line %d is %q, want %q", got, line, want)
		}
		got++
	}
	took := time.Since(start)
	// The sender is still there, and was told nothing but the answer.
	if err := send.send("/rooms"); err != nil {
		return false, fmt.Sprintf("all %d lines arrived in %v; then the sender: %v", n, took.Round(time.Millisecond), err)
	}
	told, err := send.linesUntil("*** rooms: ", 10*time.Second)
	if err != nil {
		return false, fmt.Sprintf("all %d lines arrived in %v; then the sender: %v", n, took.Round(time.Millisecond), err)
	}
	for _, l := range told {
		if strings.HasPrefix(l, "! ") || strings.Contains(l, "disconnected") {
			return false, fmt.Sprintf("all %d lines arrived in %v, but the sender was told %q", n, took.Round(time.Millisecond), l)
		}
	}
	// The rate was kept: the last lines waited their turn.
	least := time.Duration(max(n-21, 0)) * time.Second / 10
	return took >= least, fmt.Sprintf("%d lines written at once all arrived, in order, in %v (the rate allows no less than %v); the sender was refused nothing and stays",
		n, took.Round(time.Millisecond), least)
}

// emptyFlood: four JSON WebSockets from one address send empty commands
// flat out, and a telnet client from another sends lines of NUL bytes:
// what cleans to nothing costs what a line costs, so each is cut off for
// flooding. A flooder's first read is usually more than can wait, and it
// is cut off at once; on a busy server it may take the next read, which
// comes once the lines that wait have gone (10 s at the default rate):
// hence the limit.
func emptyFlood(ctx context.Context, tcpAddr, wsURL string) (bool, string) {
	const sockets = 4
	const limit = 30 * time.Second
	type outcome struct {
		name string
		cut  bool
		how  string
		took time.Duration
	}
	results := make(chan outcome, sockets+1)
	var wg sync.WaitGroup
	for i := range sockets {
		wg.Go(func() {
			start := time.Now()
			cut, how := wsEmptyFlood(ctx, wsURL, net.IPv4(127, 0, 0, 15), limit)
			results <- outcome{fmt.Sprintf("ws%d", i+1), cut, how, time.Since(start)}
		})
	}
	wg.Go(func() {
		start := time.Now()
		cut, how := tcpNULFlood(ctx, tcpAddr, net.IPv4(127, 0, 0, 16), limit)
		results <- outcome{"telnet", cut, how, time.Since(start)}
	})
	wg.Wait()
	close(results)
	var list []outcome
	for r := range results {
		list = append(list, r)
	}
	slices.SortFunc(list, func(a, b outcome) int { return strings.Compare(a.name, b.name) })
	ok := true
	var took, problems []string
	for _, r := range list {
		if !r.cut {
			ok = false
			problems = append(problems, r.name+": "+r.how)
			continue
		}
		took = append(took, fmt.Sprintf("%s %v", r.name, r.took.Round(time.Millisecond)))
	}
	if !ok {
		return false, fmt.Sprintf("%d of %d cut off within %v (%s); %s", len(took), sockets+1, limit, strings.Join(took, ", "), strings.Join(problems, "; "))
	}
	return true, fmt.Sprintf("%d JSON WebSockets sending empty commands and a telnet client sending NUL lines, flat out: all cut off for flooding, after %s",
		sockets, strings.Join(took, ", "))
}

// wsEmptyFlood sends {"type":"command","text":""} flat out from src until
// the server closes the connection, for at most limit, and reports
// whether it closed it for flooding.
func wsEmptyFlood(ctx context.Context, wsURL string, src net.IP, limit time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	w, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		Subprotocols: []string{"chatbridge.v1.json"},
		HTTPClient:   httpClientFrom(src),
	})
	if err != nil {
		return false, "dial: " + err.Error()
	}
	defer w.CloseNow()
	w.SetReadLimit(-1)
	go func() {
		msg := []byte(`{"type":"command","text":""}`)
		for w.Write(ctx, websocket.MessageText, msg) == nil {
		}
	}()
	for {
		if _, _, err := w.Read(ctx); err != nil {
			code := websocket.CloseStatus(err)
			var ce websocket.CloseError
			errors.As(err, &ce)
			if code == websocket.StatusPolicyViolation && strings.Contains(ce.Reason, "flooding") {
				return true, ""
			}
			return false, fmt.Sprintf("WebSocket not cut off for flooding: %v", err)
		}
	}
}

// tcpNULFlood sends lines of NUL bytes flat out from src until the
// server cuts the connection off, for at most limit.
func tcpNULFlood(ctx context.Context, addr string, src net.IP, limit time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, err := dialLinesFrom(ctx, addr, src)
	if err != nil {
		return false, err.Error()
	}
	defer c.close()
	go func() {
		chunk := bytes.Repeat([]byte("\x00\x00\x00\r\n"), 4096)
		for ctx.Err() == nil {
			c.c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.c.Write(chunk); err != nil && !isTimeout(err) {
				return
			}
		}
	}()
	deadline, _ := ctx.Deadline()
	if _, err := c.until("disconnected: flooding", time.Until(deadline)); err != nil {
		return false, fmt.Sprintf("telnet not cut off for flooding: %v", err)
	}
	return true, ""
}

// ambiguousJSON: messages that one JSON parser reads one way and another
// another way (two "type" keys, a key in capitals, a null text) get an
// error event each and do nothing else; the client stays.
func ambiguousJSON(ctx context.Context, wsURL string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		Subprotocols: []string{"chatbridge.v1.json"},
		HTTPClient:   httpClientFrom(net.IPv4(127, 0, 0, 17)),
	})
	if err != nil {
		return false, err.Error()
	}
	defer w.CloseNow()
	w.SetReadLimit(-1)
	const marker = "ran-a-command"
	for _, m := range []string{
		`{"type":"message","type":"command","text":"/me ` + marker + `"}`,
		`{"TYPE":"command","type":"message","text":"/me ` + marker + `"}`,
		`{"type":"command","text":null}`,
		`{"type":"command","text":"/who"}`,
	} {
		if err := w.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			return false, err.Error()
		}
	}
	errorsSeen := 0
	for {
		_, b, err := w.Read(ctx)
		if err != nil {
			return false, fmt.Sprintf("after %d error events: %v", errorsSeen, err)
		}
		if bytes.Contains(b, []byte(marker)) && !bytes.Contains(b, []byte(`"type":"error"`)) {
			return false, fmt.Sprintf("a message ran as a command: %s", b)
		}
		for _, typ := range eventTypes(b) {
			switch {
			case typ == "error":
				errorsSeen++
			case typ == "presence" && errorsSeen >= 3: // the first comes with the welcome
				return true, fmt.Sprintf("duplicate keys, a key in capitals and a null text: %d error events, no command run; then /who answered", errorsSeen)
			}
		}
	}
}

// dialLinesFrom is dialLines from the loopback address src.
func dialLinesFrom(ctx context.Context, addr string, src net.IP) (*lineClient, error) {
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newLineClient(c), nil
}

// linesUntil reads lines until one contains want, for at most d, and
// returns them all.
func (l *lineClient) linesUntil(want string, d time.Duration) ([]string, error) {
	l.c.SetReadDeadline(time.Now().Add(d))
	var lines []string
	for {
		line, err := l.r.ReadString('\n')
		if err != nil {
			return lines, fmt.Errorf("waiting for %q: %w", want, err)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if strings.Contains(line, want) {
			return lines, nil
		}
	}
}

func newLineClient(c net.Conn) *lineClient {
	return &lineClient{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// httpClientFrom is an HTTP client (for a WebSocket's handshake) whose
// connections come from the loopback address src.
func httpClientFrom(src net.IP) *http.Client {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: nd.DialContext}}
}
