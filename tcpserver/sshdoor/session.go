package sshdoor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"chatbridge/tcpserver"
)

// Limits on what a client's requests may set.
const (
	maxColumns = 2000 // wider windows are taken as this wide
	maxRows    = 2000
	// resizeEvery is the least time between two redraws for a window
	// change: a client sending a stream of them gets the last one
	// applied, not a redraw each.
	resizeEvery = 50 * time.Millisecond
	// abortTimeout bounds the one try at telling a member being cut off
	// why.
	abortTimeout = 100 * time.Millisecond
)

// A session is one SSH connection and, once it asks for a shell, the hub
// member it is: a [tcpserver.Member] whose Outbox writes to the session
// channel, through the line editor when the client asked for a
// pseudo-terminal.
//
// Goroutines: serve (the connection's and the channel's requests) runs
// from the end of the handshake until the connection ends, then waits
// for the others; read runs the editor and feeds the client; applySizes
// runs while window changes wait; the Outbox's writer runs while
// something is queued. Besides these, the SSH library keeps three per
// connection.
type session struct {
	srv  *Server
	nc   *deadlineConn
	addr string
	sc   *ssh.ServerConn // set before serve

	// Owned by serve until start, then read-only.
	ch        ssh.Channel
	pty       bool // the client asked for a pseudo-terminal
	palette   palette
	cols      atomic.Int32 // the window's width, for wrapping; the editor's own is set by applySizes
	rows      int
	w         *chanWriter
	term      *term.Terminal // nil without a pseudo-terminal
	keys      *keys
	client    *tcpserver.Client // set under mu, then read-only
	wg        sync.WaitGroup    // read and applySizes
	startOnce bool
	quit      bool // owned by read: the client's input ended (Ctrl-D, Ctrl-C, ssh -T's end)
	refused   bool // the hub would not have the member: set before the Outbox closes

	out tcpserver.Outbox // the queue and its writer; session is its Sink

	mu        sync.Mutex
	started   bool // the member exists (Outbox ready)
	closing   bool // Shutdown has come
	resizing  bool // applySizes is running
	want      [2]int
	wantNew   bool
	appliedAt time.Time

	// The writer's view, for the prompt: guarded by promptMu, which is
	// taken before the editor's own lock, never after.
	promptMu sync.Mutex
	room     string
	name     string
	colours  atomic.Bool
}

// ptyRequest and windowChange are the payloads of those requests (RFC
// 4254, 6.2 and 6.7).
type ptyRequest struct {
	Term          string
	Columns, Rows uint32
	Width, Height uint32
	Modes         string
}

type windowChange struct {
	Columns, Rows uint32
	Width, Height uint32
}

// serve answers the connection's requests until it ends: the channels a
// client opens (one session, nothing else) and the requests on it. The
// library delivers requests in order through buffered channels and stalls
// the connection while one is full, so this loop never waits on the
// editor (see resize), and on the network only as long as a write may
// take (see deadlineConn).
func (ss *session) serve(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	var chReqs <-chan *ssh.Request
	for chans != nil || reqs != nil || chReqs != nil {
		select {
		case nch, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			if r := ss.openChannel(nch); r != nil {
				chReqs = r
			}
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			// Port forwarding and the rest: refused. (A keep-alive
			// asks for an answer; a refusal is one.)
			if req.WantReply {
				req.Reply(false, nil)
			}
		case req, ok := <-chReqs:
			if !ok {
				// The channel is gone, and with it the session.
				chReqs = nil
				ss.nc.Close()
				continue
			}
			ss.request(req)
		}
	}
	ss.nc.Close()
	ss.wg.Wait()
	// The Outbox's writer, if a member was made and refused, or the
	// reader never ran.
	ss.out.Stop()
	ss.out.Wait()
}

// openChannel accepts the first session channel and refuses every other
// channel, returning the new channel's requests.
func (ss *session) openChannel(nch ssh.NewChannel) <-chan *ssh.Request {
	switch {
	case nch.ChannelType() != "session":
		nch.Reject(ssh.Prohibited, "this server has chat sessions only")
		return nil
	case ss.ch != nil:
		nch.Reject(ssh.Prohibited, "one session per connection")
		return nil
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		return nil
	}
	ss.ch = ch
	return reqs
}

// request answers one request on the session channel.
func (ss *session) request(req *ssh.Request) {
	ok := false
	switch req.Type {
	case "pty-req":
		var p ptyRequest
		if !ss.startOnce && ss.ch != nil && ssh.Unmarshal(req.Payload, &p) == nil {
			ss.pty = true
			ss.palette = paletteFor(p.Term)
			ss.cols.Store(int32(clamp(p.Columns, maxColumns, 80)))
			ss.rows = clamp(p.Rows, maxRows, 24)
			ok = true
		}
	case "window-change":
		var wc windowChange
		switch {
		case !ss.pty || ssh.Unmarshal(req.Payload, &wc) != nil:
		case !ss.startOnce:
			// Before the shell: the editor is made with it.
			ss.cols.Store(int32(clamp(wc.Columns, maxColumns, 80)))
			ss.rows = clamp(wc.Rows, maxRows, 24)
		default:
			ss.resize(clamp(wc.Columns, maxColumns, 80), clamp(wc.Rows, maxRows, 24))
		}
	case "shell":
		if !ss.startOnce {
			ss.startOnce = true
			ok = true
			if req.WantReply {
				req.Reply(true, nil)
			}
			ss.start()
			return
		}
	}
	// exec and subsystem (there is only the chat), env (nothing here
	// reads it), x11-req, auth-agent-req@openssh.com, signals: refused.
	if req.WantReply {
		req.Reply(ok, nil)
	}
}

// clamp turns a size from a request into one the editor can use: 0
// (unknown) is def, and anything over most is most.
func clamp(v uint32, most, def int) int {
	switch {
	case v == 0:
		return def
	case v > uint32(most):
		return most
	}
	return int(v)
}

// start makes the session a hub member: the shell was asked for.
func (ss *session) start() {
	s := ss.srv
	ss.nc.lift()
	ss.w = &chanWriter{ch: ss.ch, nc: ss.nc, timeout: s.cfg.WriteTimeout}
	if ss.pty {
		ss.colours.Store(ss.palette != nil)
		ss.keys = &keys{r: ss.ch, complete: ss.complete}
		ss.term = term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{ss.keys, ss.w}, "")
		ss.keys.t = ss.term
		ss.term.History = &history{}
		ss.term.SetSize(int(ss.cols.Load()), ss.rows)
	}
	ss.out.Init(s.hub, s.cfg.Queue, s.cfg.QueueBytes, ss)

	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		ss.nc.Close()
		return
	}
	ss.started = true
	ss.mu.Unlock()

	// The user name is the nick asked for. One too long to be a name is
	// cut, still too long, so that the hub's refusal does not quote
	// kilobytes of it.
	nick := ss.sc.User()
	if len(nick) > 2*tcpserver.MaxNickLen {
		nick = nick[:2*tcpserver.MaxNickLen]
	}
	info := tcpserver.ConnectInfo{Addr: ss.addr, Transport: "ssh", Nick: nick}
	if p := ss.sc.Permissions; p != nil {
		info.Key = p.Extensions[keyExtension]
	}
	client, err := s.hub.Connect(ss, info)
	if err != nil {
		s.log.Info("connection refused", "addr", ss.addr, "transport", "ssh", "reason", err)
		ss.refused = true
		ss.out.Close(err.Error(), tcpserver.Notice(tcpserver.KindSystem, err.Error()))
		return
	}
	ss.mu.Lock()
	ss.client = client
	ss.mu.Unlock()
	if ss.term != nil {
		// Before the editor first draws it; the welcome, which the
		// writer may be writing now, says the same.
		ss.setPrompt(client.Room(), client.Name())
	}
	s.log.Debug("ssh session", "addr", ss.addr, "user", ss.sc.User(), "key", info.Key, "pty", ss.pty)
	ss.wg.Go(ss.read)
}

// resize applies a window change, at most one every resizeEvery: the
// last one asked for wins.
func (ss *session) resize(cols, rows int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.want, ss.wantNew = [2]int{cols, rows}, true
	if !ss.resizing && ss.term != nil {
		ss.resizing = true
		ss.wg.Go(ss.applySizes)
	}
}

// applySizes tells the editor the window's size, for as long as changes
// keep coming. It runs outside serve because the editor redraws the
// line, a write that may wait.
func (ss *session) applySizes() {
	for {
		ss.mu.Lock()
		if !ss.wantNew {
			ss.resizing = false
			ss.mu.Unlock()
			return
		}
		size, since := ss.want, time.Since(ss.appliedAt)
		ss.wantNew = false
		ss.mu.Unlock()
		if since < resizeEvery {
			time.Sleep(resizeEvery - since)
		}
		ss.cols.Store(int32(size[0]))
		ss.term.SetSize(size[0], size[1])
		ss.mu.Lock()
		ss.appliedAt = time.Now()
		ss.mu.Unlock()
	}
}

// closeGracefully says reason to the member, flushes and closes; a
// connection that is not a member yet is closed at once.
func (ss *session) closeGracefully(reason string) {
	ss.mu.Lock()
	ss.closing = true
	started := ss.started
	ss.mu.Unlock()
	if started {
		ss.Close(reason)
		return
	}
	ss.nc.Close()
}

func (ss *session) closeNow() { ss.nc.Close() }

// Send queues ev (see [tcpserver.Outbox.Send]).
func (ss *session) Send(ev *tcpserver.Event) { ss.out.Send(ev) }

// QueueBound returns the bytes its queue may hold (see
// [tcpserver.QueueBounded]).
func (ss *session) QueueBound() int { return ss.out.Bound() }

// TrySend queues ev if there is room for it (see
// [tcpserver.Outbox.TrySend]): a private message others send the member
// never cuts it off.
func (ss *session) TrySend(ev *tcpserver.Event) bool { return ss.out.TrySend(ev) }

// The hub offers private messages through TrySend to a member that has it.
var _ interface{ TrySend(*tcpserver.Event) bool } = (*session)(nil)

// Close sends what is queued, then "*** reason", then ends the session.
func (ss *session) Close(reason string) {
	ss.out.Close(reason, tcpserver.Notice(tcpserver.KindSystem, reason))
}

// BeginBatch does nothing: every write has its own deadline (see
// chanWriter).
func (ss *session) BeginBatch() {}

// Interrupt ends a write in progress: the member is cut off.
func (ss *session) Interrupt() { ss.w.interrupt() }

// Cost is what ev weighs in the member's queue: its text line, which is
// what the member is written (the editor adds only colour codes, line
// breaks where it wraps, and its redraws of the prompt), and what the
// event keeps alive while it waits.
func (ss *session) Cost(ev *tcpserver.Event) int { return len(ev.Line()) }

// WriteEvents writes a batch: through the editor, which puts it above the
// prompt and the half-typed line, or as plain lines without a terminal.
func (ss *session) WriteEvents(batch []*tcpserver.Event) error {
	bp := ss.srv.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	st := style{width: int(ss.cols.Load())}
	if ss.colours.Load() {
		st.palette = ss.palette
	}
	var err error
	for i, ev := range batch {
		if ss.term == nil {
			b = append(b, ev.Line()...)
		} else {
			ss.follow(ev)
			b = render(b, ev, st)
		}
		// A batch of a member who fell behind can be a thousand events:
		// it goes out a buffer's worth at a time.
		if len(b) >= renderBufSize || i == len(batch)-1 {
			if err = ss.write(b); err != nil {
				break
			}
			b = b[:0]
		}
	}
	if cap(b) <= 4*renderBufSize {
		*bp = b[:0]
		ss.srv.bufs.Put(bp)
	}
	return err
}

// write writes text for the member: through the editor, above the prompt,
// or as it is without a terminal.
func (ss *session) write(b []byte) error {
	if ss.term == nil {
		_, err := ss.w.Write(b)
		return err
	}
	_, err := ss.term.Write(b)
	return err
}

// follow keeps the prompt's room and name up to date: a welcome says
// both, a name change of the member's own says the name.
func (ss *session) follow(ev *tcpserver.Event) {
	switch {
	case ev.Kind == tcpserver.KindHello:
		ss.setPrompt(ev.Room, ev.To)
	case ev.Kind == tcpserver.KindNick:
		ss.promptMu.Lock()
		mine := ev.From == ss.name
		ss.promptMu.Unlock()
		if mine {
			ss.setPrompt("", ev.To)
		}
	}
}

// setPrompt changes the room or the name the prompt shows ("": as it
// was) and sets it; the editor shows it at its next redraw.
func (ss *session) setPrompt(room, name string) {
	ss.promptMu.Lock()
	defer ss.promptMu.Unlock()
	if room != "" {
		ss.room = room
	}
	if name != "" {
		ss.name = name
	}
	var p palette
	if ss.colours.Load() {
		p = ss.palette
	}
	ss.term.SetPrompt(prompt(ss.room, ss.name, p))
}

// Drained ends a session once its last notice is written: the exit
// status, the channel's close, and a little while for the client to hang
// up before the connection is closed (the read deadline ends it).
func (ss *session) Drained(string) {
	if ss.term != nil {
		// Below the prompt, which the editor drew again after the last
		// notice, so that the user's shell starts on a line of its own.
		ss.w.Write([]byte("\r\n"))
	}
	status := uint32(0)
	if ss.refused {
		status = 1
	}
	ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
	ss.ch.Close()
	ss.nc.SetReadDeadline(time.Now().Add(ss.srv.cfg.Linger))
}

// Abort tries once, briefly, to tell a member being cut off why, then
// closes the connection.
func (ss *session) Abort(reason string) {
	ss.w.cut.Store(true)
	ev := tcpserver.Notice(tcpserver.KindSystem, "disconnected: "+reason)
	if ss.term != nil {
		ss.term.Write(render(nil, ev, style{}))
		ss.w.Write([]byte("\r\n"))
	} else {
		ss.w.Write(ev.Line())
	}
	ss.nc.Close()
}

// Failed closes a connection whose write failed.
func (ss *session) Failed(error) { ss.nc.Close() }

// leaveReason is what the room is told when the member goes: why the
// server ended the session, if it did, except for a shutdown, which every
// member hears about anyway, and nothing when the user left.
func (ss *session) leaveReason() string {
	r := ss.out.Reason()
	switch {
	case r == tcpserver.ReasonTooSlow:
	case ss.w.fired.Load():
		// The write that timed out was the editor's echo, not the
		// Outbox's: cut off all the same.
		ss.srv.hub.CountSlowKick()
		r = tcpserver.ReasonTooSlow
	case ss.quit, r == "server shutting down":
		r = ""
	}
	return r
}

// read reads what the user types and hands it to the client until the
// session ends, then has the client leave. When the client's input ends
// (Ctrl-D, Ctrl-C, or the end of what ssh -T was given), the member
// leaves as /quit does: what is queued for it, the answers to its last
// lines included, goes out first.
func (ss *session) read() {
	var ended bool
	if ss.term != nil {
		ended = ss.readTerminal()
	} else {
		ended = ss.readLines()
	}
	if ended {
		ss.quit = true
		ss.Close("bye")
		ss.sc.Wait() // Drained, or the write timer, ends the connection
	}
	ss.client.Leave(ss.leaveReason())
	ss.out.Stop()
	ss.nc.Close()
	ss.out.Wait()
}

// readTerminal runs the line editor until the input ends, when it
// reports true, or the connection fails.
func (ss *session) readTerminal() bool {
	for {
		line, err := ss.term.ReadLine()
		if err != nil && !errors.Is(err, term.ErrPasteIndicator) {
			return errors.Is(err, io.EOF)
		}
		if ss.out.Closing() {
			// What the member still types is not said.
			continue
		}
		ss.handle(line)
		ss.resume()
	}
}

// readLines reads plain lines, as the TCP server does, for a client
// without a pseudo-terminal (ssh -T), until the input ends, when it
// reports true, or the connection fails.
func (ss *session) readLines() bool {
	lines := tcpserver.LineReader{Max: ss.srv.hub.Config().MaxLine}
	emit := func(line []byte, tooLong bool) {
		if tooLong {
			ss.client.TooLong()
			return
		}
		ss.client.Handle(line)
	}
	buf := make([]byte, 1024)
	for {
		n, err := ss.ch.Read(buf)
		if n > 0 && !ss.out.Closing() {
			ss.client.Hold()
			lines.Feed(buf[:n], emit)
			ss.client.Flush()
			ss.resume()
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// resume has the hub say the member's lines that wait for the rate (see
// tcpserver.Client.Resume), at the rate, reading nothing meanwhile, as
// the TCP server does: what the member types next stays in SSH's window,
// which then stops the client. The session's reader is a goroutine of its
// own, so it waits here, in steps, and stops waiting once the connection
// is closing.
func (ss *session) resume() {
	for d := ss.client.Resume(); d > 0 && !ss.out.Closing(); d = ss.client.Resume() {
		time.Sleep(min(d, 100*time.Millisecond))
	}
}

// handle acts on one line from the editor: the door's own commands here,
// everything else through the hub.
func (ss *session) handle(line string) {
	name, arg, isCommand := tcpserver.ParseCommand(line)
	if isCommand && (name == "colors" || name == "colours") {
		ss.setColours(arg)
		return
	}
	ss.client.Handle([]byte(line))
	if isCommand && name == "help" {
		ss.Send(tcpserver.Notice(tcpserver.KindSystem, "  /colors on|off   names in colour, or not (this SSH session)"))
	}
}

// setColours is /colors: on, off, or without a word, which they are.
func (ss *session) setColours(arg string) {
	var on bool
	switch strings.ToLower(arg) {
	case "":
		state := "off"
		if ss.colours.Load() {
			state = "on"
		}
		ss.Send(tcpserver.Notice(tcpserver.KindSystem, "colours are "+state+"; /colors on or /colors off to change"))
		return
	case "on":
		on = true
	case "off":
	default:
		ss.Send(tcpserver.Notice(tcpserver.KindError, "usage: /colors on|off"))
		return
	}
	if on && ss.palette == nil {
		ss.Send(tcpserver.Notice(tcpserver.KindError, "your terminal says it has no colours (TERM)"))
		return
	}
	ss.colours.Store(on)
	ss.setPrompt("", "")
	if on {
		ss.Send(tcpserver.Notice(tcpserver.KindSystem, "colours on"))
	} else {
		ss.Send(tcpserver.Notice(tcpserver.KindSystem, "colours off"))
	}
}

// errWriteTimeout is a write to the channel that did not finish in time:
// the client stopped reading, or stopped granting window.
var errWriteTimeout = fmt.Errorf("ssh channel write: %w", os.ErrDeadlineExceeded)

// chanWriter is the session channel as the editor and the Outbox write
// to it. The socket's writes have a deadline (deadlineConn), but a write
// to the channel also waits for the client to grant SSH window, which no
// socket deadline bounds: each write here arms a timer that closes the
// connection if the write is still going after timeout. Writes come one
// at a time: mostly under the editor's lock already, or from the Outbox's
// writer alone without a terminal, but the last words of a session are
// written beside the editor. interrupt may come from anywhere.
type chanWriter struct {
	ch      ssh.Channel
	nc      net.Conn
	timeout time.Duration
	mu      sync.Mutex // one write at a time

	timer *time.Timer // made at the first write
	busy  atomic.Bool // a write is in progress
	cut   atomic.Bool // the member is being cut off: writes get abortTimeout
	fired atomic.Bool // the timer closed the connection
}

func (w *chanWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy.Store(true)
	d := w.timeout
	if w.cut.Load() {
		d = abortTimeout
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.fire)
	} else {
		w.timer.Reset(d)
	}
	n, err := w.ch.Write(p)
	w.timer.Stop()
	w.busy.Store(false)
	if err != nil && w.fired.Load() {
		err = errWriteTimeout
	}
	return n, err
}

func (w *chanWriter) fire() {
	w.fired.Store(true)
	w.nc.Close()
}

// interrupt cuts a write in progress short; a write that starts after it
// has abortTimeout. (busy is set before cut is read, and cut before busy
// is read here: one of the two sees the other.)
func (w *chanWriter) interrupt() {
	w.cut.Store(true)
	if w.busy.Load() {
		w.fire()
	}
}
