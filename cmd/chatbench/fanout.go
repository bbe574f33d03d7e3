package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutConfig is one fanout run.
type fanoutConfig struct {
	clientConfig
	receivers int
	senders   int
	rate      float64       // lines per second per sender; 0 = flat out
	duration  time.Duration // sending stops after this...
	messages  int64         // ...or after this many lines per sender (0 = no count limit)
	drain     time.Duration // how long to wait for stragglers after sending
	settle    time.Duration // quiet time after connecting, before sending
	window    int64         // lines per sender that may be in flight to the slowest receiver
	noBurst   bool          // paced senders that fall behind skip ahead instead of catching up
	// refusable: the server may refuse lines (a busy room), answering the
	// sender with an error line ("! ..."). A line no receiver got was
	// refused, not lost: lost counts only the lines some receiver got
	// and another did not.
	refusable bool
}

// fanoutRun is the state of one fanout run. The run's own goroutine owns it
// and starts and waits for every other goroutine: one read loop per
// connection, one send loop per sender, and the progress reporter.
type fanoutRun struct {
	cfg       fanoutConfig
	log       *slog.Logger
	startNs   int64 // tags sent before the run began are someone else's
	receivers []*receiver
	senders   []*sender
	// next[r*senders+s] is one past the highest sequence number receiver r
	// has seen from sender s. Written by r's read loop, read by the senders
	// (for the window) and the run (for the drain).
	next       []atomic.Int64
	shards     []latencyShard
	deliveries atomic.Int64    // running total, for progress lines
	stopping   atomic.Bool     // set before the run closes connections itself
	cuts       [2]atomic.Int64 // receivers and senders the server ended, for logCut
	errors     atomic.Int64    // error lines ("! ...") the senders got, when refusable
	readers    sync.WaitGroup
}

// receiver is a dedicated receiving client.
type receiver struct {
	id    int
	conn  benchConn // set before its read loop starts, nil if it never connected
	alive atomic.Bool

	// Owned by the read loop until the run has waited for it.
	scan       tagScanner
	trackers   []seqTracker // one per sender
	lat        []int64      // latencies found in the current read
	deliveries int64
	foreign    int64 // tags that are not from this run
	lastNs     int64 // receive time of the latest new delivery
	cutOff     bool  // the connection ended before the run closed it
}

// latencyShard is one of a few histograms the receivers share, so that a
// thousand receivers do not each need one.
type latencyShard struct {
	mu sync.Mutex
	h  *histogram // guarded by mu
}

// sender is a client that sends tagged lines (and drains what it receives).
type sender struct {
	id     int
	conn   benchConn
	issued atomic.Int64 // sequence numbers below this are written or being written
	sent   atomic.Int64 // sequence numbers below this were written
	ring   []completionSlot

	completion *histogram // owned by the send loop, then by the run
}

// completionSlot follows one line until its last receiver has it. The ring
// of slots is indexed by seq modulo its size, which is at least twice the
// in-flight window, so a slot is reused only when every live receiver has
// gone well past its line.
type completionSlot struct {
	seq    atomic.Int64 // -1 while unused or being reset
	sentNs atomic.Int64
	count  atomic.Int64
	lastNs atomic.Int64
}

// completed records that one more receiver has (seq, received at now).
func (s *sender) completed(seq, now int64) {
	slot := &s.ring[seq&int64(len(s.ring)-1)]
	if slot.seq.Load() != seq {
		return // far behind the window: the slot has moved on
	}
	slot.count.Add(1)
	for {
		old := slot.lastNs.Load()
		if now <= old || slot.lastNs.CompareAndSwap(old, now) {
			return
		}
	}
}

// closeSlot adds the slot's completion time, if any receiver got its line.
func (s *sender) closeSlot(slot *completionSlot) {
	if slot.seq.Load() < 0 || slot.count.Load() == 0 {
		return
	}
	s.completion.add(slot.lastNs.Load() - slot.sentNs.Load())
}

func ringSize(window int64) int {
	n := 1024
	for int64(n) < 2*window+2 {
		n *= 2
	}
	return n
}

func newFanoutRun(cfg fanoutConfig, log *slog.Logger) *fanoutRun {
	f := &fanoutRun{
		cfg:       cfg,
		log:       log,
		startNs:   time.Now().UnixNano(),
		receivers: make([]*receiver, cfg.receivers),
		senders:   make([]*sender, cfg.senders),
		next:      make([]atomic.Int64, cfg.receivers*cfg.senders),
		shards:    make([]latencyShard, min(max(cfg.receivers, 1), 4*runtime.GOMAXPROCS(0))),
	}
	for i := range f.shards {
		f.shards[i].h = newHistogram()
	}
	for i := range f.receivers {
		f.receivers[i] = &receiver{id: i, trackers: make([]seqTracker, cfg.senders)}
	}
	for i := range f.senders {
		s := &sender{id: i, ring: make([]completionSlot, ringSize(cfg.window)), completion: newHistogram()}
		for j := range s.ring {
			s.ring[j].seq.Store(-1)
		}
		f.senders[i] = s
	}
	return f
}

// runFanout connects, settles, sends, drains, and reports.
func runFanout(ctx context.Context, cfg fanoutConfig, log *slog.Logger) (*result, error) {
	f := newFanoutRun(cfg, log)
	// However the run ends, close every connection and wait for its reader.
	defer f.closeAll()

	var before, toolBefore procSample
	self := procSampler{pids: []int{os.Getpid()}, root: cfg.proc.root}
	if cfg.proc.enabled() {
		var err error
		if before, err = cfg.proc.sample(); err != nil {
			return nil, fmt.Errorf("sample server before: %w", err)
		}
	}
	conn := f.connect(ctx)
	nrecv, nsend := f.connectedCounts()
	if nrecv == 0 || nsend == 0 {
		return nil, fmt.Errorf("connect: %d of %d receivers and %d of %d senders connected: %w",
			nrecv, cfg.receivers, nsend, cfg.senders, errOrNone(conn.firstErr))
	}
	log.Info("connected", "receivers", nrecv, "senders", nsend, "errors", conn.errors, "elapsed", conn.elapsed.Round(time.Millisecond))

	if err := sleepCtx(ctx, cfg.settle); err != nil {
		return nil, fmt.Errorf("settle: %w", err)
	}
	if cfg.proc.enabled() {
		// The CPU window starts now; the RSS "before" stays the pre-connect one.
		s, err := cfg.proc.sample()
		if err != nil {
			return nil, fmt.Errorf("sample server at start: %w", err)
		}
		before.cpuTicks = s.cpuTicks
		if toolBefore, err = self.sample(); err != nil {
			return nil, fmt.Errorf("sample the load tool at start: %w", err)
		}
	}

	t0 := time.Now()
	stopProgress := f.startProgress(ctx, t0)
	f.sendAll(ctx, t0)
	sendEnd := time.Now()
	drained := f.drain(ctx)
	stopProgress()
	if !drained {
		log.Info("drain ended with lines outstanding", "drain", cfg.drain)
	}

	var after, toolAfter procSample
	if cfg.proc.enabled() {
		var err error
		if after, err = cfg.proc.sample(); err != nil {
			return nil, fmt.Errorf("sample server after: %w", err)
		}
		if toolAfter, err = self.sample(); err != nil {
			return nil, fmt.Errorf("sample the load tool after: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	f.closeAll()

	r := f.report(t0, sendEnd, conn.errors)
	if cfg.proc.enabled() {
		r.setServer(before, after)
		r.setTool(toolBefore, toolAfter)
	}
	return r, nil
}

func errOrNone(err error) error {
	if err == nil {
		return errors.New("no error reported")
	}
	return err
}

// connect opens all receivers first, then all senders, starting each one's
// read loop as soon as it is up (servers greet new clients, and a client
// that does not read can stall a server).
func (f *fanoutRun) connect(ctx context.Context) connectResult {
	d := f.cfg.newDialer()
	defer d.closeIdle()
	n := f.cfg.receivers
	return connectAll(ctx, n+f.cfg.senders, f.cfg.connect, func(ctx context.Context, slot int) error {
		if slot < n {
			rc := f.receivers[slot]
			c, err := d.dial(ctx, d.endpointFor(slot), slot)
			if err != nil {
				return fmt.Errorf("receiver %d: %w", slot, err)
			}
			rc.conn = c
			rc.alive.Store(true)
			f.readers.Go(func() { f.readReceiver(rc) })
			return nil
		}
		s := f.senders[slot-n]
		c, err := d.dial(ctx, d.endpointFor(s.id), slot)
		if err != nil {
			return fmt.Errorf("sender %d: %w", s.id, err)
		}
		s.conn = c
		f.readers.Go(func() { f.drainSender(s) })
		return nil
	})
}

func (f *fanoutRun) connectedCounts() (receivers, senders int) {
	for _, rc := range f.receivers {
		if rc.conn != nil {
			receivers++
		}
	}
	for _, s := range f.senders {
		if s.conn != nil {
			senders++
		}
	}
	return receivers, senders
}

// readReceiver is a receiver's read loop: it scans everything for tags and
// accounts for each one.
func (f *fanoutRun) readReceiver(rc *receiver) {
	var now int64
	emit := func(t tag) { f.observe(rc, t, now) }
	shard := &f.shards[rc.id%len(f.shards)]
	buf := readTail{buf: make([]byte, 8192)}
	err := rc.conn.readLoop(buf.buf, func(p []byte, msgEnd bool) {
		buf.saw(p)
		now = time.Now().UnixNano()
		before := rc.deliveries
		rc.scan.feed(p, emit)
		if msgEnd {
			rc.scan.endMessage(emit)
		}
		if len(rc.lat) > 0 {
			shard.mu.Lock()
			for _, v := range rc.lat {
				shard.h.add(v)
			}
			shard.mu.Unlock()
			rc.lat = rc.lat[:0]
		}
		if d := rc.deliveries - before; d > 0 {
			f.deliveries.Add(d)
		}
	})
	if !f.stopping.Load() {
		rc.cutOff = true
		rc.alive.Store(false)
		f.logCut(&f.cuts[0], "receiver disconnected", "receiver", rc.id, err, buf.last())
	}
}

// observe accounts for one tag received by rc at now.
func (f *fanoutRun) observe(rc *receiver, t tag, now int64) {
	if t.sender < 0 || t.sender >= int64(len(f.senders)) || t.seq < 0 || t.sentNs < f.startNs {
		rc.foreign++
		return
	}
	s := f.senders[t.sender]
	if t.seq >= s.issued.Load() {
		rc.foreign++ // not sent (yet) by this run
		return
	}
	tr := &rc.trackers[t.sender]
	if !tr.observe(t.seq) {
		return
	}
	f.next[rc.id*len(f.senders)+int(t.sender)].Store(tr.next)
	rc.deliveries++
	rc.lastNs = now
	rc.lat = append(rc.lat, now-t.sentNs)
	s.completed(t.seq, now)
}

// drainSender reads and discards what a sender receives: senders are room
// members too, and the server must be able to write to them.
func (f *fanoutRun) drainSender(s *sender) {
	buf := readTail{buf: make([]byte, 8192)}
	var errs errorLines
	err := s.conn.readLoop(buf.buf, func(p []byte, msgEnd bool) {
		buf.saw(p)
		if f.cfg.refusable {
			f.errors.Add(errs.feed(p, msgEnd))
		}
	})
	if !f.stopping.Load() {
		f.logCut(&f.cuts[1], "sender disconnected", "sender", s.id, err, buf.last())
	}
}

// errorLines counts the lines refused in error lines ("! ...") of a
// stream fed piece by piece, where a line ends at LF or at the end of a
// WebSocket message: one for each, or N for one that says "those N
// lines" (chatbridge refuses the lines of one read together).
type errorLines struct {
	line    []byte // the error line so far, its first bytes
	inError bool   // the line being read is an error line
	atStart bool   // the next byte starts a line
	started bool   // a byte has been seen
}

func (e *errorLines) feed(p []byte, msgEnd bool) int64 {
	var n int64
	for _, c := range p {
		if e.atStart || !e.started {
			e.inError, e.line = c == '!', e.line[:0]
		}
		e.started = true
		e.atStart = c == '\n'
		if e.inError && len(e.line) < 120 {
			e.line = append(e.line, c)
		}
		if e.atStart && e.inError {
			n += e.end()
		}
	}
	if msgEnd {
		if e.inError && !e.atStart {
			n += e.end()
		}
		e.atStart = true
	}
	return n
}

// end counts the error line just read.
func (e *errorLines) end() int64 {
	e.inError = false
	_, rest, ok := bytes.Cut(e.line, []byte("those "))
	if !ok {
		return 1
	}
	num, _, ok := bytes.Cut(rest, []byte(" lines"))
	if k, err := strconv.ParseInt(string(num), 10, 64); ok && err == nil && k > 0 {
		return k
	}
	return 1
}

// readTail is a read loop's buffer and the length of the last data read
// into it, which is still there when the loop ends: what the server said
// last before it hung up.
type readTail struct {
	buf []byte
	n   int
}

// saw notes p, a piece of data the loop read into the start of buf.
func (t *readTail) saw(p []byte) {
	if len(p) > 0 {
		t.n = len(p)
	}
}

func (t *readTail) last() []byte { return t.buf[:t.n] }

// logCut warns about the first few receivers, and the first few senders,
// the server ends (count is the one for the role), and only counts the
// rest: a server going away would otherwise print one line per client.
// last is what the connection read last: a server that refuses or cuts off
// a client usually says why first ("*** too many connections from your
// address"), and its last line is logged with the error.
func (f *fanoutRun) logCut(count *atomic.Int64, msg, role string, id int, err error, last []byte) {
	const loud = 5
	level := slog.LevelWarn
	if n := count.Add(1); n > loud {
		level = slog.LevelDebug
	} else if n == loud {
		msg += " (further ones at debug level)"
	}
	args := []any{role, id, "err", err}
	if l := lastLine(last); l != "" {
		args = append(args, "server_said", l)
	}
	f.log.Log(context.Background(), level, msg, args...)
}

// lastLine is the last non-blank line of b, at most 120 bytes of it, with
// bytes that are not printable ASCII escaped.
func lastLine(b []byte) string {
	b = bytes.TrimRight(b, "\r\n \t")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	b = bytes.TrimSpace(b)
	if len(b) > 120 {
		b = b[:120]
	}
	q := strconv.QuoteToASCII(string(b))
	return q[1 : len(q)-1]
}

// sendAll runs every connected sender's loop and waits for them.
func (f *fanoutRun) sendAll(ctx context.Context, t0 time.Time) {
	var wg sync.WaitGroup
	for _, s := range f.senders {
		if s.conn == nil {
			continue
		}
		wg.Go(func() { f.sendLoop(ctx, s, t0) })
	}
	wg.Wait()
}

// sendLoop sends one sender's lines: paced at --rate (staggered across
// senders so they do not fire together), or flat out, never more than
// --window lines ahead of the slowest live receiver.
func (f *fanoutRun) sendLoop(ctx context.Context, s *sender, t0 time.Time) {
	end := t0.Add(f.cfg.duration)
	var interval, offset time.Duration
	if f.cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / f.cfg.rate)
		offset = interval * time.Duration(s.id) / time.Duration(len(f.senders))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var low int64           // cached floor of the window
	var shift time.Duration // how far the schedule moved back (noBurst)
	for seq := int64(0); f.cfg.messages == 0 || seq < f.cfg.messages; seq++ {
		if interval > 0 {
			due := t0.Add(offset + shift + time.Duration(seq)*interval)
			if late := time.Since(due); f.cfg.noBurst && late > interval {
				// Behind (the machine was busy): go on from now rather
				// than send the backlog at once, which a server's flood
				// control would rightly refuse.
				shift += late
				due = due.Add(late)
			}
			if !due.Before(end) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
		} else if !time.Now().Before(end) {
			return
		}
		// A paced sender whose lines the server may refuse keeps its
		// pace: the receivers' highest line stays behind while the room
		// refuses it, and it is not racing them.
		for seq-low >= f.cfg.window && !(f.cfg.refusable && interval > 0) {
			if low = f.windowFloor(s.id, seq); seq-low < f.cfg.window {
				break
			}
			if !time.Now().Before(end) || ctx.Err() != nil {
				return
			}
			time.Sleep(200 * time.Microsecond)
		}

		slot := &s.ring[seq&int64(len(s.ring)-1)]
		s.closeSlot(slot)
		slot.seq.Store(-1)
		slot.count.Store(0)
		slot.lastNs.Store(0)
		now := time.Now().UnixNano()
		slot.sentNs.Store(now)
		slot.seq.Store(seq)
		s.issued.Store(seq + 1)
		if err := s.conn.sendTag(ctx, tag{sender: int64(s.id), seq: seq, sentNs: now}); err != nil {
			if !f.stopping.Load() {
				f.log.Warn("sender stopped", "sender", s.id, "err", err)
			}
			return
		}
		s.sent.Store(seq + 1)
	}
}

// windowFloor is the lowest next-expected sequence number of sender s over
// the live receivers (seq itself when none is left).
func (f *fanoutRun) windowFloor(s int, seq int64) int64 {
	low := seq
	for _, rc := range f.receivers {
		if rc.alive.Load() {
			low = min(low, f.next[rc.id*len(f.senders)+s].Load())
		}
	}
	return low
}

// drain waits up to --drain until every live receiver has every sender's
// last line, and reports whether they all did.
func (f *fanoutRun) drain(ctx context.Context) bool {
	deadline := time.Now().Add(f.cfg.drain)
	for {
		if f.caughtUp() {
			return true
		}
		if !time.Now().Before(deadline) || sleepCtx(ctx, 5*time.Millisecond) != nil {
			return false
		}
	}
}

func (f *fanoutRun) caughtUp() bool {
	for _, rc := range f.receivers {
		if !rc.alive.Load() {
			continue
		}
		for _, s := range f.senders {
			if f.next[rc.id*len(f.senders)+s.id].Load() < s.sent.Load() {
				return false
			}
		}
	}
	return true
}

// closeAll closes every connection and waits for every read loop. It may
// run twice (the second time finds nothing to do).
func (f *fanoutRun) closeAll() {
	f.stopping.Store(true)
	for _, rc := range f.receivers {
		if rc.conn != nil {
			rc.conn.close()
		}
	}
	for _, s := range f.senders {
		if s.conn != nil {
			s.conn.close()
		}
	}
	f.readers.Wait()
}

// startProgress logs a line every cfg.progress until the returned stop is
// called; stop waits for the reporter to end.
func (f *fanoutRun) startProgress(ctx context.Context, t0 time.Time) (stop func()) {
	return every(ctx, f.cfg.progress, func() {
		var sent int64
		for _, s := range f.senders {
			sent += s.sent.Load()
		}
		alive := 0
		for _, rc := range f.receivers {
			if rc.alive.Load() {
				alive++
			}
		}
		f.log.Info("progress", "elapsed", time.Since(t0).Round(time.Second), "sent", sent,
			"deliveries", f.deliveries.Load(), "receivers_alive", alive)
	})
}

// report sums up the run. Call it only after closeAll: it reads state the
// read loops owned.
func (f *fanoutRun) report(t0, sendEnd time.Time, connectErrors int) *result {
	r := &result{Mode: "fanout", Clients: f.cfg.receivers + f.cfg.senders, ConnectErrors: connectErrors}
	lat := newHistogram()
	for i := range f.shards {
		lat.merge(f.shards[i].h)
	}
	compl := newHistogram()
	for _, s := range f.senders {
		if s.conn == nil {
			continue
		}
		r.Senders++
		r.Sent += s.sent.Load()
		for i := range s.ring {
			s.closeSlot(&s.ring[i])
		}
		compl.merge(s.completion)
	}
	end := sendEnd.UnixNano()
	var foreign int64
	// accepted[s] is how many of sender s's lines the server said to
	// the room: as many as the receiver that got the most got.
	accepted := make([]int64, len(f.senders))
	for _, rc := range f.receivers {
		if rc.conn == nil || rc.cutOff {
			continue
		}
		for si := range f.senders {
			accepted[si] = max(accepted[si], rc.trackers[si].received)
		}
	}
	for _, rc := range f.receivers {
		if rc.conn == nil {
			continue
		}
		r.Receivers++
		if rc.cutOff {
			r.Disconnected++
		}
		r.Deliveries += rc.deliveries
		foreign += rc.foreign
		end = max(end, rc.lastNs)
		for si, s := range f.senders {
			tr := &rc.trackers[si]
			switch {
			case !f.cfg.refusable:
				r.Lost += tr.lost(s.sent.Load(), !rc.cutOff)
			case !rc.cutOff:
				r.Lost += accepted[si] - tr.received
			}
			r.Duplicated += tr.duplicated
			r.Reordered += tr.reordered
		}
	}
	if f.cfg.refusable {
		for si, s := range f.senders {
			r.Refused += s.sent.Load() - accepted[si]
		}
		r.ErrorLines = f.errors.Load()
	}
	if foreign > 0 {
		f.log.Info("ignored tags not sent by this run", "count", foreign)
	}
	r.DurationS = float64(end-t0.UnixNano()) / 1e9
	if r.DurationS > 0 {
		r.DeliveriesPerSec = float64(r.Deliveries) / r.DurationS
	}
	r.LatP50us = microseconds(lat.quantile(0.50))
	r.LatP90us = microseconds(lat.quantile(0.90))
	r.LatP99us = microseconds(lat.quantile(0.99))
	r.LatP999us = microseconds(lat.quantile(0.999))
	r.LatMaxus = microseconds(lat.quantile(1))
	r.ComplP50us = microseconds(compl.quantile(0.50))
	r.ComplP99us = microseconds(compl.quantile(0.99))
	r.ComplMaxus = microseconds(compl.quantile(1))
	return r
}
