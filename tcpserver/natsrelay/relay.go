package natsrelay

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
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

// MinSecret is the shortest cluster secret a relay takes, in bytes.
const MinSecret = 16

// Config is how a relay reaches NATS and names what it keeps there. The
// zero value of a field means its default.
type Config struct {
	// URL is the NATS server, e.g. nats://127.0.0.1:4222, or several,
	// comma-separated, to reconnect to whichever is up; tls://host:port
	// for TLS; user and password may be in it (nats://user:pass@host).
	// Required but with InProcess.
	URL string
	// InProcess is a NATS server in this process (see [Embedded]), which
	// the relay reaches in memory instead of through URL.
	InProcess nats.InProcessConnProvider
	// Alone says no other node shares this NATS (an embedded server
	// with no listener: a cluster of one): names are not claimed in the
	// bucket (the hub checks its own members) and only lines are
	// published, for the stream. History and state are as in a cluster.
	Alone    bool
	Prefix   string // of every subject, stream and bucket; "chatbridge"
	NodeID   string // this node's name on NATS; random if empty
	History  int    // lines a joining member is replayed (the hub's History); 20
	Required bool   // Start fails if NATS cannot be reached now

	// HistoryKeep is how many lines the stream keeps per room (its
	// per-subject limit), for scrollback: 10,000, and never fewer than
	// History. HistoryAge, if not 0, is how long it keeps a line.
	HistoryKeep int
	HistoryAge  time.Duration
	// Replicas is how many NATS servers keep the stream and every
	// bucket: 1, or up to 5 on a NATS cluster (3 survives losing one).
	Replicas int
	// IndexLines bounds the lines the relay indexes for scrollback, all
	// rooms together, 28 bytes each: 4,000,000 (112 MB).
	IndexLines int

	// Secret is the cluster secret, the same on every node, at least
	// MinSecret bytes: every message between nodes is sealed with a MAC
	// keyed from it, and the text of private messages encrypted. Required
	// unless Insecure.
	Secret []byte
	// Insecure runs without a secret: messages are sealed with a key
	// anyone can make, so that any client of NATS can speak as a node.
	// Only for a NATS nothing but the nodes can reach.
	Insecure bool

	Creds  string // NATS credentials file (.creds: a user JWT and its NKey seed), if NATS wants one
	CAFile string // PEM file of the CAs that signed NATS's certificate, for tls:// URLs; else the system's

	// MaxLine is the hub's MaxLine: no longer text is taken from NATS
	// (see fitsLine), and the history stream keeps no bigger message.
	// 4096.
	MaxLine int
	// MaxMembers bounds the members of one other node this node shows in
	// presence, so that a runaway node cannot fill it. 20000.
	MaxMembers int
	// Window is how far from this node's clock the time of a message may
	// be for it to be believed: messages are not believed twice, nor
	// ever after this long, so a captured one cannot be replayed. It
	// must allow for the nodes' clocks to differ, and be at least
	// PresenceTTL. 60s.
	Window time.Duration

	// PresenceTTL bounds how long the members of a node that died stay in
	// presence (and keep their names): each node writes a heartbeat every
	// PresenceTTL/3, and the others take a node whose heartbeat is older
	// than PresenceTTL for dead. 15s.
	PresenceTTL time.Duration
	// NameAge is how long the names bucket keeps an entry its node has
	// not written again: each node writes its entries again, spread out,
	// every NameAge/3. At least PresenceTTL. 30m.
	NameAge time.Duration

	HistoryBytes int64 // the history stream's size limit; the oldest lines go first. 1 GiB
	NamesBytes   int64 // the names bucket's size limit; 64 MiB

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
	if c.HistoryKeep == 0 {
		c.HistoryKeep = 10000
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.IndexLines == 0 {
		c.IndexLines = 4_000_000
	}
	if c.MaxLine == 0 {
		c.MaxLine = 4096
	}
	if c.MaxMembers == 0 {
		c.MaxMembers = 20000
	}
	if c.Window == 0 {
		c.Window = 60 * time.Second
	}
	if c.PresenceTTL == 0 {
		c.PresenceTTL = 15 * time.Second
	}
	if c.NameAge == 0 {
		c.NameAge = 30 * time.Minute
	}
	if c.HistoryBytes == 0 {
		c.HistoryBytes = 1 << 30
	}
	if c.NamesBytes == 0 {
		c.NamesBytes = 64 << 20
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
	cfg   Config
	log   *slog.Logger
	where string // cfg.URL without passwords, for logs and errors

	seal   *sealer
	sess   string      // this run's session, for the other nodes' replay guards
	nonces *nonceCache // private messages already delivered

	queue      chan *tcpserver.Event // for the publisher
	dropped    atomic.Uint64         // events the queue had no room for, or NATS refused
	offline    atomic.Uint64         // events not relayed because the link was down
	unverified atomic.Uint64         // messages from NATS without a valid MAC
	replayed   atomic.Uint64         // sealed messages seen before, or too old to believe
	bad        atomic.Uint64         // sealed messages malformed or over a limit

	// At most one line per logEvery about what the relay ignores, and
	// about NATS's errors: whoever can publish on NATS can cause either.
	ignoreLog, errLog rateLimit

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

	// The JetStream handles, set by the first setup and each after; used
	// only while connected (see current).
	store atomic.Pointer[store]

	names names

	relaying bool        // Start: the relay publishes the hub's events, lines too
	index    lineIndex   // of the rooms' lines in the stream, for scrollback
	noBatch  atomic.Bool // the server answers direct gets one line at a time
	state    stateBuckets
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
	if cfg.URL == "" && cfg.InProcess == nil {
		return nil, errors.New("nats relay: no URL")
	}
	if !validNodeID(cfg.Prefix) {
		return nil, fmt.Errorf("nats relay: prefix %q: use letters, digits, - or _", cfg.Prefix)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "n" + randomHex(6)
	}
	if !validNodeID(cfg.NodeID) {
		return nil, fmt.Errorf("nats relay: node ID %q: use letters, digits, - or _", cfg.NodeID)
	}
	switch {
	case cfg.Insecure && len(cfg.Secret) > 0:
		return nil, errors.New("nats relay: a cluster secret, and insecure too")
	case !cfg.Insecure && len(cfg.Secret) < MinSecret:
		return nil, fmt.Errorf("nats relay: the cluster secret must be at least %d bytes", MinSecret)
	}
	if cfg.History < 1 {
		cfg.History = 1 // the stream needs a limit; the hub then replays none
	}
	switch {
	case cfg.HistoryKeep < 1:
		return nil, fmt.Errorf("nats relay: history keep %d: want at least 1", cfg.HistoryKeep)
	case cfg.HistoryAge < 0 || cfg.HistoryAge > 0 && cfg.HistoryAge < time.Second:
		return nil, fmt.Errorf("nats relay: history age %v: want 0 (no limit) or at least 1s", cfg.HistoryAge)
	case cfg.Replicas < 1 || cfg.Replicas > 5:
		return nil, fmt.Errorf("nats relay: %d replicas: want 1 to 5", cfg.Replicas)
	}
	cfg.HistoryKeep = max(cfg.HistoryKeep, cfg.History)
	if cfg.Window < cfg.PresenceTTL {
		return nil, fmt.Errorf("nats relay: window %v shorter than the presence TTL %v", cfg.Window, cfg.PresenceTTL)
	}
	if cfg.NameAge < cfg.PresenceTTL {
		return nil, fmt.Errorf("nats relay: name age %v shorter than the presence TTL %v", cfg.NameAge, cfg.PresenceTTL)
	}
	if err := checkCreds(cfg.Creds); err != nil {
		return nil, err
	}
	if err := checkCA(cfg.CAFile); err != nil {
		return nil, err
	}
	seal, err := newSealer(cfg.Secret, cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("nats relay: %w", err)
	}
	r := &Relay{
		cfg:       cfg,
		log:       log.With("node", cfg.NodeID),
		where:     cmp.Or(RedactURL(cfg.URL), "the embedded NATS"),
		seal:      seal,
		sess:      randomHex(8),
		nonces:    newNonceCache(cfg.Window),
		queue:     make(chan *tcpserver.Event, cfg.Queue),
		poke:      make(chan struct{}, 1),
		ignoreLog: rateLimit{every: logEvery},
		errLog:    rateLimit{every: logEvery},
		index:     lineIndex{max: cfg.IndexLines},
	}
	r.names.init(r)
	return r, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// checkCreds reads a credentials file as NATS will, so that a bad one
// stops the start instead of every connection attempt.
func checkCreds(file string) error {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("nats relay: credentials: %w", err)
	}
	if jwt, err := nkeys.ParseDecoratedJWT(b); err != nil || strings.Count(jwt, ".") != 2 || strings.ContainsAny(jwt, " \n") {
		return fmt.Errorf("nats relay: credentials %s: no user JWT in it", file)
	}
	if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
		return fmt.Errorf("nats relay: credentials %s: %w", file, err)
	}
	return nil
}

// checkCA reads a file of CA certificates as NATS will.
func checkCA(file string) error {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("nats relay: CA: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("nats relay: CA %s: no PEM certificate in it", file)
	}
	return nil
}

// RedactURL returns a NATS URL, or comma-separated URLs, with the
// passwords and tokens in them replaced, for logs and errors.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		switch {
		case err != nil:
			if strings.Contains(p, "@") {
				p = "(a URL that does not parse)"
			}
		case u.User != nil:
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "redacted")
			} else {
				u.User = url.User("redacted") // a token
			}
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// NodeID returns this node's name on NATS.
func (r *Relay) NodeID() string { return r.cfg.NodeID }

// Collector returns the relay's counters as Prometheus metrics, read when
// scraped: chatbridge_relay_dropped_total, chatbridge_relay_offline_total,
// chatbridge_relay_unverified_total, chatbridge_relay_replayed_total,
// chatbridge_relay_unreadable_total and chatbridge_relay_link_up.
func (r *Relay) Collector() prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatbridge_relay_" + name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	return relayCollectors{
		counter("dropped_total", "Events for other nodes dropped: the relay's queue was full, or NATS refused them.", &r.dropped),
		counter("offline_total", "Events kept on this node because the link to the others was down.", &r.offline),
		counter("unverified_total", "Messages from NATS without a valid MAC (not made by a node with the cluster secret), ignored.", &r.unverified),
		counter("replayed_total", "Messages from NATS with a valid MAC, seen before or too old to believe, ignored.", &r.replayed),
		counter("unreadable_total", "Messages from NATS with a valid MAC but malformed or over a limit, ignored.", &r.bad),
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
// bounds the start only. With hub nil the relay is a [tcpserver.Store]
// alone (see Append): it relays nothing and hears nothing of other nodes.
func (r *Relay) Start(ctx context.Context, hub *tcpserver.Hub) error {
	r.hub = hub
	r.relaying = hub != nil
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
		// A node has no use for its own messages back: they would only
		// cost a MAC check each to be thrown away.
		nats.NoEcho(),
		nats.ConnectHandler(func(*nats.Conn) { poke() }),
		nats.ReconnectHandler(func(*nats.Conn) { poke() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { poke() }),
		nats.ClosedHandler(func(*nats.Conn) { close(r.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			// A flood on a room subject makes a slow consumer, again
			// and again.
			if held, ok := r.errLog.allow(time.Now()); ok {
				r.log.Warn("nats error", "err", err, "held_back", held)
			}
		}),
	}
	if !r.cfg.Required {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	if r.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(r.cfg.Creds))
	}
	if r.cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(r.cfg.CAFile))
	}
	if r.cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(r.cfg.InProcess))
	}
	nc, err := nats.Connect(r.cfg.URL, opts...)
	if err != nil {
		r.cancel()
		return fmt.Errorf("connect to NATS at %s: %w", r.where, err)
	}
	r.nc = nc
	if r.js, err = jetstream.New(nc); err != nil {
		r.shutdown()
		return fmt.Errorf("jetstream on %s: %w", r.where, err)
	}
	// With Required the link is set up now, as of setupAt reconnects;
	// the link loop need not set it up again.
	var setupAt uint64
	if r.cfg.Required {
		if err := r.setup(ctx); err != nil {
			r.shutdown()
			return err
		}
		setupAt = nc.Stats().Reconnects
		r.log.Info("link to other nodes up", "url", r.connectedURL())
	}
	if hub != nil {
		incoming := make(chan *nats.Msg, incomingQueue)
		if _, err := nc.ChanSubscribe(r.cfg.Prefix+".room.>", incoming); err != nil {
			r.shutdown()
			return fmt.Errorf("subscribe to %s.room.>: %w", r.cfg.Prefix, err)
		}
		if _, err := nc.Subscribe(r.privateSubject(r.cfg.NodeID), r.onPrivate); err != nil {
			r.shutdown()
			return fmt.Errorf("subscribe to %s: %w", r.privateSubject(r.cfg.NodeID), err)
		}
		r.wg.Go(func() { r.deliverLoop(incoming) })
	}
	poke()
	r.wg.Go(r.publishLoop)
	r.wg.Go(func() { r.linkLoop(r.cfg.Required, setupAt) })
	r.wg.Go(r.names.writeLoop)
	if !r.cfg.Alone { // nobody else to tell
		r.wg.Go(r.names.beatLoop)
	}
	if !nc.IsConnected() {
		r.log.Warn("NATS not reachable; this node works alone until it is", "url", r.where)
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
	r.log.Info("relay stopped", "dropped", r.dropped.Load(), "offline", r.offline.Load(),
		"unverified", r.unverified.Load(), "replayed", r.replayed.Load(), "unreadable", r.bad.Load())
}

// Publish queues a local room event for the other nodes. It never blocks:
// an event the queue has no room for is dropped and counted.
func (r *Relay) Publish(ev *tcpserver.Event) {
	switch ev.Kind {
	case tcpserver.KindMessage, tcpserver.KindAction:
	case tcpserver.KindJoin, tcpserver.KindLeave, tcpserver.KindNick:
		if r.cfg.Alone {
			return // nobody to tell
		}
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
// leave in the order the hub made them, numbered in that order.
func (r *Relay) publishLoop() {
	p := publisher{r: r, mac: r.seal.newHash()}
	for {
		select {
		case ev := <-r.queue:
			p.publish(ev)
		case <-r.ctx.Done():
			for {
				select {
				case ev := <-r.queue:
					p.publish(ev)
				default:
					return
				}
			}
		}
	}
}

// publisher is publishLoop's state.
type publisher struct {
	r   *Relay
	mac hash.Hash
	seq uint64 // of the last event published in this session
}

func (p *publisher) publish(ev *tcpserver.Event) {
	r := p.r
	switch ev.Kind {
	case tcpserver.KindJoin:
		r.names.moved(ev.From, ev.Room)
	case tcpserver.KindNick:
		r.names.moved(ev.To, ev.Room)
	}
	if !r.nc.IsConnected() {
		r.offline.Add(1)
		return
	}
	at := ev.Time
	if at.IsZero() { // the hub stamps every event; a test's may not be
		at = time.Now()
	}
	p.seq++
	b, err := encodeEvent(r.cfg.NodeID, origin{sess: r.sess, seq: p.seq}, ev, at)
	if err != nil {
		r.drop(err.Error())
		return
	}
	subject := r.eventSubject(ev.Room)
	if ev.Kind == tcpserver.KindMessage || ev.Kind == tcpserver.KindAction {
		subject = r.lineSubject(ev.Room)
	}
	if err := r.nc.Publish(subject, r.seal.seal(p.mac, purposeEvent, subject, b)); err != nil {
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
// does for lines said on this node, however fast they come. It checks
// each message once, whatever the number of members it then reaches.
func (r *Relay) deliverLoop(incoming <-chan *nats.Msg) {
	mac := r.seal.newHash()
	guard := newReplayGuard(r.cfg.Window)
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
		now := time.Now()
		for m != nil {
			if ev := r.receiveRoomEvent(m, mac, guard, now); ev != nil {
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

// receiveRoomEvent returns another node's room event, or nil for anything
// else, which it counts and may log: a message without a valid MAC, one
// seen before or too old, one on the wrong subject, garbage.
func (r *Relay) receiveRoomEvent(m *nats.Msg, mac hash.Hash, guard *replayGuard, now time.Time) *tcpserver.Event {
	ev, o, why, err := r.readRoomEvent(m.Subject, m.Data, mac)
	if err != nil {
		r.ignore(why, m.Subject, err)
		return nil
	}
	if ev.Node == r.cfg.NodeID {
		// NATS does not echo our own (NoEcho): someone sent it again.
		r.ignore(ignoredReplayed, m.Subject, errors.New("this node's own event"))
		return nil
	}
	if !guard.fresh(ev.Node, o.sess, o.seq, ev.Time.UnixNano(), now) {
		r.ignore(ignoredReplayed, m.Subject, fmt.Errorf("event %d of %s (session %s) seen before, or made at %v", o.seq, ev.Node, o.sess, ev.Time))
		return nil
	}
	return ev
}

// readRoomEvent opens and decodes a room event sealed for subject. It is
// how live events and the history stream's lines are read.
func (r *Relay) readRoomEvent(subject string, data []byte, mac hash.Hash) (*tcpserver.Event, origin, ignored, error) {
	if len(data) > lineMessageMax(r.cfg.MaxLine) {
		return nil, origin{}, ignoredUnverified, fmt.Errorf("%d bytes, more than a sealed line", len(data))
	}
	payload, err := r.seal.open(mac, purposeEvent, subject, data)
	if err != nil {
		return nil, origin{}, ignoredUnverified, err
	}
	ev, o, err := decodeEvent(payload, r.cfg.MaxLine)
	if err != nil {
		return nil, origin{}, ignoredBad, err
	}
	want := r.eventSubject(ev.Room)
	if ev.Kind == tcpserver.KindMessage || ev.Kind == tcpserver.KindAction {
		want = r.lineSubject(ev.Room)
	}
	if subject != want {
		return nil, origin{}, ignoredBad, fmt.Errorf("%w: %s event on %s", errBadMessage, ev.Kind, subject)
	}
	return ev, o, 0, nil
}

// Why the relay ignored a message from NATS.
type ignored int

const (
	ignoredUnverified ignored = iota // no valid MAC
	ignoredReplayed                  // seen before, or too old (or new) to believe
	ignoredBad                       // sealed, but malformed or over a limit
)

func (w ignored) String() string {
	switch w {
	case ignoredUnverified:
		return "no valid MAC"
	case ignoredReplayed:
		return "replayed or stale"
	default:
		return "malformed or over a limit"
	}
}

// logEvery is how often the relay may log about what it ignores.
const logEvery = 5 * time.Second

// ignore counts a message from NATS the relay ignored, and logs it if it
// may: at most one line per logEvery, with how many were not logged.
func (r *Relay) ignore(why ignored, subject string, err error) {
	switch why {
	case ignoredUnverified:
		r.unverified.Add(1)
	case ignoredReplayed:
		r.replayed.Add(1)
	default:
		r.bad.Add(1)
	}
	if held, ok := r.ignoreLog.allow(time.Now()); ok {
		r.log.Warn("message from NATS ignored", "why", why.String(), "subject", clip(subject), "err", clip(err.Error()),
			"held_back", held, "unverified", r.unverified.Load(), "replayed", r.replayed.Load(), "unreadable", r.bad.Load())
	}
}

// clip shortens what a stranger may have written, for the log.
func clip(s string) string {
	const max = 120
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// rateLimit lets something happen at most once per every.
type rateLimit struct {
	every time.Duration

	mu   sync.Mutex
	next time.Time
	held int // times it was not allowed since it last was
}

// allow reports whether it may happen at now, and if so how many times it
// was held back since it last did.
func (l *rateLimit) allow(now time.Time) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return 0, false
	}
	held, l.held, l.next = l.held, 0, now.Add(l.every)
	return held, true
}

// linkLoop follows the link: each time it comes, it sets up the stream,
// the bucket and the names; each time it goes, it tells the members. It
// also forgets dead nodes' members. up says whether the link is up and
// set up already, after reconnects.
func (r *Relay) linkLoop(up bool, reconnects uint64) {
	everUp, failing := up, false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sweep := time.NewTicker(min(time.Second, r.cfg.PresenceTTL/4))
	defer sweep.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.poke:
		case <-tick.C:
		case <-sweep.C:
			if up && r.hub != nil {
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
			r.log.Info("link to other nodes up", "url", r.connectedURL())
			if everUp && r.hub != nil {
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
	// The stream's and the bucket's handles stay: once reconnected, to
	// another server of a NATS cluster, direct gets are answered by any
	// replica, before the stream has a leader again and setup is done.
	r.index.drop()
	r.state.drop()
	r.names.stopWatch()
	r.names.forgetRemote() // who is out there is unknown until the link is back
	if r.hub != nil {
		r.hub.Notice(NoticeLost)
	}
}

// setup makes (or finds) the history stream and the names bucket, starts
// watching the bucket and claims this node's names again: after a NATS
// restart they may be gone, and names taken while the link was down were
// never claimed.
func (r *Relay) setup(ctx context.Context) error {
	stream, err := retryJS(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return r.js.CreateOrUpdateStream(ctx, r.streamConfig())
	})
	if err != nil {
		return fmt.Errorf("stream %s on %s: %w", r.streamName(), r.where, err)
	}
	kv, err := retryJS(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       r.bucketName(),
			Description:  "chatbridge: who is called what, on which node, in which room",
			TTL:          r.cfg.NameAge,
			MaxValueSize: maxEntry,
			MaxBytes:     r.cfg.NamesBytes,
			Storage:      jetstream.FileStorage,
			Replicas:     r.cfg.Replicas,
		})
	})
	if err != nil {
		return fmt.Errorf("bucket %s on %s: %w", r.bucketName(), r.where, err)
	}
	if err := r.names.startWatch(ctx, kv); err != nil {
		return err
	}
	if !r.cfg.Alone {
		if err := r.names.beat(ctx, kv); err != nil {
			return err
		}
	}
	r.store.Store(&store{history: stream, kv: kv})
	r.names.refreshAll()
	return nil
}

// jsAttempt bounds one attempt to make a stream or a bucket. A NATS
// cluster that is asked by two nodes at once to make the same replicated
// stream may never answer one of them (seen with 2.9 and 2.15, nodes
// started together): that one asks again, and finds it made.
const jsAttempt = 3 * time.Second

// retryJS calls f, each time within jsAttempt, until it succeeds or ctx
// ends.
func retryJS[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, jsAttempt)
		v, err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return v, err
		}
	}
}

// streamConfig is the history stream as this node wants it.
func (r *Relay) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              r.streamName(),
		Description:       "chatbridge: the last lines of each room",
		Subjects:          []string{r.lineSubject("*")},
		MaxMsgsPerSubject: int64(r.cfg.HistoryKeep),
		MaxAge:            r.cfg.HistoryAge,
		Replicas:          r.cfg.Replicas,
		// Read with direct gets, by any replica, without a consumer
		// (see direct.go).
		AllowDirect: true,
		// Whoever can publish on a room's subject can put a message in
		// the stream: these bound what it costs (the nodes ignore what
		// is not sealed).
		MaxMsgSize: int32(lineMessageMax(r.cfg.MaxLine)),
		MaxBytes:   r.cfg.HistoryBytes,
		Discard:    jetstream.DiscardOld,
		Storage:    jetstream.FileStorage,
		// Nodes publish no message IDs: nothing to deduplicate. The
		// default window (2 min) made a restarting server read every
		// line of the last two minutes back (5 s for ten million).
		Duplicates: minDuplicates,
	}
}

// minDuplicates is the shortest duplicate window JetStream takes; the
// history's age limit, if any, must be no shorter.
const minDuplicates = 100 * time.Millisecond

// connectedURL is the server the relay is connected to, for the log.
func (r *Relay) connectedURL() string {
	if r.cfg.InProcess != nil {
		return r.where
	}
	return r.nc.ConnectedUrlRedacted()
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
