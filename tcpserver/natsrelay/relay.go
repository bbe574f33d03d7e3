package natsrelay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"chatbridge/tcpserver"
)

// What members are told when the link to NATS goes and comes back.
const (
	NoticeLost     = "link to other nodes lost"
	NoticeRestored = "link to other nodes restored"
)

// errLinkDown is what the cluster calls return while NATS cannot be asked.
var errLinkDown = errors.New("link to other nodes is down")

// Config is how a relay reaches NATS and names what it keeps there. The
// zero value of a field means its default.
type Config struct {
	URL      string // e.g. nats://127.0.0.1:4222; required
	Prefix   string // of every subject, stream and bucket; "chatbridge"
	NodeID   string // this node's name on NATS; random if empty
	History  int    // lines the stream keeps per room; 20 (the hub's History)
	Required bool   // Start fails if NATS cannot be reached now

	// PresenceTTL bounds how long the members of a node that died stay in
	// presence (and keep their names): each node refreshes its names every
	// PresenceTTL/3, and the bucket forgets a name not refreshed for
	// PresenceTTL. 15s.
	PresenceTTL time.Duration

	Queue          int           // events waiting to be published before they are dropped; 8192
	ConnectTimeout time.Duration // for each attempt to connect; 2s
	ReconnectWait  time.Duration // between attempts; 500ms
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "chatbridge"
	}
	if c.History == 0 {
		c.History = 20
	}
	if c.PresenceTTL == 0 {
		c.PresenceTTL = 15 * time.Second
	}
	if c.Queue == 0 {
		c.Queue = 8192
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 2 * time.Second
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 500 * time.Millisecond
	}
	return c
}

// A Relay joins one hub to the others through NATS. Make it with New, give
// it to the hub as HubConfig.Relay, then Start it with the hub; Close it
// after the hub's servers have shut down. Its methods are safe for
// concurrent use.
type Relay struct {
	cfg Config
	log *slog.Logger

	queue   chan *tcpserver.Event // for the publisher
	dropped atomic.Uint64         // events the queue had no room for, or NATS refused
	offline atomic.Uint64         // events not relayed because the link was down
	bad     atomic.Uint64         // messages from NATS that were not ours to read

	// Set by Start, then read-only.
	hub    *tcpserver.Hub
	nc     *nats.Conn
	js     jetstream.JetStream
	ctx    context.Context
	cancel context.CancelFunc
	closed chan struct{} // closed by nats.go's closed handler
	poke   chan struct{} // the link changed; for the link watcher

	wg        sync.WaitGroup
	closeOnce sync.Once

	// The JetStream handles of the current link session; nil while down.
	store atomic.Pointer[store]

	names names
}

// store is what the link watcher sets up on NATS each time the link comes.
type store struct {
	history jetstream.Stream
	kv      jetstream.KeyValue
}

// New checks cfg and returns a relay that is not yet connected. Events
// published before Start wait in its queue.
func New(cfg Config, log *slog.Logger) (*Relay, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == "" {
		return nil, errors.New("nats relay: no URL")
	}
	if !validNodeID(cfg.Prefix) {
		return nil, fmt.Errorf("nats relay: prefix %q: use letters, digits, - or _", cfg.Prefix)
	}
	if cfg.NodeID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.NodeID = "n" + hex.EncodeToString(b[:])
	}
	if !validNodeID(cfg.NodeID) {
		return nil, fmt.Errorf("nats relay: node ID %q: use letters, digits, - or _", cfg.NodeID)
	}
	if cfg.History < 1 {
		cfg.History = 1 // the stream needs a limit; the hub then replays none
	}
	r := &Relay{
		cfg:   cfg,
		log:   log.With("node", cfg.NodeID),
		queue: make(chan *tcpserver.Event, cfg.Queue),
		poke:  make(chan struct{}, 1),
	}
	r.names.init(r)
	return r, nil
}

// NodeID returns this node's name on NATS.
func (r *Relay) NodeID() string { return r.cfg.NodeID }

// Collector returns the relay's counters as Prometheus metrics, read when
// scraped: chatbridge_relay_dropped_total, chatbridge_relay_offline_total,
// chatbridge_relay_unreadable_total and chatbridge_relay_link_up.
func (r *Relay) Collector() prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatbridge_relay_" + name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	return relayCollectors{
		counter("dropped_total", "Events for other nodes dropped: the relay's queue was full, or NATS refused them.", &r.dropped),
		counter("offline_total", "Events kept on this node because the link to the others was down.", &r.offline),
		counter("unreadable_total", "Messages from NATS that were not ours to read, ignored.", &r.bad),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatbridge_relay_link_up", Help: "1 while this node is connected to NATS."},
			func() float64 {
				if r.nc != nil && r.nc.IsConnected() {
					return 1
				}
				return 0
			}),
	}
}

// relayCollectors is several collectors as one.
type relayCollectors []prometheus.Collector

func (c relayCollectors) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c relayCollectors) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}

// Dropped returns how many events were not published: the queue was full
// or NATS refused them.
func (r *Relay) Dropped() uint64 { return r.dropped.Load() }

// Subject and store names.
func (r *Relay) lineSubject(room string) string  { return r.cfg.Prefix + ".room." + room + ".line" }
func (r *Relay) eventSubject(room string) string { return r.cfg.Prefix + ".room." + room + ".event" }
func (r *Relay) privateSubject(node string) string {
	return r.cfg.Prefix + ".node." + node + ".private"
}
func (r *Relay) streamName() string { return r.cfg.Prefix + "_history" }
func (r *Relay) bucketName() string { return r.cfg.Prefix + "_names" }

// Start connects to NATS and starts relaying for hub. Unless
// Config.Required, a NATS that cannot be reached is not an error: the relay
// keeps trying in the background and the hub works alone meanwhile. ctx
// bounds the start only.
func (r *Relay) Start(ctx context.Context, hub *tcpserver.Hub) error {
	r.hub = hub
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.closed = make(chan struct{})
	poke := func() {
		select {
		case r.poke <- struct{}{}:
		default:
		}
	}
	opts := []nats.Option{
		nats.Name("chatbridge " + r.cfg.NodeID),
		nats.MaxReconnects(-1),
		// No buffering while the link is down: what is said then stays on
		// this node, rather than reaching the others at some random
		// moment after the link is back.
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(r.cfg.ReconnectWait),
		nats.Timeout(r.cfg.ConnectTimeout),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { poke() }),
		nats.ReconnectHandler(func(*nats.Conn) { poke() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { poke() }),
		nats.ClosedHandler(func(*nats.Conn) { close(r.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			r.log.Warn("nats error", "err", err)
		}),
	}
	if !r.cfg.Required {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	nc, err := nats.Connect(r.cfg.URL, opts...)
	if err != nil {
		r.cancel()
		return fmt.Errorf("connect to NATS at %s: %w", r.cfg.URL, err)
	}
	r.nc = nc
	if r.js, err = jetstream.New(nc); err != nil {
		r.shutdown()
		return fmt.Errorf("jetstream on %s: %w", r.cfg.URL, err)
	}
	if r.cfg.Required {
		if err := r.setup(ctx); err != nil {
			r.shutdown()
			return err
		}
	}
	incoming := make(chan *nats.Msg, incomingQueue)
	if _, err := nc.ChanSubscribe(r.cfg.Prefix+".room.>", incoming); err != nil {
		r.shutdown()
		return fmt.Errorf("subscribe to %s.room.>: %w", r.cfg.Prefix, err)
	}
	if _, err := nc.Subscribe(r.privateSubject(r.cfg.NodeID), r.onPrivate); err != nil {
		r.shutdown()
		return fmt.Errorf("subscribe to %s: %w", r.privateSubject(r.cfg.NodeID), err)
	}
	poke()
	r.wg.Go(func() { r.deliverLoop(incoming) })
	r.wg.Go(r.publishLoop)
	r.wg.Go(r.linkLoop)
	r.wg.Go(r.names.writeLoop)
	if !nc.IsConnected() {
		r.log.Warn("NATS not reachable; this node works alone until it is", "url", r.cfg.URL)
	}
	return nil
}

// Close stops relaying: it publishes what is queued if it can, ends the
// relay's goroutines and closes the connection. The names of this node's
// members are left to expire if they were not released.
func (r *Relay) Close() error {
	r.closeOnce.Do(r.shutdown)
	return nil
}

func (r *Relay) shutdown() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	r.names.stopWatch()
	if r.nc == nil {
		return
	}
	if r.nc.IsConnected() {
		r.nc.FlushTimeout(time.Second)
	}
	r.nc.Close()
	select {
	case <-r.closed:
	case <-time.After(5 * time.Second):
		r.log.Warn("NATS connection did not report closed")
	}
	r.log.Info("relay stopped", "dropped", r.dropped.Load(), "offline", r.offline.Load(), "unreadable", r.bad.Load())
}

// Publish queues a local room event for the other nodes. It never blocks:
// an event the queue has no room for is dropped and counted.
func (r *Relay) Publish(ev *tcpserver.Event) {
	switch ev.Kind {
	case tcpserver.KindMessage, tcpserver.KindAction, tcpserver.KindJoin, tcpserver.KindLeave, tcpserver.KindNick:
	default:
		return
	}
	select {
	case r.queue <- ev:
	default:
		r.drop("queue full")
	}
}

func (r *Relay) drop(why string) {
	if n := r.dropped.Add(1); n&(n-1) == 0 { // 1, 2, 4, 8, ...: the log cannot flood
		r.log.Warn("events to other nodes dropped", "why", why, "dropped", n)
	}
}

// publishLoop is the only goroutine that publishes room events, so they
// leave in the order the hub made them.
func (r *Relay) publishLoop() {
	for {
		select {
		case ev := <-r.queue:
			r.publish(ev)
		case <-r.ctx.Done():
			for {
				select {
				case ev := <-r.queue:
					r.publish(ev)
				default:
					return
				}
			}
		}
	}
}

func (r *Relay) publish(ev *tcpserver.Event) {
	switch ev.Kind {
	case tcpserver.KindJoin:
		r.names.moved(ev.From, ev.Room)
	case tcpserver.KindNick:
		r.names.moved(ev.To, ev.Room)
	}
	b, err := encodeEvent(r.cfg.NodeID, ev)
	if err != nil {
		r.drop(err.Error())
		return
	}
	subject := r.eventSubject(ev.Room)
	if ev.Kind == tcpserver.KindMessage || ev.Kind == tcpserver.KindAction {
		subject = r.lineSubject(ev.Room)
	}
	if !r.nc.IsConnected() {
		r.offline.Add(1)
		return
	}
	if err := r.nc.Publish(subject, b); err != nil {
		r.drop(err.Error())
	}
}

// Room events from NATS wait at most incomingQueue deep for deliverLoop;
// beyond that nats.go drops them and reports a slow consumer. maxBatch is
// the most lines of one sender handed to the hub as one batch.
const (
	incomingQueue = 65536
	maxBatch      = 256
)

// deliverLoop hands other nodes' room events to the hub, in the order
// NATS delivers them, so the events of each sender arrive in the order
// they were sent. Lines one sender said in a row that are already waiting
// go as one batch: a member's queue then holds one entry for them, as it
// does for lines said on this node, however fast they come.
func (r *Relay) deliverLoop(incoming <-chan *nats.Msg) {
	var run []*tcpserver.Event // consecutive lines of one sender in one room
	flush := func() {
		switch len(run) {
		case 0:
			return
		case 1:
			r.hub.Deliver(run[0])
		default:
			first := run[0]
			r.hub.Deliver(&tcpserver.Event{Kind: tcpserver.KindBatch, Time: first.Time, Room: first.Room, From: first.From, Node: first.Node, Events: run})
		}
		run = nil
	}
	for {
		var m *nats.Msg
		select {
		case m = <-incoming:
		case <-r.ctx.Done():
			return
		}
		for m != nil {
			if ev := r.decodeRoomEvent(m); ev != nil {
				line := ev.Kind == tcpserver.KindMessage || ev.Kind == tcpserver.KindAction
				if len(run) > 0 && (!line || len(run) == maxBatch || ev.Node != run[0].Node || ev.From != run[0].From || ev.Room != run[0].Room) {
					flush()
				}
				if line {
					run = append(run, ev)
				} else {
					r.hub.Deliver(ev)
				}
			}
			select {
			case m = <-incoming:
			default:
				m = nil
			}
		}
		flush()
	}
}

// decodeRoomEvent returns another node's room event, or nil for our own
// echo or garbage.
func (r *Relay) decodeRoomEvent(m *nats.Msg) *tcpserver.Event {
	ev, err := decodeEvent(m.Data)
	if err != nil {
		if n := r.bad.Add(1); n&(n-1) == 0 {
			r.log.Warn("unreadable message from NATS ignored", "subject", m.Subject, "err", err, "count", n)
		}
		return nil
	}
	if ev.Node == r.cfg.NodeID || ev.Kind == tcpserver.KindPrivate {
		return nil // our own, back from NATS
	}
	return ev
}

// linkLoop follows the link: each time it comes, it sets up the stream,
// the bucket and the names; each time it goes, it tells the members. It
// also refreshes this node's names and forgets dead nodes' members.
func (r *Relay) linkLoop() {
	up, everUp, failing := false, false, false
	var reconnects uint64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	refresh := time.NewTicker(r.cfg.PresenceTTL / 3)
	defer refresh.Stop()
	sweep := time.NewTicker(min(time.Second, r.cfg.PresenceTTL/4))
	defer sweep.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.poke:
		case <-tick.C:
		case <-refresh.C:
			if up {
				r.names.refreshAll()
			}
			continue
		case <-sweep.C:
			if up {
				r.names.sweep(time.Now())
			}
			continue
		}
		connected := r.nc.IsConnected()
		rc := r.nc.Stats().Reconnects
		switch {
		case connected && (!up || rc != reconnects):
			if up {
				// It went and came back between two looks.
				r.linkLost()
			}
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			err := r.setup(ctx)
			cancel()
			if err != nil {
				if !failing { // once per spell, not every second
					r.log.Warn("cannot set up NATS; will retry", "err", err)
				}
				up, failing = false, true
				continue
			}
			failing = false
			reconnects = rc
			r.log.Info("link to other nodes up", "url", r.nc.ConnectedUrlRedacted())
			if everUp {
				r.hub.ResyncHistory()
				r.hub.Notice(NoticeRestored)
			}
			up, everUp = true, true
		case !connected && up:
			up = false
			r.linkLost()
		}
	}
}

func (r *Relay) linkLost() {
	r.log.Warn("link to other nodes lost")
	r.store.Store(nil)
	r.names.stopWatch()
	r.names.forgetRemote() // who is out there is unknown until the link is back
	r.hub.Notice(NoticeLost)
}

// setup makes (or finds) the history stream and the names bucket, starts
// watching the bucket and claims this node's names again: after a NATS
// restart they may be gone, and names taken while the link was down were
// never claimed.
func (r *Relay) setup(ctx context.Context) error {
	stream, err := r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              r.streamName(),
		Description:       "chatbridge: the last lines of each room",
		Subjects:          []string{r.lineSubject("*")},
		MaxMsgsPerSubject: int64(r.cfg.History),
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("stream %s on %s: %w", r.streamName(), r.cfg.URL, err)
	}
	kv, err := r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      r.bucketName(),
		Description: "chatbridge: who is called what, on which node, in which room",
		TTL:         r.cfg.PresenceTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("bucket %s on %s: %w", r.bucketName(), r.cfg.URL, err)
	}
	if err := r.names.startWatch(ctx, kv); err != nil {
		return err
	}
	r.store.Store(&store{history: stream, kv: kv})
	r.names.refreshAll()
	return nil
}

// current returns the JetStream handles, or errLinkDown.
func (r *Relay) current() (*store, error) {
	s := r.store.Load()
	if s == nil || r.nc == nil || !r.nc.IsConnected() {
		return nil, errLinkDown
	}
	return s, nil
}

var _ tcpserver.Cluster = (*Relay)(nil)
