package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
	"chatbridge/tcpserver/idlepoll"
)

// Timing of the ends of a connection.
const (
	// abortGrace is how long a member being cut off gets to take its close
	// frame, and to answer it, before the connection is dropped.
	abortGrace = 250 * time.Millisecond
	// refuseGrace is the same for a connection the hub refused.
	refuseGrace = time.Second
	// closeFlush is how long the frames still gathered when the connection
	// closes may take to go out.
	closeFlush = time.Second

	// lingerFor and lingerMax bound how long, and how much, the server
	// reads and throws away after refusing an oversize message (see
	// wsConn.read).
	lingerFor = time.Second
	lingerMax = 1 << 20
)

// leaveTooBig is the leave notice's reason for a member whose message
// was over the read limit.
const leaveTooBig = "message too big"

// leaveNotUTF8 is the leave notice's reason for a member who sent a text
// message that is not UTF-8, and errNotUTF8 the reader's error for it.
const leaveNotUTF8 = "invalid UTF-8"

var errNotUTF8 = errors.New("text message is not UTF-8")

// reasonShutdown is the close frame's reason when the server stops.
const reasonShutdown = "server shutting down"

// wsConn is one WebSocket user: a [tcpserver.Member] whose writer
// goroutine runs only while there is something to write, like the TCP
// server's. Its reader is the goroutine the server starts for it (see
// Server.serveWS), which also owns the hub's Client.
type wsConn struct {
	srv    *Server
	ws     *websocket.Conn
	wire   *wireConn
	json   bool          // speaks JSONProtocol rather than plain lines
	paused atomic.Uint32 // pauses begun, for the keepalive; here, it fits in json's padding
	addr   string

	readLimit int64 // the most bytes a message from the client may have

	client *tcpserver.Client // set before the first read
	idle   *idlepoll.Conn    // parks the reader between messages; nil if not
	pause  tcpserver.Pause   // stops the reader while the member's lines wait for the rate

	out tcpserver.Outbox // the queue and its writer; wsConn is its Sink
	wg  sync.WaitGroup   // a ping being written over TLS, a connection being dropped for its silence

	// Owned by the server's keepalive goroutine: what the answer to the
	// last ping is checked against (see keepalive).
	pingSent   bool   // the ping went out; if not, nothing is checked
	pingHeard  uint64 // wire.heard when it did
	pingPaused uint32 // paused when it did

	mu    sync.Mutex
	leave string // why the member left, for the room's leave notice
	kept  bool   // the server's keepalive counts it
}

// Send queues ev (see [tcpserver.Outbox.Send]).
func (c *wsConn) Send(ev *tcpserver.Event) { c.out.Send(ev) }

// QueueBound returns the bytes its queue may hold (see
// [tcpserver.QueueBounded]).
func (c *wsConn) QueueBound() int { return c.out.Bound() }

// TrySend queues ev if there is room for it (see
// [tcpserver.Outbox.TrySend]).
func (c *wsConn) TrySend(ev *tcpserver.Event) bool { return c.out.TrySend(ev) }

// Close sends what is queued, then a close frame with reason, and closes.
func (c *wsConn) Close(reason string) {
	if c.out.Close(reason) {
		c.stopKeepalive()
	}
}

// setReadLimit makes n bytes the most a message from the client may
// have. The wire refuses a longer one at its header (see frameCounter);
// the library's own limit, the same, stays as a backstop.
func (c *wsConn) setReadLimit(n int64) {
	c.readLimit = n
	c.wire.frames.limit = uint64(n)
	c.ws.SetReadLimit(n)
}

// closeCode picks the close status for a reason the hub gives: it ends
// the session of a member who floods with "disconnected: ..." and of one
// who typed /quit with "bye".
func closeCode(reason string) websocket.StatusCode {
	switch {
	case reason == reasonShutdown:
		return websocket.StatusGoingAway
	case strings.HasPrefix(reason, "disconnected:"):
		return websocket.StatusPolicyViolation
	default:
		return websocket.StatusNormalClosure
	}
}

// BeginBatch does nothing: the wire gives every network write its
// deadline.
func (c *wsConn) BeginBatch() {}

// Interrupt ends a write in progress: the member is cut off.
func (c *wsConn) Interrupt() { c.wire.setEndBy(time.Now()) }

// Drained sends the close frame once everything queued has gone out.
func (c *wsConn) Drained(reason string) { c.ws.Close(closeCode(reason), closeReason(reason)) }

// Abort tries once, briefly, to send a member that is being cut off a
// close frame saying why, then drops the connection.
func (c *wsConn) Abort(reason string) {
	c.wire.discard()
	c.closeBriefly(websocket.StatusPolicyViolation, reason, abortGrace)
}

// Failed drops a connection whose write failed.
func (c *wsConn) Failed(error) { c.wire.closeNow() }

// Cost is what ev weighs in the member's queue: its JSON for a JSON
// client (encoded here, once for every member, if nobody has asked for it
// yet), its text line otherwise, about what its frames take. The JSON of
// a history or batch is its lines' and an envelope's: encoding it whole
// would check every line's JSON again, under the room's lock.
func (c *wsConn) Cost(ev *tcpserver.Event) int {
	if !c.json {
		return len(ev.Line())
	}
	if ev.Kind != tcpserver.KindHistory && ev.Kind != tcpserver.KindBatch {
		return len(ev.JSON())
	}
	n := jsonEnvelope + len(ev.Room) + len(ev.From)
	for _, line := range ev.Events {
		n += len(line.JSON()) + 1 // and a comma
	}
	return n
}

// jsonEnvelope is about what a history or batch event's JSON takes
// besides its lines, room and sender: its type, ID, time and field names.
const jsonEnvelope = 96

// WriteEvents writes batch in one write to the network: in plain mode one
// frame per line; in JSON mode one frame, an event or an array of events,
// for each 64 KiB or so (see jsonBatch). The frames are made here (see
// wireConn.gatherFrame), not by the library.
func (c *wsConn) WriteEvents(batch []*tcpserver.Event) error {
	c.wire.cork()
	var err error
	if c.json && len(batch) > 1 {
		err = c.jsonBatch(batch)
	} else {
		for _, ev := range batch {
			if err = c.writeEvent(ev); err != nil {
				break
			}
		}
	}
	if errors.Is(err, errCloseSent) {
		// The library has said goodbye (an answer to the client's close,
		// or 1009 for an oversize message), maybe into this cork: what
		// was gathered goes out, close frame included, and the rest of the
		// batch cannot. The reader ends the connection, after reading away
		// what the client still sends; failing here would close it at
		// once, a reset under a client still writing.
		c.wire.uncork()
		return nil
	}
	if err != nil {
		c.wire.discard()
		return err
	}
	return c.wire.uncork()
}

// The frame that carries several events to a JSON client is a JSON array
// of them: their encodings, joined by commas, in brackets.
const (
	jsonBatchOpen  = `[`
	jsonBatchClose = `]`
)

// jsonFrameMax is the most payload a frame of several events may have.
// A client that fell behind would otherwise get everything queued for it
// in one frame, hundreds of kilobytes to buffer and parse at once; an
// event bigger than this goes alone in its frame.
const jsonFrameMax = 64 << 10

// jsonBatch gathers the events as few frames as jsonFrameMax allows, in
// order, each a JSON array of events or a lone event: a client reads,
// parses and handles one message for everything one wake-up of the
// writer found queued, or for each 64 KiB of it.
func (c *wsConn) jsonBatch(batch []*tcpserver.Event) error {
	for len(batch) > 0 {
		k, n := 1, len(batch[0].JSON())
		for k < len(batch) {
			m := n + 1 + len(batch[k].JSON()) // a comma, and the event
			if len(jsonBatchOpen)+m+len(jsonBatchClose) > jsonFrameMax {
				break
			}
			k, n = k+1, m
		}
		var err error
		if k == 1 {
			err = c.frame(batch[0].JSON())
		} else {
			err = c.jsonArray(batch[:k], len(jsonBatchOpen)+n+len(jsonBatchClose))
		}
		if err != nil {
			return err
		}
		batch = batch[k:]
	}
	return nil
}

// jsonArray gathers the events as one frame of n bytes, a JSON array.
func (c *wsConn) jsonArray(batch []*tcpserver.Event, n int) error {
	return c.wire.gatherArray(batch, n)
}

func (c *wsConn) writeEvent(ev *tcpserver.Event) error {
	if c.json {
		return c.frame(ev.JSON())
	}
	if ev.Kind == tcpserver.KindHistory {
		// A frame for each line of the text encoding, which is more than
		// the lines: each has its time, and a notice ends the history.
		for rest := ev.Line(); len(rest) > 0; {
			line, after, _ := bytes.Cut(rest, []byte("\r\n"))
			if err := c.frame(line); err != nil {
				return err
			}
			rest = after
		}
		return nil
	}
	if ev.Kind == tcpserver.KindBatch {
		for _, h := range ev.Events {
			if err := c.frame(trimLineEnd(h.Line())); err != nil {
				return err
			}
		}
		return nil
	}
	return c.frame(trimLineEnd(ev.Line()))
}

// frame gathers one text frame holding p.
func (c *wsConn) frame(p []byte) error { return c.wire.gatherFrame(p) }

// trimLineEnd drops the CRLF the text protocol ends each line with: in
// plain mode a frame is a line.
func trimLineEnd(b []byte) []byte {
	return bytes.TrimSuffix(b, []byte("\r\n"))
}

// closeBriefly sends a close frame and waits at most grace, in all, for
// it to go out and for the client's answer; then it drops the connection.
func (c *wsConn) closeBriefly(code websocket.StatusCode, reason string, grace time.Duration) {
	end := time.Now().Add(grace)
	c.wire.setEndBy(end)
	c.wire.SetReadDeadline(end)
	c.ws.Close(code, closeReason(reason))
	c.wire.closeNow()
}

// maxCloseReason is the longest reason a close frame holds: a control
// frame's payload is at most 125 bytes, two of them the code.
const maxCloseReason = 123

// closeReason fits reason into a close frame.
func closeReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	reason = reason[:maxCloseReason]
	for len(reason) > 0 && !utf8.ValidString(reason) {
		reason = reason[:len(reason)-1]
	}
	return reason
}

// startKeepalive has the server's keepalive ping the client from now on.
func (c *wsConn) startKeepalive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.out.Closing() {
		c.kept = true
		c.srv.keepalive.add(c)
	}
}

// stopKeepalive tells the server's keepalive the member is leaving.
func (c *wsConn) stopKeepalive() {
	c.mu.Lock()
	kept := c.kept
	c.kept = false
	c.mu.Unlock()
	if kept {
		c.srv.keepalive.remove(c)
	}
}

// ended reports whether the member is leaving: the keepalive leaves it
// alone from then on.
func (c *wsConn) ended() bool { return c.out.Closing() }

// sendPing pings the client, if that takes no waiting (see
// wireConn.tryPing), and notes what its answer will be checked against.
// A connection that cannot be written without waiting (TLS) has its ping
// written by a goroutine that lasts as long as the write.
func (c *wsConn) sendPing() {
	c.pingHeard = c.wire.heard.Load()
	c.pingPaused = c.paused.Load()
	switch c.wire.tryPing() {
	case pingSent:
		c.pingSent = true
	case pingBusy:
		c.pingSent = false
	case pingBlocked:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.out.Closing() {
			c.pingSent = false
			return
		}
		c.pingSent = true
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.wire.writePing()
		}()
	}
}

// answered reports whether the client has shown it is alive since its
// last ping: anything read from it will do. While the member's lines wait
// for the rate its reader reads nothing, the pong included; a member that
// sent more than the rate allows is not dead. A ping that did not go out
// (the connection was busy being written to, and its write deadline
// watches the client) asks nothing.
func (c *wsConn) answered() bool {
	return !c.pingSent || c.wire.heard.Load() != c.pingHeard ||
		c.paused.Load() != c.pingPaused || c.pause.Paused()
}

// pingTimeout drops a client that did not answer its ping in time.
func (c *wsConn) pingTimeout() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Closing() {
		return
	}
	c.leave = "ping timeout"
	c.out.Stop()
	c.wg.Add(1)
	go func() { // closing a TLS connection may wait for its writer
		defer c.wg.Done()
		c.wire.closeNow()
	}()
}

// leaveReason is why the member left, for the room's leave notice.
func (c *wsConn) leaveReason() string {
	c.mu.Lock()
	leave := c.leave
	c.mu.Unlock()
	if leave == "" && c.out.Reason() == tcpserver.ReasonTooSlow {
		return tcpserver.ReasonTooSlow
	}
	return leave
}

// finish ends the connection once the reader is done: it sends whatever
// is already gathered for the network (a close frame among it, perhaps),
// closes, and waits for the writer and the keepalive.
func (c *wsConn) finish() {
	c.out.Stop()
	c.stopKeepalive() // after Stop, under c.mu: no goroutine of c.wg starts after this
	c.wire.Close()
	c.ws.CloseNow()
	c.out.Wait()
	c.wg.Wait()
}

// maxHeld is the most messages said to the room as one batch.
const maxHeld = 256

// readOnMax is how many messages the reader reads on, without waiting,
// while its member is being refused (see readMessages): three batches.
const readOnMax = 3 * maxHeld

// read is a WebSocket's reader. It runs holding one count in the server's
// group of readers (Server.wg), which it gives back when it returns: it
// reads messages and hands them to the client until the connection ends,
// then takes the member out; or, when there is nothing to read, it parks
// the connection (see package idlepoll) and returns, and the connection
// keeps the count until the poller starts the next reader.
func (c *wsConn) read() {
	defer c.srv.wg.Done()
	if c.readMessages() {
		return
	}
	leave := c.leaveReason()
	c.client.Leave(leave)
	switch leave {
	case leaveTooBig:
		// The oversize message has been answered with 1009. Closing with
		// the rest of it unread would send a reset, and a client still
		// writing it would lose the close frame: read it away first,
		// until the client hangs up, within bounds.
		c.wire.drain(lingerFor, lingerMax)
	case leaveNotUTF8:
		c.awaitClose(lingerFor)
	}
	c.finish()
	c.srv.untrack(c)
	if c.idle != nil {
		c.idle.Forget()
	}
}

// readMessages reads until the connection ends (false) or is parked or
// paused (true). The buffer a message is read into is borrowed from a
// pool once the message has started to arrive, and given back at once.
//
// Messages that arrived together are said together, as the TCP server
// does with the lines of one read: while another whole message is already
// buffered the client holds what its member says, and the room gets one
// batch event (one queue entry and one write per member) for the lot.
// The first bytes of a message are not enough: its sender may be a round
// trip away from sending the rest, and what is held would wait for it.
// After each batch the reader yields to the writers it woke.
//
// Parking: while it may park, the reader lets the connection answer
// errIdle when nothing has come in between frames; the library's Reader
// hands that back with the connection untouched (a ping's pong, read on
// the way, included), and the reader parks instead of waiting deep in the
// library with a grown stack.
//
// Flood control: while lines the member sent wait for the rate, the
// reader reads nothing (see lagging); it checks after each batch, so a
// batch of messages already read is handed over whole, and what does not
// fit in the member's backlog is refused. While the member is being
// refused, the reader reads on, without waiting, up to readOnMax more
// messages of what has already come, as the TCP server reads on: a
// flood is measured whole, and its sender cut off at once.
func (c *wsConn) readMessages() (parked bool) {
	ctx := context.Background() // ending a read is done by closing the connection
	client := c.client
	if c.lagging() {
		return true
	}
	mayPark := c.idle != nil
	held, readOn := 0, 0
	for {
		c.wire.idleOK.Store(mayPark)
		typ, r, err := c.ws.Reader(ctx)
		c.wire.idleOK.Store(false)
		if errors.Is(err, errIdle) {
			// What was buffered may have ended in a control frame.
			client.Flush()
			held, readOn = 0, 0
			if c.lagging() { // read on while refused, and found no more
				return true
			}
			c.srv.wg.Add(1) // the parked connection's count
			if c.idle.Park() {
				return true // another reader may be running from here on
			}
			c.srv.wg.Done()
			mayPark = false // woken to end, or closed: wait here
			continue
		}
		if err != nil {
			client.Flush()
			c.readFailed(err)
			return false
		}
		bp := c.srv.readBufs.Get().(*[]byte)
		n, err := readMessage(r, *bp)
		c.wire.taken++
		if err == nil && typ == websocket.MessageText && !utf8.Valid((*bp)[:n]) {
			err = errNotUTF8 // checked whole: a character may span fragments
		}
		more := err == nil && held < maxHeld && c.wire.messageReady()
		if more {
			client.Hold()
			held++
		}
		if err == nil && !c.out.Closing() {
			c.handle(client, typ, (*bp)[:n])
		}
		if client.Refusing() {
			readOn++
		}
		c.srv.readBufs.Put(bp)
		if !more && held > 0 || err != nil {
			client.Flush()
			held = 0
			runtime.Gosched()
		}
		if err != nil {
			c.readFailed(err)
			return false
		}
		if more {
			continue
		}
		if client.Refusing() && mayPark && readOn < readOnMax {
			continue
		}
		readOn = 0
		if c.lagging() {
			return true
		}
	}
}

// lagging hands the client the turn of the lines that wait for the rate,
// if any, and reports true if some still wait: the reader is then paused
// until the next may go, holding its count in the server's group of
// readers as a parked one does, and the caller must return. Once the
// connection is closing nothing more is said: what waits is dropped when
// the member leaves.
func (c *wsConn) lagging() bool {
	client := c.client
	if !client.Waiting() || c.out.Closing() {
		return false
	}
	client.Hold()
	wait := client.Resume()
	client.Flush()
	if wait <= 0 {
		return false
	}
	c.srv.wg.Add(1)
	c.paused.Add(1)
	if c.pause.Sleep(wait, c.goRead) {
		return true
	}
	c.srv.wg.Done()
	return false
}

// goRead starts a reader in a goroutine of its own; it takes over the
// count a parked or paused connection holds in the server's group.
func (c *wsConn) goRead() { go c.read() }

// wake makes sure a reader runs from now on: the connection is being
// ended, and a parked or paused reader would never see it end. It runs
// before the connection is closed, on every path (see wireConn.beforeClose).
func (c *wsConn) wake() {
	if c.idle != nil {
		c.idle.Wake()
	}
	c.pause.Wake()
}

// readMessage reads all of a message into buf, which is bigger than the
// connection's read limit: the library stops a longer one.
func readMessage(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		if n == len(buf) {
			return n, websocket.ErrMessageTooBig
		}
		k, err := r.Read(buf[n:])
		n += k
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// readFailed notes why the reader stops. A message over the limit is
// refused here: the wire refused it at its header (errTooBig), and the
// close frame says the limit in words, as a telnet user is told; if the
// library's own limit stopped it, the library has said 1009 already.
func (c *wsConn) readFailed(err error) {
	ours := errors.Is(err, errTooBig)
	if ours || errors.Is(err, websocket.ErrMessageTooBig) {
		c.setLeave(leaveTooBig)
	}
	if ours {
		reason := fmt.Sprintf("%s: more than %d bytes", leaveTooBig, c.readLimit)
		c.wire.sendClose(websocket.StatusMessageTooBig, reason)
	}
	if errors.Is(err, errNotUTF8) {
		// RFC 6455, section 8.1: fail the connection, with 1007.
		c.setLeave(leaveNotUTF8)
		c.wire.sendClose(websocket.StatusInvalidFramePayloadData, "text message is not UTF-8")
	}
	c.srv.log.Debug("websocket read ended", "addr", c.addr, "err", err)
}

// awaitClose reads on, for at most d, after the reader has sent a close
// frame itself, until the client's close frame answers it: the library
// then closes the connection. What the client sends meanwhile is thrown
// away. Closing at once instead could reset the connection under a
// client still sending, and lose it the close frame.
func (c *wsConn) awaitClose(d time.Duration) {
	c.wire.SetReadDeadline(time.Now().Add(d))
	for {
		_, r, err := c.ws.Reader(context.Background())
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
	}
}

// setLeave sets why the member leaves, unless that is already said.
func (c *wsConn) setLeave(reason string) {
	c.mu.Lock()
	if c.leave == "" {
		c.leave = reason
	}
	c.mu.Unlock()
}

// handle acts on one message from the client. Every message costs at
// least one line against flood control, even one that holds none (an
// empty frame, an empty JSON message): nothing can be sent faster than
// lines can.
func (c *wsConn) handle(client *tcpserver.Client, typ websocket.MessageType, msg []byte) {
	if !c.json {
		// Plain mode: every line of the frame is a line typed at a
		// terminal; text and binary frames alike, for websockify-style
		// clients.
		none := true
		for line := range lines(msg) {
			client.Handle(line)
			none = false
		}
		if none {
			client.Handle(nil)
		}
		return
	}
	if typ != websocket.MessageText {
		client.Garbled("send JSON in text frames")
		return
	}
	lines, garbled := clientLines(msg)
	if garbled != "" {
		client.Garbled(garbled)
		return
	}
	if len(lines) == 0 {
		client.Handle(nil)
	}
	if len(lines) > 1 {
		// A message written on several lines is said as one batch, so
		// that every page shows it as it was written, in one piece.
		client.Hold()
		defer client.Flush()
	}
	for _, line := range lines {
		client.Handle([]byte(line))
	}
}

// lines yields the lines of b as a terminal ends them, at LF, CRLF or a
// lone CR, as the TCP server's line reader does.
func lines(b []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			i := bytes.IndexAny(b, "\r\n")
			if i < 0 {
				yield(b)
				return
			}
			if !yield(b[:i]) {
				return
			}
			if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			b = b[i+1:]
		}
	}
}

// clientLines turns one JSON message from the page into the lines a
// terminal user would have typed for it, or says why it cannot
// (garbled, a one-line notice for the sender). A "message" is said as it
// is, even if it starts with "/" (it is escaped as "//"), and a message of
// several lines is several lines; a "command" is one line, "/" added if
// it lacks one; a "history" is the /history command, with its limit and
// the id of the line to go back from, if given.
func clientLines(msg []byte) (said []string, garbled string) {
	m, garbled := clientMessage(msg)
	if garbled != "" {
		return nil, garbled
	}
	switch m.typ {
	case "message":
		for b := range lines([]byte(m.text)) {
			line := string(b)
			if strings.HasPrefix(line, "/") {
				line = "/" + line
			}
			said = append(said, line)
		}
		return said, ""
	case "command":
		text := strings.TrimSpace(m.text)
		if strings.ContainsAny(text, "\r\n") {
			return nil, "a command is one line"
		}
		if text != "" && !strings.HasPrefix(text, "/") {
			text = "/" + text
		}
		return []string{text}, ""
	case "history":
		return historyLine(m)
	}
	return nil, "unknown message type; " + messageForm
}

// historyLine is the /history command a "history" request stands for:
// {"type":"history","before":"ID","limit":50}, both keys optional.
func historyLine(m clientMsg) ([]string, string) {
	if m.has[keyText] {
		return nil, `"text" is not a key of "history"; ` + historyForm
	}
	limit := "50"
	if m.has[keyLimit] {
		// A number, as any JSON parser reads it: 1e2 is 100.
		n, err := strconv.ParseFloat(m.limit, 64)
		if err != nil || n != math.Trunc(n) || n < 1 || n > 200 {
			return nil, `"limit" must be a whole number from 1 to 200; ` + historyForm
		}
		limit = strconv.Itoa(int(n))
	}
	if !m.has[keyBefore] {
		return []string{"/history " + limit}, ""
	}
	if _, err := tcpserver.ParseLineKey(m.before); err != nil {
		return nil, fmt.Sprintf(`"before" is not a line id: %q; %s`, clip(m.before, 40), historyForm)
	}
	return []string{"/history " + limit + " " + m.before}, ""
}

// The keys a message from the page may have, as indexes of clientMsg.has.
const (
	keyType = iota
	keyText
	keyBefore
	keyLimit
	numKeys
)

var keyNames = [numKeys]string{keyType: "type", keyText: "text", keyBefore: "before", keyLimit: "limit"}

// clientMsg is one message from the page: its keys' values (limit as
// its number's text) and which keys it had.
type clientMsg struct {
	typ, text, before, limit string
	has                      [numKeys]bool
}

// clientMessage reads one JSON message from the page strictly: one
// object with exactly the keys "type" and "text" ("type" and, if it
// likes, "before" and "limit" for a "history"), in lower case, each once,
// strings but for limit, a number, and nothing after it. Anything else
// is refused, with why: a message that two JSON parsers could read two
// ways (one takes the last of two "type" keys, another the first; one
// matches "TYPE" to "type", another does not) could pass for a harmless
// message wherever it is checked, and run a command here. Unknown keys
// are refused too rather than ignored: the protocol is versioned by its
// subprotocol's name, so a client with more to say would ask for another
// one, and a key misspelt is told, not lost. (A key spelt with escapes,
// "typ\u0065", is "type" to every parser, and taken as such.)
//
// Such a message is small JSON: an object whose values are all strings
// or a number. It is scanned here, its strings decoded, in one pass as
// cheap as decoding it into a struct; the standard decoder only says what
// is wrong with a message that is not JSON at all.
func clientMessage(msg []byte) (m clientMsg, garbled string) {
	refuse := func(why string) (clientMsg, string) {
		if !json.Valid(msg) {
			var v struct{}
			why = "malformed JSON: " + json.Unmarshal(msg, &v).Error()
		}
		return clientMsg{}, why
	}
	const malformed = "malformed JSON"
	p := skipSpace(msg)
	if len(p) == 0 || p[0] != '{' {
		return refuse("malformed JSON: a message is an object; " + messageForm)
	}
	p = skipSpace(p[1:])
	if len(p) == 0 || p[0] != '}' { // {} has no key at all
		for {
			n := stringLen(p)
			if n == 0 {
				return refuse(malformed)
			}
			key, ok := jsonString(p[:n])
			if !ok {
				return refuse(malformed)
			}
			i := 0
			for i < numKeys && keyNames[i] != key {
				i++
			}
			if i == numKeys {
				return refuse(fmt.Sprintf("unknown key %q; %s", clip(key, 40), messageForm))
			}
			if m.has[i] {
				return refuse(fmt.Sprintf("duplicate key %q; %s", key, messageForm))
			}
			m.has[i] = true
			if p = skipSpace(p[n:]); len(p) == 0 || p[0] != ':' {
				return refuse(malformed)
			}
			p = skipSpace(p[1:])
			if i == keyLimit {
				n = numberLen(p)
				if n == 0 {
					return refuse(`"limit" must be a number; ` + historyForm)
				}
				m.limit = string(p[:n])
			} else {
				if len(p) == 0 || p[0] != '"' {
					return refuse(fmt.Sprintf("%q must be a string; %s", key, messageForm))
				}
				n = stringLen(p)
				if n == 0 {
					return refuse(malformed)
				}
				v, ok := jsonString(p[:n])
				if !ok {
					return refuse(malformed)
				}
				switch i {
				case keyType:
					m.typ = v
				case keyText:
					m.text = v
				case keyBefore:
					m.before = v
				}
			}
			if p = skipSpace(p[n:]); len(p) > 0 && p[0] == '}' {
				break
			}
			if len(p) == 0 || p[0] != ',' {
				return refuse(malformed)
			}
			p = skipSpace(p[1:])
		}
	}
	if len(skipSpace(p[1:])) > 0 {
		return refuse("malformed JSON: more after the message; send one message per frame")
	}
	switch {
	case !m.has[keyType]:
		return refuse(`"type" is missing; ` + messageForm)
	case m.typ == "history":
	case m.has[keyBefore] || m.has[keyLimit]:
		k := "before"
		if !m.has[keyBefore] {
			k = "limit"
		}
		return refuse(fmt.Sprintf(`%q is a key of "history" only; %s`, k, messageForm))
	case !m.has[keyText]:
		return refuse(`"text" is missing; ` + messageForm)
	}
	return m, ""
}

// numberLen returns the length of the JSON number p starts with, or 0 if
// p does not start with one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func numberLen(p []byte) int {
	i := 0
	digits := func() int {
		j := i
		for i < len(p) && '0' <= p[i] && p[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case digits() == 0:
		return 0
	}
	if i < len(p) && p[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

// jsonString decodes the JSON string q, quotes included, and reports
// whether it is one. One without escapes or control characters is its
// bytes: no decoder needed.
func jsonString(q []byte) (string, bool) {
	b := q[1 : len(q)-1]
	plain := utf8.Valid(b)
	for _, c := range b {
		if c < 0x20 || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return string(b), true
	}
	var s string
	err := json.Unmarshal(q, &s)
	return s, err == nil
}

// skipSpace skips JSON white space.
func skipSpace(p []byte) []byte {
	for len(p) > 0 && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' || p[0] == '\r') {
		p = p[1:]
	}
	return p
}

// stringLen returns the length of the JSON string p starts with, quotes
// included, or 0 if p does not start with a whole one.
func stringLen(p []byte) int {
	if len(p) == 0 || p[0] != '"' {
		return 0
	}
	for i := 1; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return 0
}

// messageForm ends every refusal of a message that is not one.
const messageForm = `send {"type":"message","text":"..."} or {"type":"command","text":"/nick bob"}`

// historyForm ends every refusal of a history request that is not one.
const historyForm = `send {"type":"history","before":"ID","limit":50}, both keys optional`

// clip shortens s to at most n bytes, on a character boundary, for a
// notice.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}
