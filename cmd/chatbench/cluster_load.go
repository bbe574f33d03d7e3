package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A cluster run's members live in load processes, each holding its share
// under its own open-file limit. A load process is this program run as
// "chatbench cluster --load": its parent writes a loadSpec as the first line
// of its stdin, then one loadCommand per line, and reads one JSON line back
// for each (the first, unasked, when every member has connected). Its
// stdin's end (the parent's release, or its death) ends it.

// loadSpec is what a load process is to hold.
type loadSpec struct {
	Nodes []nodeAddr `json:"nodes"`
	// Holders is how many of Nodes (the first ones) hold members at the
	// start; the others are spares, which members only come to when they
	// come back (0: all of them).
	Holders        int           `json:"holders,omitempty"`
	First          int           `json:"first"` // the global slot of its first member
	N              int           `json:"n"`
	Senders        int           `json:"senders"`  // sender ids are 0..Senders-1
	StartNs        int64         `json:"start_ns"` // tags sent before this are not the run's
	PerSource      int           `json:"per_source"`
	ConnectRate    float64       `json:"connect_rate"`
	Parallel       int           `json:"parallel"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
}

// nodeAddr is where one node takes members.
type nodeAddr struct {
	TCP string `json:"tcp"` // host:port
	WS  string `json:"ws"`  // ws://host:port/ws
}

// placeOf is the node and transport of the member in global slot k: the
// members go round the nodes, and every other round on WebSocket, so each
// node has half of each (and so does each load process).
func placeOf(k, nodes int) (node int, ws bool) {
	return k % nodes, (k/nodes)%2 == 1
}

// loadCommand is one request of the parent.
type loadCommand struct {
	Cmd string `json:"cmd"` // "report" or "dead"
	// report: how many lines each sender has written, for loss; with
	// Hist, the latency histogram since the last report is sent and
	// started afresh.
	Sent []int64 `json:"sent,omitempty"`
	Hist bool    `json:"hist,omitempty"`
	// Since (report, with Hist): when the node was killed; the report
	// then has how long after it each member that came back was chatting
	// again.
	Since int64 `json:"since,omitempty"`
	// dead: the node that is about to be killed; members cut off from it
	// reconnect to the others.
	Node int `json:"node,omitempty"`
}

// loadReport is a load process's answer. Loss, duplicates and reordering
// are those of the members that stayed connected since the start, against
// Sent; the members that were cut off and came back are counted apart.
type loadReport struct {
	Connected     int    `json:"connected"`
	ConnectErrors int    `json:"connect_errors"`
	FirstErr      string `json:"first_error,omitempty"`

	Alive            int     `json:"alive"`
	Stayed           int     `json:"stayed"`
	Deliveries       int64   `json:"deliveries"`
	DeliveriesByNode []int64 `json:"deliveries_by_node"`
	Lost             int64   `json:"lost"`
	Duplicated       int64   `json:"duplicated"`
	Reordered        int64   `json:"reordered"`
	Foreign          int64   `json:"foreign"`

	Cut             int      `json:"cut"`                         // members the server cut off
	Rejoined        int      `json:"rejoined"`                    // of those, in again (welcomed by a node)
	Back            int      `json:"back"`                        // of those, got a line said after they came back
	RefusedFull     int      `json:"refused_full"`                // reconnect attempts a full node refused ("server full")
	RetryErrors     int      `json:"retry_errors"`                // reconnect attempts that failed or were refused otherwise
	FirstRetryErr   string   `json:"first_retry_error,omitempty"` // the first of those
	LastRejoinNs    int64    `json:"last_rejoin_ns"`              // when the last one was in again
	LastBackNs      int64    `json:"last_back_ns"`                // when the last one got its first new line
	RejoinDup       int64    `json:"rejoin_dup"`                  // duplicates seen by members who came back
	RejoinReordered int64    `json:"rejoin_reordered"`            // reordering seen by members who came back
	RejoinLost      int64    `json:"rejoin_lost"`                 // lines members who came back missed, from the first each got of its sender
	Latency         histWire `json:"latency"`
	BackAfter       histWire `json:"back_after"` // with Since: when each member that came back was chatting again
}

// histWire is a histogram on the wire: its non-empty buckets.
type histWire struct {
	Buckets map[int]uint64 `json:"buckets,omitempty"`
	N       uint64         `json:"n"`
	Min     int64          `json:"min"`
	Max     int64          `json:"max"`
}

func (h *histogram) wire() histWire {
	w := histWire{N: h.n, Min: h.min, Max: h.max}
	for i, c := range h.counts {
		if c > 0 {
			if w.Buckets == nil {
				w.Buckets = make(map[int]uint64)
			}
			w.Buckets[i] = c
		}
	}
	return w
}

// mergeWire adds a histogram received from a load process. Buckets out
// of range are an error: the two ends are the same program.
func (h *histogram) mergeWire(w histWire) error {
	if w.N == 0 {
		return nil
	}
	for i, c := range w.Buckets {
		if i < 0 || i >= len(h.counts) {
			return fmt.Errorf("histogram bucket %d out of range", i)
		}
		h.counts[i] += c
	}
	h.n += w.N
	h.min = min(h.min, w.Min)
	h.max = max(h.max, w.Max)
	return nil
}

// loadProc is the state of one load process. runLoad owns it: it starts
// one goroutine per member and waits for them all.
type loadProc struct {
	spec    loadSpec
	log     *slog.Logger
	dialer  *dialer
	tcp, ws []endpoint // by node
	members []*member
	wg      sync.WaitGroup
	ctx     context.Context // ends at close: members waiting to reconnect stop
	cancel  context.CancelFunc

	dead          atomic.Int64 // 1 + the node that died, 0 while none has
	refusedFull   atomic.Int64
	retryErrors   atomic.Int64
	firstRetryErr atomic.Pointer[string]
	lastSent      atomic.Pointer[[]int64] // the sent counts of the parent's last report

	pickMu    sync.Mutex // guards onNode and fullUntil
	onNode    []int      // its members on each node, or on their way there
	fullUntil []int64    // a node that said it is full is passed over until then (ns)

	mu   sync.Mutex // guards hist
	hist *histogram
}

// member is one room member of a load process. Its goroutine reads and,
// when the server cuts it off, reconnects; mu guards what the reports read.
type member struct {
	slot int
	ws   bool

	mu         sync.Mutex
	conn       benchConn // nil when not connected
	stopping   bool      // the process is closing: no new connection
	node       int
	joinNs     int64 // when its current connection was made
	trackers   []seqTracker
	deliveries int64
	byNode     []int64 // deliveries while on each node
	foreign    int64
	cut        bool  // it was cut off at least once
	rejoinNs   int64 // when it was in again
	backNs     int64 // when it first got a line said after that
	// Once it came back: whether it got a line of each sender yet (its
	// trackers start at the first), and the parent's sent counts when it
	// was in (a sender it got nothing of missed what it said since).
	seen       []bool
	sentAtJoin []int64
}

// runLoad is the load process: it reads its spec, connects, answers the
// parent's commands, and closes everything when stdin ends.
func runLoad(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	if !sc.Scan() {
		return fmt.Errorf("read spec: %w", errOrNone(sc.Err()))
	}
	var spec loadSpec
	if err := json.Unmarshal(sc.Bytes(), &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	if len(spec.Nodes) == 0 || spec.N < 1 || spec.Senders < 1 || spec.First < 0 || spec.Holders < 0 || spec.Holders > len(spec.Nodes) {
		return fmt.Errorf("spec: %d nodes (%d holding members), %d members, %d senders, first %d: %w",
			len(spec.Nodes), spec.Holders, spec.N, spec.Senders, spec.First, errUsage)
	}
	l, err := newLoadProc(ctx, spec, log)
	if err != nil {
		return err
	}
	defer l.close()

	enc := json.NewEncoder(out)
	res := l.connect()
	first := loadReport{Connected: res.ok, ConnectErrors: res.errors, FirstErr: errString(res.firstErr)}
	if err := enc.Encode(first); err != nil {
		return fmt.Errorf("report to parent: %w", err)
	}
	for sc.Scan() {
		var c loadCommand
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("decode command: %w", err)
		}
		var rep loadReport
		switch c.Cmd {
		case "dead":
			if c.Node < 0 || c.Node >= len(spec.Nodes) {
				return fmt.Errorf("dead node %d of %d: %w", c.Node, len(spec.Nodes), errUsage)
			}
			l.dead.Store(int64(c.Node) + 1)
		case "report":
			if len(c.Sent) != spec.Senders {
				return fmt.Errorf("report: %d sent counts for %d senders: %w", len(c.Sent), spec.Senders, errUsage)
			}
			sent := slices.Clone(c.Sent)
			l.lastSent.Store(&sent)
			rep = l.report(c.Sent, c.Hist, c.Since)
		default:
			return fmt.Errorf("unknown command %q: %w", c.Cmd, errUsage)
		}
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("report to parent: %w", err)
		}
	}
	return sc.Err()
}

func newLoadProc(ctx context.Context, spec loadSpec, log *slog.Logger) (*loadProc, error) {
	l := &loadProc{spec: spec, log: log, hist: newHistogram()}
	var tcps, wss []string
	for _, n := range spec.Nodes {
		tcps, wss = append(tcps, n.TCP), append(wss, n.WS)
	}
	var err error
	if l.tcp, l.ws, err = resolveEndpoints(ctx, tcps, wss); err != nil {
		return nil, err
	}
	timeout := spec.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	l.dialer = newDialer(l.tcp, l.ws, 0.5, wsOptions{}, timeout)
	if spec.PerSource > 0 {
		l.dialer.perSource = spec.PerSource
	}
	l.ctx, l.cancel = context.WithCancel(ctx)
	holders := spec.Holders
	if holders == 0 {
		holders = len(spec.Nodes)
	}
	l.onNode, l.fullUntil = make([]int, len(spec.Nodes)), make([]int64, len(spec.Nodes))
	l.members = make([]*member, spec.N)
	for i := range l.members {
		k := spec.First + i
		node, ws := placeOf(k, holders)
		l.members[i] = &member{slot: k, ws: ws, node: node,
			trackers: make([]seqTracker, spec.Senders), byNode: make([]int64, len(spec.Nodes))}
		l.onNode[node]++
	}
	return l, nil
}

func (l *loadProc) endpoint(node int, ws bool) endpoint {
	if ws {
		return l.ws[node]
	}
	return l.tcp[node]
}

// connect connects every member, paced, and starts its goroutine.
func (l *loadProc) connect() connectResult {
	plan := connectPlan{rate: l.spec.ConnectRate, parallel: max(l.spec.Parallel, 1)}
	return connectAll(l.ctx, len(l.members), plan, func(ctx context.Context, i int) error {
		m := l.members[i]
		c, err := l.dialer.dial(ctx, l.endpoint(m.node, m.ws), m.slot)
		if err != nil {
			l.leave(m.node)
			return fmt.Errorf("member %d: %w", m.slot, err)
		}
		if !m.attach(c, m.node, time.Now().UnixNano()) {
			c.close()
			return errors.New("closed while connecting")
		}
		l.wg.Go(func() { l.run(m, c) })
		return nil
	})
}

// attach makes c the member's connection, unless the process is closing.
func (m *member) attach(c benchConn, node int, now int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return false
	}
	m.conn, m.node, m.joinNs = c, node, now
	return true
}

// run reads the member's connection; when the server cuts it off, the
// member comes back as the page behind a load balancer does (see
// reconnect), and reads on.
func (l *loadProc) run(m *member, c benchConn) {
	buf := make([]byte, 2048)
	in := true // its first connection was counted in by connect
	retry := 0 // back-off steps taken since it was last in
	for {
		why := l.session(m, c, buf, in)
		// Closed now, not by the collector: a connection the server cut
		// keeps its descriptor until it is, and the killed node's 3,800
		// a process, on top of the members it holds, ran it out of them
		// ("too many open files" for the members coming back).
		c.close()
		m.mu.Lock()
		m.conn = nil
		node := m.node
		stopping := m.stopping
		if !stopping {
			m.cut = true
		}
		m.mu.Unlock()
		l.leave(node)
		if stopping {
			return
		}
		var wait time.Duration
		switch {
		case why == nil: // it was in: the page waits before its first try
			retry = 0
			wait = pageBackoff(0)
		case errors.Is(why, errServerFull):
			l.refusedFull.Add(1)
			wait = l.fullWait(node, &retry)
		default:
			l.retryFailed(why)
			wait = pageBackoff(retry)
			retry++
		}
		if c = l.redial(m, wait, &retry); c == nil {
			return
		}
		in = false
	}
}

// observe accounts for one tag the member got at now, under m.mu, and
// returns its latency if it is a line said since the member (re)joined
// (a rejoining member's history replay is not a delivery of the run).
func (l *loadProc) observe(m *member, t tag, now int64) (int64, bool) {
	if t.sender < 0 || t.sender >= int64(l.spec.Senders) || t.seq < 0 || t.sentNs < l.spec.StartNs {
		m.foreign++
		return 0, false
	}
	if m.seen != nil && !m.seen[t.sender] {
		// A member that came back starts where its node's history did.
		m.seen[t.sender] = true
		m.trackers[t.sender].next = t.seq
	}
	if !m.trackers[t.sender].observe(t.seq) {
		return 0, false
	}
	m.deliveries++
	m.byNode[m.node]++
	if t.sentNs < m.joinNs {
		return 0, false
	}
	if m.cut && m.backNs == 0 {
		m.backNs = now
	}
	return now - t.sentNs, true
}

// dialRefusedFull reports whether a failed WebSocket dial was a node's
// refusal at accept: an HTTP 503, or that same answer written before the
// request was (Go's client then calls it an unsolicited response and
// fails in readLoopPeekFailLocked). The run's nodes have no other limit
// that refuses at accept (no --max-per-ip, no --connect-rate), so it is
// their --max-clients.
func dialRefusedFull(err error) bool {
	s := err.Error()
	return strings.Contains(s, "got 503") || strings.Contains(s, "readLoopPeekFailLocked")
}

// errServerFull is a node's answer at its --max-clients: the line "***
// server full, try again later" on TCP, on WebSocket an HTTP 503 before
// the upgrade or a close (1013) with those words after it.
var errServerFull = errors.New("server full")

// maxHeld bounds what a connection may send before it says whether the
// member is in.
const maxHeld = 64 << 10

// session reads c until it ends, and returns why a connection that never
// got in ended (errServerFull: a full node refused it), nil for one that
// was in. A connection made to come back is not in until the node's first
// line (TCP) or message (WebSocket) welcomes the member: a node that
// refuses it says why instead, and closes. What comes before that is held
// and read as the rest once it is in.
func (l *loadProc) session(m *member, c benchConn, buf []byte, in bool) error {
	var scan tagScanner
	var lat []int64
	var now int64
	emit := func(t tag) {
		if v, ok := l.observe(m, t, now); ok {
			lat = append(lat, v)
		}
	}
	var held []byte
	var refused error
	err := c.readLoop(buf, func(p []byte, msgEnd bool) {
		now = time.Now().UnixNano()
		if refused != nil {
			return
		}
		if !in {
			held = append(held, p...)
			first, _, whole := bytes.Cut(held, []byte("\n"))
			if !whole && !msgEnd && len(held) < maxHeld {
				return
			}
			if refused = refusalOf(first); refused != nil {
				return
			}
			in = true
			l.admitted(m, now)
			p, held = held, nil
		}
		m.mu.Lock()
		scan.feed(p, emit)
		if msgEnd {
			scan.endMessage(emit)
		}
		m.mu.Unlock()
		if len(lat) > 0 {
			l.mu.Lock()
			for _, v := range lat {
				l.hist.add(v)
			}
			l.mu.Unlock()
			lat = lat[:0]
		}
	})
	switch {
	case in:
		return nil
	case refused != nil:
		return refused
	case err != nil && strings.Contains(err.Error(), errServerFull.Error()):
		return fmt.Errorf("%w: %w", errServerFull, err) // a WebSocket closed as full
	case len(held) > 0:
		return fmt.Errorf("closed after %q, before a welcome", held[:min(len(held), 200)])
	case err != nil:
		return fmt.Errorf("closed before a welcome: %w", err)
	}
	return errors.New("closed before a welcome")
}

// refusalOf reads the first line a connection got: nil if it welcomes the
// member, errServerFull if the node is full, and any other answer as an
// error that says it.
func refusalOf(first []byte) error {
	switch {
	case bytes.Contains(first, []byte("Welcome to chatbridge")):
		return nil
	case bytes.Contains(first, []byte(errServerFull.Error())):
		return errServerFull
	}
	return fmt.Errorf("refused: %q", bytes.TrimSpace(first[:min(len(first), 200)]))
}

// admitted marks a member that came back in, at now: a new session, whose
// trackers start at the first line of each sender it gets.
func (l *loadProc) admitted(m *member, now int64) {
	var sent []int64
	if p := l.lastSent.Load(); p != nil {
		sent = *p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejoinNs, m.sentAtJoin = now, sent
}

// pageBackoff is the page's wait before try number retry (from 0): 0.5 s
// doubling to 30 s, each wait between half and all of it.
func pageBackoff(retry int) time.Duration {
	d := min(30*time.Second, 500*time.Millisecond<<min(retry, 6))
	return d/2 + rand.N(d/2+1)
}

// fullWait is the wait after node said it is full: a load balancer sends
// the member on to the next node at once, so only a short pause (50 to
// 150 ms, spread) while another node is not known to be full, and the
// page's back-off once every node said it is.
func (l *loadProc) fullWait(node int, retry *int) time.Duration {
	if l.markFull(node) {
		d := pageBackoff(*retry)
		*retry++
		return d
	}
	return 50*time.Millisecond + rand.N(100*time.Millisecond)
}

// fullFor is how long a node that said it is full is passed over.
const fullFor = time.Second

// markFull passes node over for fullFor, and reports whether every node
// alive is passed over now.
func (l *loadProc) markFull(node int) bool {
	now := time.Now().UnixNano()
	dead := int(l.dead.Load()) - 1
	l.pickMu.Lock()
	defer l.pickMu.Unlock()
	l.fullUntil[node] = now + int64(fullFor)
	for i, t := range l.fullUntil {
		if i != dead && t <= now {
			return false
		}
	}
	return true
}

// pick chooses the node a member comes back to, as a load balancer with
// the least connections would: among the nodes alive and not passed over
// as full, the one with the fewest of this process's members (each
// process holds an even share of every node's, so its counts follow the
// nodes'), ties going round by member. If every node alive is passed over,
// the least loaded of them. The member is counted there at once, so that
// members coming back together spread.
func (l *loadProc) pick(slot int) int {
	now := time.Now().UnixNano()
	dead := int(l.dead.Load()) - 1
	l.pickMu.Lock()
	defer l.pickMu.Unlock()
	n := len(l.onNode)
	best, bestFull := -1, -1
	for k := range n {
		i := (slot + k) % n
		switch {
		case i == dead:
		case l.fullUntil[i] > now:
			if bestFull < 0 || l.onNode[i] < l.onNode[bestFull] {
				bestFull = i
			}
		case best < 0 || l.onNode[i] < l.onNode[best]:
			best = i
		}
	}
	if best < 0 {
		best = max(bestFull, 0)
	}
	l.onNode[best]++
	return best
}

// leave counts a member off node.
func (l *loadProc) leave(node int) {
	l.pickMu.Lock()
	defer l.pickMu.Unlock()
	l.onNode[node]--
}

// retryFailed counts an attempt that failed other than for a full node.
func (l *loadProc) retryFailed(err error) {
	l.retryErrors.Add(1)
	s := err.Error()
	l.firstRetryErr.CompareAndSwap(nil, &s)
}

// redial connects a member that was cut off or refused again after wait,
// to the node pick chooses, until it is connected or the process closes.
// A failed dial waits the page's back-off, or fullWait for a node that
// refused the WebSocket handshake as full (see dialRefusedFull). A new
// connection is a new session: its trackers start afresh.
func (l *loadProc) redial(m *member, wait time.Duration, retry *int) benchConn {
	for {
		if sleepCtx(l.ctx, wait) != nil {
			return nil
		}
		node := l.pick(m.slot)
		c, err := l.dialer.dial(l.ctx, l.endpoint(node, m.ws), m.slot)
		if err != nil {
			l.leave(node)
			if l.ctx.Err() != nil {
				return nil
			}
			if dialRefusedFull(err) {
				l.refusedFull.Add(1)
				wait = l.fullWait(node, retry)
				continue
			}
			l.retryFailed(err)
			wait = pageBackoff(*retry)
			*retry++
			continue
		}
		now := time.Now().UnixNano()
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			c.close()
			l.leave(node)
			return nil
		}
		m.conn, m.node, m.joinNs, m.rejoinNs, m.backNs = c, node, now, 0, 0
		m.trackers = make([]seqTracker, l.spec.Senders)
		m.seen = make([]bool, l.spec.Senders)
		m.mu.Unlock()
		return c
	}
}

// report sums up the members, against sent lines per sender; with
// withHist and since, when each member that came back was chatting again,
// from since.
func (l *loadProc) report(sent []int64, withHist bool, since int64) loadReport {
	r := loadReport{DeliveriesByNode: make([]int64, len(l.spec.Nodes)),
		RefusedFull: int(l.refusedFull.Load()), RetryErrors: int(l.retryErrors.Load())}
	if p := l.firstRetryErr.Load(); p != nil {
		r.FirstRetryErr = *p
	}
	var back *histogram
	if withHist && since > 0 {
		back = newHistogram()
	}
	for _, m := range l.members {
		m.mu.Lock()
		if m.conn != nil {
			r.Alive++
		}
		r.Deliveries += m.deliveries
		for i, d := range m.byNode {
			r.DeliveriesByNode[i] += d
		}
		r.Foreign += m.foreign
		switch {
		case m.cut:
			r.Cut++
			if m.rejoinNs > 0 {
				r.Rejoined++
				r.LastRejoinNs = max(r.LastRejoinNs, m.rejoinNs)
				r.RejoinLost += m.lostSinceBack(sent)
			}
			if m.backNs > 0 {
				r.Back++
				r.LastBackNs = max(r.LastBackNs, m.backNs)
				if back != nil {
					back.add(m.backNs - since)
				}
			}
			for i := range m.trackers {
				r.RejoinDup += m.trackers[i].duplicated
				r.RejoinReordered += m.trackers[i].reordered
			}
		case m.joinNs > 0:
			r.Stayed++
			for i := range m.trackers {
				tr := &m.trackers[i]
				r.Lost += tr.lost(sent[i], true)
				r.Duplicated += tr.duplicated
				r.Reordered += tr.reordered
			}
		}
		m.mu.Unlock()
	}
	if back != nil {
		r.BackAfter = back.wire()
	}
	if withHist {
		l.mu.Lock()
		r.Latency = l.hist.wire()
		l.hist = newHistogram()
		l.mu.Unlock()
	}
	return r
}

// lostSinceBack counts the lines a member that came back missed, under
// m.mu: of each sender, those after the first it got (its node's history
// starts it), or, of a sender it got nothing of, all said since it was in.
func (m *member) lostSinceBack(sent []int64) int64 {
	var n int64
	for i := range m.trackers {
		switch {
		case i < len(m.seen) && m.seen[i]:
			n += m.trackers[i].lost(sent[i], true)
		case i < len(m.sentAtJoin):
			n += max(sent[i]-m.sentAtJoin[i], 0)
		}
	}
	return n
}

// close ends every member's connection and goroutine, and waits for them.
func (l *loadProc) close() {
	l.cancel()
	for _, m := range l.members {
		m.mu.Lock()
		m.stopping = true
		if m.conn != nil {
			m.conn.close()
		}
		m.mu.Unlock()
	}
	l.wg.Wait()
}
