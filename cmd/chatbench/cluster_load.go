package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	Nodes          []nodeAddr    `json:"nodes"`
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

	Cut             int      `json:"cut"`              // members the server cut off
	Rejoined        int      `json:"rejoined"`         // of those, connected again
	Back            int      `json:"back"`             // of those, got a line said after they came back
	RetryErrors     int      `json:"retry_errors"`     // reconnect attempts that failed
	LastRejoinNs    int64    `json:"last_rejoin_ns"`   // when the last one connected again
	LastBackNs      int64    `json:"last_back_ns"`     // when the last one got its first new line
	RejoinDup       int64    `json:"rejoin_dup"`       // duplicates seen by members who came back
	RejoinReordered int64    `json:"rejoin_reordered"` // reordering seen by members who came back
	Latency         histWire `json:"latency"`
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

	dead        atomic.Int64 // 1 + the node that died, 0 while none has
	retryErrors atomic.Int64

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
	rejoinNs   int64 // when it connected again
	backNs     int64 // when it first got a line said after that
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
	if len(spec.Nodes) == 0 || spec.N < 1 || spec.Senders < 1 || spec.First < 0 {
		return fmt.Errorf("spec: %d nodes, %d members, %d senders, first %d: %w", len(spec.Nodes), spec.N, spec.Senders, spec.First, errUsage)
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
			rep = l.report(c.Sent, c.Hist)
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
	l.members = make([]*member, spec.N)
	for i := range l.members {
		k := spec.First + i
		node, ws := placeOf(k, len(spec.Nodes))
		l.members[i] = &member{slot: k, ws: ws, node: node,
			trackers: make([]seqTracker, spec.Senders), byNode: make([]int64, len(spec.Nodes))}
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
// member reconnects as the page does, and reads on.
func (l *loadProc) run(m *member, c benchConn) {
	buf := make([]byte, 2048)
	var scan tagScanner
	var lat []int64
	for {
		var now int64
		emit := func(t tag) {
			if v, ok := l.observe(m, t, now); ok {
				lat = append(lat, v)
			}
		}
		c.readLoop(buf, func(p []byte, msgEnd bool) {
			now = time.Now().UnixNano()
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
		scan = tagScanner{}
		m.mu.Lock()
		m.conn = nil
		stopping := m.stopping
		if !stopping {
			m.cut = true
		}
		m.mu.Unlock()
		if stopping {
			return
		}
		if c = l.reconnect(m); c == nil {
			return
		}
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

// reconnect connects a member that was cut off again, with the page's
// back-off (0.5 s doubling to 30 s, each wait between half and all of it),
// to a node that is alive, until it is connected or the process closes.
// A new connection is a new session: its trackers start afresh.
func (l *loadProc) reconnect(m *member) benchConn {
	nodes := len(l.spec.Nodes)
	for retry := 0; ; retry++ {
		delay := min(30*time.Second, 500*time.Millisecond<<min(retry, 6))
		delay = delay/2 + rand.N(delay/2+1)
		if sleepCtx(l.ctx, delay) != nil {
			return nil
		}
		node := m.node
		if dead := int(l.dead.Load()) - 1; dead >= 0 && node == dead && nodes > 1 {
			// Round the survivors, from a place that differs by member.
			node = (dead + 1 + (m.slot/nodes+retry)%(nodes-1)) % nodes
		}
		c, err := l.dialer.dial(l.ctx, l.endpoint(node, m.ws), m.slot)
		if err != nil {
			l.retryErrors.Add(1)
			continue
		}
		now := time.Now().UnixNano()
		m.mu.Lock()
		if m.stopping {
			m.mu.Unlock()
			c.close()
			return nil
		}
		m.conn, m.node, m.joinNs, m.rejoinNs, m.backNs = c, node, now, now, 0
		m.trackers = make([]seqTracker, l.spec.Senders)
		m.mu.Unlock()
		return c
	}
}

// report sums up the members, against sent lines per sender.
func (l *loadProc) report(sent []int64, withHist bool) loadReport {
	r := loadReport{DeliveriesByNode: make([]int64, len(l.spec.Nodes)), RetryErrors: int(l.retryErrors.Load())}
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
			}
			if m.backNs > 0 {
				r.Back++
				r.LastBackNs = max(r.LastBackNs, m.backNs)
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
	if withHist {
		l.mu.Lock()
		r.Latency = l.hist.wire()
		l.hist = newHistogram()
		l.mu.Unlock()
	}
	return r
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
