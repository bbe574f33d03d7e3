package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// runAbuse: every room taken before anyone enters the default room, and
// filled with history; then every kind of bad input at once, while two
// probes, one on TCP and one on WebSocket, say a line to each other every
// 200ms.
func runAbuse(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	if len(e.cc.tcp) == 0 || len(e.cc.ws) == 0 {
		return nil, usageErr("abuse needs both --tcp and --ws")
	}
	if e.v.fillRooms < 1 {
		return nil, usageErr("--fill-rooms must be at least 1")
	}
	if e.v.historyMemory < 0 {
		return nil, usageErr("--history-memory must not be negative")
	}
	tcpAddr, wsURL := e.cc.tcp[0].dialAddr, e.cc.ws[0].url
	r := &scenarioResult{Params: fmt.Sprintf("%s; a %d MiB line; %d idle connections from one address", e.v.duration, e.v.bigLine, e.v.idle)}
	e.baseline(ctx, r)
	stop := e.watchRSS(ctx)

	// First, before anyone is in the default room: every other room.
	t0 := time.Now()
	fill, err := fillRooms(ctx, e, e.v.fillRooms)
	if err != nil {
		r.check("the default room is always there", false, "filling the rooms: %v", err)
		stop()
		return r, nil
	}
	e.log.Info("rooms taken", "rooms", len(fill.members), "elapsed", time.Since(t0).Round(time.Millisecond))
	r.Params += fmt.Sprintf("; %d rooms taken", len(fill.members))
	switch {
	case fill.defaultRoom == "":
		r.check("the default room is always there", false, "%d rooms made and none refused: give --fill-rooms more than the server's --max-rooms", len(fill.members))
	default:
		err := defaultRoomCheck(ctx, tcpAddr, fill.defaultRoom)
		r.check("the default room is always there", err == nil, "%d rooms in use, one more refused (%q); telnet welcomed in %s, told it cannot have another room, answered /rooms%s",
			len(fill.members), fill.notice, fill.defaultRoom, errSuffix(err))
	}
	t0 = time.Now()
	e.checkHistoryMemory(ctx, r, fill)
	fill.close()
	e.log.Info("rooms filled with history", "elapsed", time.Since(t0).Round(time.Millisecond))
	// The history stays, as it should: the attacks' memory is measured
	// from here.
	attackBase := e.rss(ctx)

	p, err := newProbes(ctx, tcpAddr, wsURL)
	if err != nil {
		return nil, err
	}
	defer p.close()

	actx, cancel := context.WithTimeout(ctx, e.v.duration)
	defer cancel()
	var wg sync.WaitGroup
	outcomes := make(chan check, 16)
	attack := func(name string, f func(context.Context) (bool, string)) {
		wg.Go(func() {
			ok, detail := f(actx)
			outcomes <- check{Name: name, OK: ok, Detail: detail}
		})
	}
	attack("IAC storm relays only text", func(ctx context.Context) (bool, string) { return iacStorm(ctx, tcpAddr) })
	attack("a huge line without newline is refused, the sender stays", func(ctx context.Context) (bool, string) {
		return hugeLine(ctx, tcpAddr, e.v.bigLine)
	})
	attack("garbage lines (bad UTF-8, escapes, NUL) are cleaned", func(ctx context.Context) (bool, string) { return garbage(ctx, tcpAddr) })
	attack("a flood is cut off", func(ctx context.Context) (bool, string) { return flood(ctx, tcpAddr) })
	attack("lines bunched by a stall all arrive, at the rate", func(context.Context) (bool, string) {
		return pasteArrives(ctx, tcpAddr, net.IPv4(127, 0, 0, 13), net.IPv4(127, 0, 0, 14), 40, "stalled")
	})
	attack("80 pasted lines all arrive, and the sender stays", func(context.Context) (bool, string) {
		return pasteArrives(ctx, tcpAddr, net.IPv4(127, 0, 0, 18), net.IPv4(127, 0, 0, 19), 80, "pasted")
	})
	attack("input that cleans to nothing is a flood too", func(context.Context) (bool, string) { return emptyFlood(ctx, tcpAddr, wsURL) })
	attack("ambiguous JSON gets an error, never runs a command", func(ctx context.Context) (bool, string) { return ambiguousJSON(ctx, wsURL) })
	attack(fmt.Sprintf("an oversize WebSocket message (%d KiB) closes with 1009", oversizeBytes>>10), func(ctx context.Context) (bool, string) { return oversize(ctx, wsURL) })
	attack("malformed JSON gets an error, the client stays", func(ctx context.Context) (bool, string) { return badJSON(ctx, wsURL) })
	attack("a wrong subprotocol gets plain lines or a refusal", func(ctx context.Context) (bool, string) { return wrongSubprotocol(ctx, wsURL) })
	attack("a foreign origin is refused before the upgrade", func(ctx context.Context) (bool, string) { return foreignOrigin(ctx, wsURL) })
	attack("idle connections from one address are bounded", func(ctx context.Context) (bool, string) {
		return idleFromOneAddress(ctx, tcpAddr, e.v.idle)
	})
	held := min(e.v.idle, maxHeldRequests)
	attack(fmt.Sprintf("%d requests without their body from one address are bounded", held), func(ctx context.Context) (bool, string) {
		return heldRequests(ctx, httpHost(wsURL), held)
	})
	if e.v.echo != "" {
		attack(fmt.Sprintf("%d echo clients from one address are bounded", held), func(ctx context.Context) (bool, string) {
			return echoFlood(ctx, e.v.echo, held)
		})
	}
	attack("private messages aimed at one member do not cut it off", func(ctx context.Context) (bool, string) { return privateFlood(ctx, tcpAddr) })

	exchanged, late := p.exchange(actx, 200*time.Millisecond, time.Second)
	wg.Wait()
	close(outcomes)
	for c := range outcomes {
		r.Checks = append(r.Checks, c)
	}
	r.Messages = int64(exchanged)
	r.Clients = 2
	r.check("probes heard each other within 1s throughout", late == 0 && exchanged > 0, "%d lines exchanged, %d late or lost", exchanged, late)
	raw, garbage := p.rawSeen()
	r.check("nothing raw reached the probes", raw == "" && garbage > 0, "%s; %d garbage lines arrived cleaned", orNone(raw), garbage)
	e.checkRSS(r, stop())
	e.settleBackTo(ctx, r, attackBase, "before the attacks", 64)
	return r, nil
}

// maxHeldRequests bounds the connections the abuse scenario holds with
// bodiless requests and echo clients, each; with the --idle telnet ones,
// they stay within the load tool's own open-file limit.
const maxHeldRequests = 2000

// httpHost is the host:port of a ws:// URL.
func httpHost(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// errSuffix is "" for no error, or the error after a colon.
func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// historyRSSSlack is what the server's RSS may grow by while the rooms
// fill with history, besides twice --history-memory (the history itself,
// and the collector's headroom over it at the server's --gc-percent 50):
// the fill's members, their lines on their way, the heap's rounding.
const historyRSSSlack = 32 << 10 // KiB

// checkHistoryMemory fills every room of fill with historyLines lines of
// historyText bytes, which its JSON members make the JSON of, and checks
// that the server's RSS meanwhile grows by at most twice its
// --history-memory and historyRSSSlack; and that the newest line
// survives.
func (e *scenarioEnv) checkHistoryMemory(ctx context.Context, r *scenarioResult, fill *roomFill) {
	if len(fill.members) == 0 {
		r.check("room history memory is bounded", false, "no room to fill")
		return
	}
	before := e.rss(ctx)
	bound := before + 2*e.v.historyMemory<<10 + historyRSSSlack
	stop := e.watchRSS(ctx)
	back, err := fill.sayHistory(ctx)
	var kept int
	if err == nil {
		kept, err = fill.newestSurvives(ctx, e)
	}
	peak := stop()
	switch {
	case err != nil:
		r.check("room history memory is bounded", false, "%d lines of %d bytes said and back: %v", back, historyText, err)
	case peak == 0:
		r.check("room history memory is bounded", true, "%d rooms, %d lines of %d bytes, JSON made; RSS not measured (give --pid or --metrics); the newest line kept (%d lines replayed)",
			len(fill.members), back, historyText, kept)
	default:
		r.check("room history memory is bounded", peak <= bound,
			"%d rooms, %d lines of %d bytes, JSON made: RSS %d KiB before, peak %d KiB, bound %d KiB (2 x --history-memory %d MiB + %d MiB); the newest line kept (%d lines replayed)",
			len(fill.members), back, historyText, before, peak, bound, e.v.historyMemory, historyRSSSlack>>10, kept)
	}
}

func orNone(s string) string {
	if s == "" {
		return "no ESC, 0xFF, NUL or other control byte"
	}
	return s
}

// probes are a TCP and a WebSocket member who check each other's lines.
type probes struct {
	tcp *lineClient
	ws  *websocket.Conn

	mu      sync.Mutex
	got     map[string]time.Time // probe line -> when it arrived
	raw     string               // the first forbidden byte seen, described
	garbage int                  // garbage lines seen, cleaned

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func newProbes(ctx context.Context, tcpAddr, wsURL string) (*probes, error) {
	t, err := dialLines(ctx, tcpAddr)
	if err != nil {
		return nil, fmt.Errorf("tcp probe: %w", err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	w, _, err := websocket.Dial(dctx, wsURL, nil)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("ws probe: %w", err)
	}
	w.SetReadLimit(-1)
	rctx, cancel := context.WithCancel(context.Background())
	p := &probes{tcp: t, ws: w, got: make(map[string]time.Time), cancel: cancel}
	p.wg.Go(func() {
		for {
			t.c.SetReadDeadline(time.Time{})
			line, err := t.r.ReadBytes('\n')
			if len(line) > 0 {
				p.seen(line)
			}
			if err != nil {
				return
			}
		}
	})
	p.wg.Go(func() {
		for {
			_, b, err := w.Read(rctx)
			if err != nil {
				return
			}
			p.seen(b)
		}
	})
	return p, nil
}

// seen records a probe line and looks for bytes no user may send another.
func (p *probes) seen(b []byte) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.raw == "" {
		for i, c := range bytes.TrimRight(b, "\r\n") {
			if c == 0x1b || c == 0xff || c == 0x7f || (c < 0x20 && c != '\t') {
				p.raw = fmt.Sprintf("byte 0x%02x at %d of %q", c, i, b)
				break
			}
		}
	}
	if bytes.Contains(b, []byte("cleared your screen")) || bytes.Contains(b, []byte("bad utf8")) {
		p.garbage++
	}
	if i := bytes.Index(b, []byte("probe-")); i >= 0 {
		key := string(bytes.Fields(b[i:])[0])
		if _, dup := p.got[key]; !dup {
			p.got[key] = now
		}
	}
}

func (p *probes) arrived(key string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.got[key]
	return t, ok
}

func (p *probes) rawSeen() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw, p.garbage
}

// exchange has the probes take turns saying a line every interval until
// ctx ends, and counts the lines that did not arrive within limit.
func (p *probes) exchange(ctx context.Context, interval, limit time.Duration) (sent, late int) {
	type pending struct {
		key string
		at  time.Time
	}
	var waiting []pending
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		now := time.Now()
		kept := waiting[:0]
		for _, w := range waiting {
			if at, ok := p.arrived(w.key); ok {
				if at.Sub(w.at) > limit {
					late++
				}
				continue
			}
			if now.Sub(w.at) > limit {
				late++
				continue
			}
			kept = append(kept, w)
		}
		waiting = kept
		if ctx.Err() != nil {
			break
		}
		key := fmt.Sprintf("probe-%d", i)
		var err error
		if i%2 == 0 {
			err = p.tcp.send(key)
		} else {
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = p.ws.Write(wctx, websocket.MessageText, []byte(key))
			cancel()
		}
		sent++
		if err != nil {
			late++
		} else {
			waiting = append(waiting, pending{key, time.Now()})
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	// The last ones get their full second.
	deadline := time.Now().Add(limit)
	for _, w := range waiting {
		for {
			if at, ok := p.arrived(w.key); ok {
				if at.Sub(w.at) > limit {
					late++
				}
				break
			}
			if time.Now().After(deadline) {
				late++
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return sent, late
}

func (p *probes) close() {
	p.cancel()
	p.tcp.close()
	p.ws.CloseNow()
	p.wg.Wait()
}

// Each attack below is bounded by ctx and reports whether the server
// behaved, and what it saw.

func iacStorm(ctx context.Context, addr string) (bool, string) {
	c, err := dialLines(ctx, addr)
	if err != nil {
		return false, err.Error()
	}
	defer c.close()
	neg := []byte{0xff, 0xfb, 0x01, 0xff, 0xfd, 0x03, 0xff, 0xfa, 0x18, 0x00, 0x41, 0xff, 0xf0, 0xff, 0xff}
	storm := bytes.Repeat(neg, 500)
	n := 0
	for ctx.Err() == nil && n < 200 {
		if _, err := c.c.Write(append(storm, "iac text\r\n"...)); err != nil {
			return false, fmt.Sprintf("cut off after %d storms: %v", n, err)
		}
		n++
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return true, fmt.Sprintf("%d storms of %d bytes, still connected", n, len(storm))
}

func hugeLine(ctx context.Context, addr string, mib int) (bool, string) {
	c, err := dialLines(ctx, addr)
	if err != nil {
		return false, err.Error()
	}
	defer c.close()
	chunk := bytes.Repeat([]byte("A"), 1<<20)
	for i := range mib {
		c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.c.Write(chunk); err != nil {
			return false, fmt.Sprintf("write after %d MiB: %v", i, err)
		}
	}
	if err := c.send("\r\nafter the huge line"); err != nil {
		return false, err.Error()
	}
	line, err := c.until("too long", 10*time.Second)
	if err != nil {
		return false, fmt.Sprintf("no refusal: %v", err)
	}
	if err := c.send("/who"); err != nil {
		return false, err.Error()
	}
	if _, err := c.until(" in ", 5*time.Second); err != nil {
		return false, fmt.Sprintf("refused (%q) but then gone: %v", line, err)
	}
	return true, fmt.Sprintf("%d MiB refused with %q; the connection still answers", mib, line)
}

func garbage(ctx context.Context, addr string) (bool, string) {
	c, err := dialLines(ctx, addr)
	if err != nil {
		return false, err.Error()
	}
	defer c.close()
	lines := []string{
		"bad utf8 \xff\xfe\xc3\x28 end",
		"\x1b[2J\x1b[H cleared your screen",
		"\x1b]0;pwned title\x07 bell",
		"nul \x00 in the middle",
		"\x7f\x08\x08 backspaces",
	}
	n := 0
	for ctx.Err() == nil && n < 50 {
		if err := c.send(lines[n%len(lines)]); err != nil {
			return false, err.Error()
		}
		n++
		sleepCtx(ctx, 150*time.Millisecond) // under the default rate limit
	}
	return true, fmt.Sprintf("%d garbage lines sent", n)
}

func flood(ctx context.Context, addr string) (bool, string) {
	c, err := dialLines(ctx, addr)
	if err != nil {
		return false, err.Error()
	}
	defer c.close()
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "flood %d\r\n", i)
	}
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.c.Write([]byte(b.String())) // it may be cut off while writing
	line, err := c.until("disconnected", 10*time.Second)
	if err != nil {
		return false, fmt.Sprintf("not cut off: %v", err)
	}
	return true, line
}

// oversizeBytes is the size of the abuse scenario's oversize message.
const oversizeBytes = 256 << 10

func oversize(ctx context.Context, url string) (bool, string) {
	w, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return false, err.Error()
	}
	defer w.CloseNow()
	w.SetReadLimit(-1)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// Far over a default server's limit: the server refuses it before it
	// has all of it, and must read the rest away before it closes, or the
	// reset its close would cause could throw its close frame away.
	if err := w.Write(wctx, websocket.MessageText, bytes.Repeat([]byte("B"), oversizeBytes)); err != nil {
		return false, fmt.Sprintf("the server reset the connection while the message was being sent: %v", err)
	}
	for {
		_, _, err := w.Read(wctx)
		if err != nil {
			code := websocket.CloseStatus(err)
			return code == websocket.StatusMessageTooBig, fmt.Sprintf("closed with %v", code)
		}
	}
}

func badJSON(ctx context.Context, url string) (bool, string) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: []string{"chatbridge.v1.json"}})
	if err != nil {
		return false, err.Error()
	}
	defer w.CloseNow()
	w.SetReadLimit(-1) // the history event can be big
	for _, m := range []string{`{not json`, `{"type":"shout"}`, `[1,2]`, `{"type":"command","text":"/who"}`} {
		if err := w.Write(dctx, websocket.MessageText, []byte(m)); err != nil {
			return false, err.Error()
		}
	}
	errorsSeen := 0
	for {
		_, b, err := w.Read(dctx)
		if err != nil {
			return false, fmt.Sprintf("after %d error events: %v", errorsSeen, err)
		}
		for _, typ := range eventTypes(b) {
			switch {
			case typ == "error":
				errorsSeen++
			case typ == "presence" && errorsSeen >= 3:
				return true, fmt.Sprintf("%d error events, then /who answered", errorsSeen)
			}
		}
	}
}

// eventTypes gives the types of the events in a frame from chatbridge's
// JSON protocol: one event, or an array of them.
func eventTypes(frame []byte) []string {
	type event struct {
		Type string `json:"type"`
	}
	var evs []event
	if len(frame) > 0 && frame[0] == '[' {
		json.Unmarshal(frame, &evs)
	} else {
		var ev event
		json.Unmarshal(frame, &ev)
		evs = append(evs, ev)
	}
	types := make([]string, len(evs))
	for i, ev := range evs {
		types[i] = ev.Type
	}
	return types
}

func wrongSubprotocol(ctx context.Context, url string) (bool, string) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: []string{"bogus.v9"}})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return true, fmt.Sprintf("refused: %s", resp.Status)
		}
		return false, err.Error()
	}
	defer w.CloseNow()
	w.SetReadLimit(-1)
	_, b, err := w.Read(dctx)
	if err != nil {
		return false, err.Error()
	}
	return w.Subprotocol() == "" && !bytes.HasPrefix(b, []byte("{")), fmt.Sprintf("accepted as plain lines: %q", b)
}

func foreignOrigin(ctx context.Context, url string) (bool, string) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := http.Header{"Origin": {"http://evil.example"}}
	w, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		w.CloseNow()
		return false, "upgraded for http://evil.example"
	}
	if resp == nil {
		return false, err.Error()
	}
	return resp.StatusCode == http.StatusForbidden, fmt.Sprintf("answered %s", resp.Status)
}

// idleFromOneAddress opens n telnet connections from 127.0.0.9 and holds
// them for a while: the server must refuse those over its per-address
// limit.
func idleFromOneAddress(ctx context.Context, addr string, n int) (bool, string) {
	return holdFromOneAddress(ctx, addr, net.IPv4(127, 0, 0, 9), n, func(c net.Conn) (bool, error) {
		return welcomedOrRefused(c, "Welcome")
	})
}

// heldRequests opens n connections to the web server from 127.0.0.10,
// each sending a request whose body never comes: the server must hold no
// more than its per-address limit (refusing the rest at once, 503), and
// still serve a page to anyone else meanwhile.
func heldRequests(ctx context.Context, httpAddr string, n int) (bool, string) {
	var other string
	ok, detail := holdFromOneAddress(ctx, httpAddr, net.IPv4(127, 0, 0, 10), n, func(c net.Conn) (bool, error) {
		if _, err := c.Write([]byte("POST / HTTP/1.1\r\nHost: chatbench\r\nContent-Length: 1000\r\n\r\n")); err != nil {
			return false, err
		}
		// A refused connection is answered at accept; a held one hears
		// nothing while the server waits for the body.
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		b := make([]byte, 64)
		k, err := c.Read(b)
		switch {
		case k > 0 && bytes.HasPrefix(b[:k], []byte("HTTP/1.1 503")):
			return false, nil
		case isTimeout(err):
			return true, nil // the server is waiting for the body
		case err == nil:
			return false, fmt.Errorf("answered %q", b[:k])
		}
		return false, err
	}, func() {
		other = healthFrom(httpAddr, net.IPv4(127, 0, 0, 12))
	})
	return ok && other == "", detail + "; " + orFine(other, "/healthz from another address answered meanwhile")
}

// echoFlood opens n connections to the echo service from 127.0.0.11: the
// server must hold no more than its per-address limit, refusing the rest
// with a line that says why.
func echoFlood(ctx context.Context, echoAddr string, n int) (bool, string) {
	return holdFromOneAddress(ctx, echoAddr, net.IPv4(127, 0, 0, 11), n, func(c net.Conn) (bool, error) {
		return welcomedOrRefused(c, "Welcome to the server")
	})
}

// welcomedOrRefused reads the server's first words on c: held if they
// contain welcome, refused if the server said something else and hung up.
func welcomedOrRefused(c net.Conn, welcome string) (bool, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 256)
	k, err := c.Read(b)
	switch {
	case err == nil && bytes.Contains(b[:k], []byte(welcome)):
		return true, nil
	case err == nil || errors.Is(err, net.ErrClosed) || k > 0 || !isTimeout(err):
		return false, nil
	}
	return false, err
}

// holdFromOneAddress opens n connections to addr from the loopback
// address src, 128 at a time, and opens each with open, which says
// whether the server holds it (or refused it, or failed). The held ones
// stay open until ctx ends; meanwhile, once all are open, during runs.
// Every connection must be held or refused, some of each.
func holdFromOneAddress(ctx context.Context, addr string, src net.IP, n int, open func(net.Conn) (bool, error), during ...func()) (bool, string) {
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	var held, refused, failed atomic.Int64
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 128)
	tried := 0
	for range n {
		if ctx.Err() != nil {
			break
		}
		tried++
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := nd.Dial("tcp", addr)
			if err == nil {
				var ok bool
				if ok, err = open(c); ok {
					held.Add(1)
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					return
				}
				c.Close()
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			refused.Add(1)
		})
	}
	wg.Wait()
	for _, f := range during {
		f()
	}
	<-ctx.Done()
	for _, c := range conns {
		c.Close()
	}
	ok := failed.Load() == 0 && held.Load() > 0 && refused.Load() > 0 && held.Load()+refused.Load() == int64(tried)
	detail := fmt.Sprintf("%d held, %d refused, %d failed, of %d from %s", held.Load(), refused.Load(), failed.Load(), tried, src)
	if e, _ := firstErr.Load().(string); e != "" {
		detail += " (first failure: " + e + ")"
	}
	return ok, detail
}

// healthFrom asks addr for /healthz from src; "" if it answered 200
// within 5 s.
func healthFrom(addr string, src net.IP) string {
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + addr + "/healthz")
	if err != nil {
		return "/healthz from another address: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "/healthz from another address: " + resp.Status
	}
	return ""
}

func orFine(problem, fine string) string {
	if problem != "" {
		return problem
	}
	return fine
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
