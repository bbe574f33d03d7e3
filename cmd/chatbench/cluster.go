package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clusterConfig is one `chatbench cluster` run: it starts NATS, the nodes
// and the load processes itself, on loopback, and measures a room held by
// all of them (see README, "Running several nodes").
type clusterConfig struct {
	chatbridge, natsServer string
	nodes                  int     // nodes that hold members
	spare                  int     // nodes that hold none at the start; -1: one with kill, else none
	members                int     // per node
	headroom               float64 // the nodes' --max-clients above their members, in percent
	procs                  int     // load processes
	natsServers            int
	replicas               int // --nats-replicas for the nodes; 0: as many as NATS servers, if the nodes have the flag
	rate                   float64
	duration               time.Duration
	settle, drain          time.Duration
	kill                   bool
	killWait               time.Duration
	single                 bool
	connectRate            float64
	parallel               int
	perSource              int
	connectTimeout         time.Duration
	progress               time.Duration
	loadErr                io.Writer // where load processes' stderr goes
}

// clusterSecret is what the run's nodes share: loopback only, made for the
// run (the nodes refuse to start on NATS without one).
const clusterSecret = "chatbench cluster run: a secret for loopback only"

// nodeFlags turn off every limit meant for people (README, Performance);
// --max-clients is each run's (see clusterConfig.maxClients).
var nodeFlags = []string{"--rate", "0", "--max-per-ip", "0", "--connect-rate", "0",
	"--room-rate", "0", "--room-bytes", "0", "--log-format", "json", "--log-level", "info"}

// maxClients is every node's --max-clients: its members, its sender, and
// --headroom percent more (at least 8, for the run's own questions to
// /metrics). A node that holds that many refuses the next connection as
// "server full", as a node in service does, rather than running out of
// file descriptors; the members it refuses go on to another node.
func (c *clusterConfig) maxClients() int {
	return c.members + 1 + max(int(math.Ceil(float64(c.members)*c.headroom/100)), 8)
}

func newClusterFlags(out io.Writer) (*flag.FlagSet, *clusterConfig, *flagValues, *bool) {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(out)
	c := &clusterConfig{}
	v := &flagValues{}
	load := new(bool)
	fs.DurationVar(&v.timeout, "timeout", 0, "hard limit for the whole run (0 = planned length + 5m)")
	fs.BoolVar(&v.json, "json", false, "print one JSON object instead of the tables")
	fs.BoolVar(&v.quiet, "quiet", false, "no progress lines on stderr (warnings still show)")
	fs.BoolVar(&v.verbose, "verbose", false, "debug logging on stderr")
	fs.StringVar(&c.chatbridge, "chatbridge", "", "the chatbridge `binary` (default: beside chatbench, or on PATH)")
	fs.StringVar(&c.natsServer, "nats-server", "", "the nats-server `binary` (default: on PATH)")
	fs.IntVar(&c.nodes, "nodes", 5, "chatbridge nodes joined through NATS that hold --members members each")
	fs.IntVar(&c.spare, "spare", -1, "more nodes in the cluster that hold no members at the start, where the killed node's members can go (default 1 with --kill, 0 without)")
	fs.Float64Var(&c.headroom, "headroom", 2.5, "every node's --max-clients is --members plus this `percent` (at least 8 more): past it the node refuses as full")
	fs.IntVar(&c.members, "members", 19000, "room members per node, half TCP, half WebSocket")
	fs.IntVar(&c.procs, "procs", 0, "load processes holding the members (0 = one per node)")
	fs.IntVar(&c.natsServers, "nats-servers", 1, "NATS servers: 1, or 3 joined by routes")
	fs.IntVar(&c.replicas, "nats-replicas", 0, "the nodes' --nats-replicas (0 = as many as --nats-servers, if the nodes have the flag)")
	fs.Float64Var(&c.rate, "rate", 1, "lines per second in all, from a sender on each node in turn")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long the room chats, in each phase")
	fs.DurationVar(&c.settle, "settle", 10*time.Second, "quiet time after every member is in, before measuring memory and chatting")
	fs.DurationVar(&c.drain, "drain", 20*time.Second, "how long to wait after the last line for every member to have it")
	fs.BoolVar(&c.kill, "kill", true, "then SIGKILL a node and follow its members back")
	fs.DurationVar(&c.killWait, "kill-wait", 60*time.Second, "how long to wait for the killed node's members to be back and its presence gone")
	fs.BoolVar(&c.single, "single", true, "then the same load on one node alone with --members members")
	fs.Float64Var(&c.connectRate, "connect-rate", 0, "member connections started per second in all (0 = unlimited)")
	fs.IntVar(&c.parallel, "dial-parallel", 64, "connection attempts in flight at once, in all")
	fs.IntVar(&c.perSource, "per-source", 0, "members per source address before 127.0.0.2, 127.0.0.3, ... (0 = 90% of the ephemeral port range)")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "limit for one connection attempt, handshake included")
	fs.BoolVar(load, "load", false, "internal: run as a load process")
	fs.Usage = func() { printUsage(fs, out, "cluster") }
	return fs, c, v, load
}

// check validates the flags.
func (c *clusterConfig) check() error {
	switch {
	case c.nodes < 1 || c.nodes > 64:
		return usageErr("--nodes %d: want 1..64", c.nodes)
	case c.members < 2 || c.members > 1_000_000:
		return usageErr("--members %d: want 2..1000000", c.members)
	case c.procs < 0 || c.procs > 256:
		return usageErr("--procs %d: want 0..256", c.procs)
	case c.natsServers != 1 && c.natsServers != 3:
		return usageErr("--nats-servers %d: want 1 or 3", c.natsServers)
	case c.replicas < 0 || c.replicas > 5:
		return usageErr("--nats-replicas %d: want 0..5", c.replicas)
	case c.rate <= 0 || c.rate > 1000:
		return usageErr("--rate %g: want more than 0, at most 1000", c.rate)
	case c.duration <= 0 || c.settle < 0 || c.drain < 0 || c.killWait <= 0:
		return usageErr("--duration and --kill-wait must be positive, --settle and --drain not negative")
	case c.kill && c.nodes < 2:
		return usageErr("--kill needs at least 2 nodes (or --kill=false)")
	case c.spare < -1 || c.spare > 16:
		return usageErr("--spare %d: want 0..16", c.spare)
	case !(c.headroom >= 0 && c.headroom <= 100): // NaN too
		return usageErr("--headroom %g: want a percentage, 0..100", c.headroom)
	case c.connectRate < 0 || c.parallel < 1 || c.perSource < 0 || c.connectTimeout <= 0:
		return usageErr("--connect-rate and --per-source must not be negative, --dial-parallel at least 1, --connect-timeout positive")
	}
	if c.procs == 0 {
		c.procs = c.nodes
	}
	if c.spare == -1 {
		c.spare = 0
		if c.kill {
			c.spare = 1
		}
	}
	if c.nodes+c.spare > 64 {
		return usageErr("--spare %d: %d nodes in all, want at most 64", c.spare, c.nodes+c.spare)
	}
	if c.procs > c.nodes*c.members {
		return usageErr("--procs %d: more than the %d members", c.procs, c.nodes*c.members)
	}
	return nil
}

// plannedLength bounds the run for --timeout: connecting is not known in
// advance, so five minutes are added to what the phases wait.
func (c *clusterConfig) plannedLength() time.Duration {
	phase := c.settle + c.duration + c.drain
	d := phase
	if c.kill {
		d += c.killWait + c.drain
	}
	if c.single {
		d += phase
	}
	return d + 5*time.Minute
}

// runClusterCmd is `chatbench cluster`.
func runClusterCmd(ctx context.Context, args []string, std stdio) int {
	fs, cfg, v, load := newClusterFlags(std.err)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(std.err, "chatbench cluster: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	log := newLogger(std.err, v)
	if *load {
		// net/http logs, on the standard logger, each "server full" 503
		// a node sends before the WebSocket handshake's request is out
		// ("Unsolicited response received on idle HTTP channel"): the
		// load counts those refusals itself, and hundreds of such lines
		// buried the run's own. This process is a load process alone.
		stdlog.SetOutput(io.Discard)
		raiseFileLimit()
		if err := runLoad(ctx, std.in, std.out, log); err != nil {
			return fail(ctx, std, "cluster", err)
		}
		return exitOK
	}
	if err := cfg.check(); err != nil {
		return fail(ctx, std, "cluster", err)
	}
	if v.timeout == 0 {
		v.timeout = cfg.plannedLength()
	}
	ctx, cancel, err := withTimeout(ctx, "cluster", v, std)
	if err != nil {
		fmt.Fprintf(std.err, "chatbench cluster: %v\n", err)
		return exitUsage
	}
	defer cancel()
	if !v.quiet {
		cfg.progress = 2 * time.Second
	}
	cfg.loadErr = std.err
	rep, err := runCluster(ctx, *cfg, log)
	if err != nil {
		return fail(ctx, std, "cluster", err)
	}
	if v.json {
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(ctx, std, "cluster", err)
		}
		return exitOK
	}
	rep.writeTables(std.out)
	return exitOK
}

// clusterReport is what a cluster run measured. The JSON names are for
// scripts and the test.
type clusterReport struct {
	Nodes          int         `json:"nodes"`  // nodes that hold members
	Spares         int         `json:"spares"` // nodes after them that hold none at the start
	MembersPerNode int         `json:"members_per_node"`
	MaxClients     int         `json:"max_clients"` // every node's --max-clients
	LoadProcs      int         `json:"load_procs"`
	NATSServers    int         `json:"nats_servers"`
	Replicas       int         `json:"nats_replicas"` // 0: the nodes' default
	Note           string      `json:"note,omitempty"`
	Rate           float64     `json:"rate"`
	LoadAvg        string      `json:"load_avg"`
	Cluster        *runReport  `json:"cluster"`
	Kill           *killReport `json:"kill,omitempty"`
	Single         *runReport  `json:"single,omitempty"`
}

// runReport is one set of nodes: the room held, and chatting.
type runReport struct {
	Hold holdReport  `json:"hold"`
	Chat phaseReport `json:"chat"`
}

type holdReport struct {
	Members       int       `json:"members"` // asked for
	Connected     int       `json:"connected"`
	ConnectErrors int       `json:"connect_errors"`
	FirstErr      string    `json:"first_error,omitempty"`
	Held          int       `json:"held"` // connected after --settle
	ConnectS      float64   `json:"connect_s"`
	ConnectPerSec float64   `json:"connect_per_sec"`
	NodeMembers   []int     `json:"node_members"`
	NodeRSSBefore []int64   `json:"node_rss_before_kib"`
	NodeRSSAfter  []int64   `json:"node_rss_after_kib"`
	KiBPerMember  []float64 `json:"kib_per_member"`
	NATSRSS       []int64   `json:"nats_rss_kib"`
	LoadRSS       int64     `json:"load_rss_kib"`
	// What each node's /rooms said of the room after the settle, and how
	// many members of other nodes it had forgotten as lost by then (none
	// is lost: an entry not refreshed in time is forgotten all the same).
	RoomShown []int64 `json:"room_shown"`
	Forgot    []int   `json:"forgot"`
}

type phaseReport struct {
	Lines            int64     `json:"lines"`
	Receivers        int       `json:"receivers"` // members that stayed
	Deliveries       int64     `json:"deliveries"`
	DurationS        float64   `json:"duration_s"`
	DeliveriesPerSec float64   `json:"deliveries_per_sec"`
	P50us            float64   `json:"p50_us"`
	P99us            float64   `json:"p99_us"`
	P999us           float64   `json:"p999_us"`
	Maxus            float64   `json:"max_us"`
	Lost             int64     `json:"lost"`
	Duplicated       int64     `json:"duplicated"`
	Reordered        int64     `json:"reordered"`
	Drained          bool      `json:"drained"`
	NodeCPU          []float64 `json:"node_cpu_s"`
	NodeDeliveries   []int64   `json:"node_deliveries"`
	NodeUsPerDeliv   []float64 `json:"node_us_per_delivery"`
	NATS             bool      `json:"nats"`     // the nodes were joined through NATS
	SlowCut          int64     `json:"slow_cut"` // members the nodes cut off as too slow meanwhile
	NATSCPU          float64   `json:"nats_cpu_s"`
	LoadCPU          float64   `json:"load_cpu_s"`
}

// nodeCounters are a node's counters from its /metrics that say it
// refused or cut off a member, and its members now.
type nodeCounters struct {
	Rejected int64 `json:"rejected"` // chatbridge_connections_rejected_total
	SlowCut  int64 `json:"slow_cut"` // chatbridge_slow_consumer_disconnects_total
	Clients  int64 `json:"-"`        // chatbridge_clients, every transport
}

// connectProgress logs how many members the nodes have, every interval,
// while the load processes connect, until stop is called.
func connectProgress(ctx context.Context, srv []*serverProc, total int, interval time.Duration, log *slog.Logger) (stop func()) {
	return every(ctx, interval, func() {
		var in int64
		for _, c := range countersOf(srv) {
			in += c.Clients
		}
		log.Info("connecting", "members_in", in, "of", total)
	})
}

// scrapeCounters reads a node's counters; zero if it cannot be asked.
func scrapeCounters(httpAddr string) nodeCounters {
	var c nodeCounters
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return c
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		if strings.HasPrefix(name, "chatbridge_clients{") {
			c.Clients += int64(v)
			continue
		}
		switch name {
		case "chatbridge_connections_rejected_total":
			c.Rejected = int64(v)
		case "chatbridge_slow_consumer_disconnects_total":
			c.SlowCut = int64(v)
		}
	}
	return c
}

// countersOf scrapes every node that is still there.
func countersOf(srv []*serverProc) []nodeCounters {
	out := make([]nodeCounters, len(srv))
	for i, p := range srv {
		select {
		case <-p.done:
			continue
		default:
		}
		p.mu.Lock()
		addr := p.http
		p.mu.Unlock()
		out[i] = scrapeCounters(addr)
	}
	return out
}

type killReport struct {
	Node        int       `json:"node"`
	Members     int       `json:"members"`          // the load processes held on the killed node
	Forgot      []int     `json:"forgot"`           // members the "node lost" lines of each node's log counted
	ForgotS     []float64 `json:"forgot_s"`         // when each node had forgotten every member of the killed node (0: never)
	PresenceS   []float64 `json:"presence_clean_s"` // when each node's room size was right again, every member back (0: never)
	Cut         int       `json:"cut"`
	Rejoined    int       `json:"rejoined"`
	Back        int       `json:"back"`
	RefusedFull int       `json:"refused_full"` // attempts to come back a full node refused: capacity, expected
	RetryErrors int       `json:"retry_errors"` // attempts that failed or were refused otherwise: failures
	// FirstRetryErr is the first of those.
	FirstRetryErr string         `json:"first_retry_error,omitempty"`
	LastRejoinS   float64        `json:"last_rejoin_s"`
	LastBackS     float64        `json:"last_back_s"`
	BackP50S      float64        `json:"back_p50_s"` // when the members that came back were chatting again, after the kill
	BackMaxS      float64        `json:"back_max_s"`
	RejoinLost    int64          `json:"rejoin_lost"` // lines missed by members who came back, once they were
	RejoinDup     int64          `json:"rejoin_duplicated"`
	RejoinReord   int64          `json:"rejoin_reordered"`
	Stayed        int            `json:"stayed"`
	Lines         int64          `json:"lines"`
	Lost          int64          `json:"lost"`
	Duplicated    int64          `json:"duplicated"`
	Reordered     int64          `json:"reordered"`
	P50us         float64        `json:"p50_us"`
	P99us         float64        `json:"p99_us"`
	Drained       bool           `json:"drained"`
	TimedOut      bool           `json:"timed_out"`
	NATSCPU       float64        `json:"nats_cpu_s"`
	NodeCPU       []float64      `json:"node_cpu_s"`
	LoadCPU       float64        `json:"load_cpu_s"`
	DurationS     float64        `json:"duration_s"`
	Counters      []nodeCounters `json:"counters"` // each node's refusals and cuts over the wait and drain
	Shown         []int64        `json:"shown"`    // the room's size each node showed when clean (or last)
	Expected      []int64        `json:"expected"` // the members there were then
}

// runCluster is the whole run: the cluster (held, chatting, a node
// killed), then one node alone.
func runCluster(ctx context.Context, cfg clusterConfig, log *slog.Logger) (*clusterReport, error) {
	var err error
	if cfg.chatbridge, err = findBinary(cfg.chatbridge, "chatbridge"); err != nil {
		return nil, err
	}
	if cfg.natsServer, err = findBinary(cfg.natsServer, "nats-server"); err != nil {
		return nil, err
	}
	// Every node and load process holds up to --members connections; as
	// root the hard limit can be raised for them. Set explicitly, it is
	// what the processes started from here inherit.
	perProc := (cfg.members*cfg.nodes + cfg.procs - 1) / cfg.procs
	if err := setFileLimit(uint64(max(perProc, cfg.maxClients())) + 1024); err != nil {
		log.Warn("could not raise the open-file limit", "err", err)
	}
	if room := cfg.spare*cfg.maxClients() + (cfg.nodes-1)*(cfg.maxClients()-cfg.members-1); cfg.kill && room < cfg.members {
		// Every node holds at most --max-clients (and the open-file
		// limit may hold it to less): the killed node's members need
		// room on the others.
		log.Warn("the survivors and spares cannot take the killed node's members: some will be refused as full until the wait ends (give --spare)",
			"members", cfg.members, "room", room, "max_clients", cfg.maxClients())
	}
	rep := &clusterReport{Nodes: cfg.nodes, Spares: cfg.spare, MembersPerNode: cfg.members, MaxClients: cfg.maxClients(),
		LoadProcs: cfg.procs, NATSServers: cfg.natsServers, Rate: cfg.rate, LoadAvg: loadAvg()}
	var nodeArgs []string
	switch {
	case cfg.replicas > 0:
		nodeArgs = []string{"--nats-replicas", strconv.Itoa(cfg.replicas)}
		rep.Replicas = cfg.replicas
	case hasFlag(cfg.chatbridge, "nats-replicas"):
		nodeArgs = []string{"--nats-replicas", strconv.Itoa(cfg.natsServers)}
		rep.Replicas = cfg.natsServers
	case cfg.natsServers > 1:
		rep.Note = "the nodes have no --nats-replicas: JetStream kept one replica"
	}
	dir, err := os.MkdirTemp("", "chatbench-cluster-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	r := &clusterRun{cfg: cfg, log: log}
	if rep.Cluster, rep.Kill, err = r.measure(ctx, cfg.nodes, cfg.spare, cfg.procs, dir, nodeArgs, cfg.kill); err != nil {
		return nil, fmt.Errorf("cluster of %d: %w", cfg.nodes, err)
	}
	if cfg.single {
		procs := max(1, (cfg.members*cfg.procs+cfg.nodes*cfg.members-1)/(cfg.nodes*cfg.members))
		if rep.Single, _, err = r.measure(ctx, 1, 0, procs, "", nil, false); err != nil {
			return nil, fmt.Errorf("one node: %w", err)
		}
	}
	return rep, nil
}

// clusterRun is the state shared by the phases of a run.
type clusterRun struct {
	cfg clusterConfig
	log *slog.Logger
}

// measure starts NATS (if natsDir is not empty) and the nodes, holders
// that take the members and spares after them that take none, holds the
// room, chats, kills a node if asked, and stops everything.
func (r *clusterRun) measure(ctx context.Context, holders, spares, procs int, natsDir string, nodeArgs []string, kill bool) (*runReport, *killReport, error) {
	cfg := r.cfg
	nodes := holders + spares
	var natsProcs []*serverProc
	defer func() { stopAll(natsProcs) }()
	args := append(slicesClone(nodeFlags), "--max-clients", strconv.Itoa(cfg.maxClients()))
	var env []string
	if natsDir != "" {
		var url string
		var err error
		if natsProcs, url, err = startNATS(ctx, cfg.natsServer, natsDir, cfg.natsServers, r.log); err != nil {
			return nil, nil, err
		}
		args = append(args, "--nats", url, "--nats-required")
		args = append(args, nodeArgs...)
		env = []string{"CHATBRIDGE_CLUSTER_SECRET=" + clusterSecret}
	}
	srv := make([]*serverProc, nodes)
	defer func() { stopAll(srv) }()
	for i := range srv {
		p, err := startProc(fmt.Sprintf("node %d", i), cfg.chatbridge,
			append([]string{"--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"}, args...), env)
		if err != nil {
			return nil, nil, err
		}
		srv[i] = p
	}
	addrs := make([]nodeAddr, nodes)
	for i, p := range srv {
		err := p.waitFor(ctx, 30*time.Second, "listening addresses", func() bool { return p.tcp != "" && p.http != "" })
		if err == nil && natsDir != "" {
			err = p.waitFor(ctx, 60*time.Second, "link to other nodes", func() bool { return p.linkUp })
		}
		if err != nil {
			return nil, nil, err
		}
		addrs[i] = nodeAddr{TCP: p.tcp, WS: "ws://" + p.http + "/ws"}
	}
	r.log.Info("nodes up", "nodes", holders, "spares", spares, "nats", len(natsProcs), "addrs", fmt.Sprint(addrs))

	total := holders * cfg.members
	h := holdReport{Members: total, NodeMembers: make([]int, nodes)}
	for k := range total {
		n, _ := placeOf(k, holders)
		h.NodeMembers[n]++
	}
	for i := range nodes {
		h.NodeMembers[i]++ // its sender (a spare's only watches)
	}
	nodeRSS := func() []int64 {
		out := make([]int64, len(srv))
		for i, p := range srv {
			out[i], _ = procSampler{root: "/proc"}.readRSS(p.pid())
		}
		return out
	}
	h.NodeRSSBefore = nodeRSS()

	startNs := time.Now().UnixNano()
	loads, err := startLoads(ctx, r.cfg, addrs, holders, procs, total, startNs, r.log)
	if err != nil {
		return nil, nil, err
	}
	defer loads.close()
	stopProgress := connectProgress(ctx, srv, total, 5*r.cfg.progress, r.log)
	sum, err := loads.first()
	stopProgress()
	if err != nil {
		return nil, nil, err
	}
	h.Connected, h.ConnectErrors, h.FirstErr = sum.Connected, sum.ConnectErrors, sum.FirstErr
	h.ConnectS = time.Since(time.Unix(0, startNs)).Seconds()
	h.ConnectPerSec = float64(sum.Connected) / h.ConnectS
	r.log.Info("members in", "connected", sum.Connected, "errors", sum.ConnectErrors, "elapsed", time.Duration(h.ConnectS*1e9).Round(time.Millisecond))
	if sum.ConnectErrors > 0 {
		r.log.Warn("connect errors", "count", sum.ConnectErrors, "first", sum.FirstErr)
	}

	senders := make([]*clusterSender, nodes)
	defer func() {
		for _, s := range senders {
			if s != nil {
				s.close()
			}
		}
	}()
	for i := range senders {
		if senders[i], err = dialSender(ctx, r.cfg, addrs, i, total+i); err != nil {
			return nil, nil, err
		}
	}
	if err := sleepCtx(ctx, cfg.settle); err != nil {
		return nil, nil, err
	}
	h.NodeRSSAfter = nodeRSS()
	for i := range srv {
		h.KiBPerMember = append(h.KiBPerMember, float64(h.NodeRSSAfter[i]-h.NodeRSSBefore[i])/float64(h.NodeMembers[i]))
	}
	for _, p := range natsProcs {
		rss, _ := procSampler{root: "/proc"}.readRSS(p.pid())
		h.NATSRSS = append(h.NATSRSS, rss)
	}
	for _, p := range loads.procs {
		rss, _ := procSampler{root: "/proc"}.readRSS(p.cmd.Process.Pid)
		h.LoadRSS += rss
	}
	held, err := loads.report(senders, false, 0)
	if err != nil {
		return nil, nil, err
	}
	h.Held = held.Alive
	h.RoomShown = roomSizes(ctx, senders)
	for _, p := range srv {
		h.Forgot = append(h.Forgot, p.forgotten())
	}
	r.log.Info("held", "members", h.Held, "settle", cfg.settle, "room_shown", h.RoomShown, "forgot", h.Forgot)
	for i, n := range h.RoomShown {
		if there := int64(h.Held + len(senders)); n != there {
			r.log.Warn("a node shows a room size that is not the members there", "node", i, "shows", n, "there", there, "its_last_lines", srv[i].lastLines())
		}
	}

	ph := phase{run: r, srv: srv, nats: natsProcs, loads: loads, senders: senders, talkers: senders[:holders]}
	chat, err := ph.chat(ctx)
	if err != nil {
		return nil, nil, err
	}
	rr := &runReport{Hold: h, Chat: *chat}
	if !kill {
		return rr, nil, nil
	}
	kr, err := ph.killOne(ctx, h.NodeMembers)
	if err != nil {
		return nil, nil, err
	}
	return rr, kr, nil
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// phase is what the measuring steps of one set of nodes work on.
type phase struct {
	run     *clusterRun
	srv     []*serverProc
	nats    []*serverProc
	loads   *loadSet
	senders []*clusterSender // one on each node, asking it /rooms
	talkers []*clusterSender // those that say the lines: the holders'; a spare's only watches
}

// cpu samples every node, the NATS servers together, and the load tool
// (its processes and this one).
type cpuSample struct {
	nodes []procSample
	nats  procSample
	load  procSample
}

func (p *phase) sampleCPU() cpuSample {
	var s cpuSample
	for _, n := range p.srv {
		v, _ := procSampler{pids: []int{n.pid()}, root: "/proc"}.sample()
		s.nodes = append(s.nodes, v)
	}
	var np []int
	for _, n := range p.nats {
		np = append(np, n.pid())
	}
	if len(np) > 0 {
		s.nats, _ = procSampler{pids: np, root: "/proc"}.sample()
	}
	lp := []int{os.Getpid()}
	for _, l := range p.loads.procs {
		lp = append(lp, l.cmd.Process.Pid)
	}
	s.load, _ = procSampler{pids: lp, root: "/proc"}.sample()
	return s
}

// chat sends --rate lines a second for --duration from every sender in
// turn, waits for every member to have them, and reports.
func (p *phase) chat(ctx context.Context) (*phaseReport, error) {
	cfg := p.run.cfg
	before, err := p.loads.report(p.senders, true, 0) // starts the latency histogram afresh
	if err != nil {
		return nil, err
	}
	cpu0, cnt0 := p.sampleCPU(), countersOf(p.srv)
	t0 := time.Now()
	var lines int64
	for _, s := range p.talkers {
		lines -= s.sent.Load()
	}
	if err := sendLines(ctx, p.talkers, cfg.rate, cfg.duration, p.run.log, cfg.progress, p.loads); err != nil {
		return nil, err
	}
	end, drained, err := p.drain(ctx, 0)
	if err != nil {
		return nil, err
	}
	cpu1 := p.sampleCPU()
	el := time.Since(t0).Seconds()
	for _, s := range p.talkers {
		lines += s.sent.Load()
	}
	pr := &phaseReport{Lines: lines, Receivers: end.Stayed, Deliveries: end.Deliveries - before.Deliveries,
		DurationS: el, Lost: end.Lost, Duplicated: end.Duplicated, Reordered: end.Reordered, Drained: drained}
	pr.DeliveriesPerSec = float64(pr.Deliveries) / cfg.duration.Seconds()
	lat := newHistogram()
	if err := lat.mergeWire(end.Latency); err != nil {
		return nil, err
	}
	pr.P50us, pr.P99us = microseconds(lat.quantile(0.5)), microseconds(lat.quantile(0.99))
	pr.P999us, pr.Maxus = microseconds(lat.quantile(0.999)), microseconds(lat.quantile(1))
	for i := range p.srv {
		c := cpuSeconds(cpu0.nodes[i], cpu1.nodes[i])
		d := end.DeliveriesByNode[i] - before.DeliveriesByNode[i]
		pr.NodeCPU = append(pr.NodeCPU, c)
		pr.NodeDeliveries = append(pr.NodeDeliveries, d)
		us := 0.0
		if d > 0 {
			us = c * 1e6 / float64(d)
		}
		pr.NodeUsPerDeliv = append(pr.NodeUsPerDeliv, us)
	}
	pr.NATS, pr.NATSCPU = len(p.nats) > 0, cpuSeconds(cpu0.nats, cpu1.nats)
	for i, c := range countersOf(p.srv) {
		pr.SlowCut += c.SlowCut - cnt0[i].SlowCut
	}
	pr.LoadCPU = cpuSeconds(cpu0.load, cpu1.load)
	p.run.log.Info("chatted", "lines", pr.Lines, "deliveries", pr.Deliveries, "lost", pr.Lost, "p99", time.Duration(pr.P99us*1e3).Round(time.Millisecond))
	return pr, nil
}

// drain waits up to --drain until every member that stayed has every
// line sent, and every member that came back every line since it was,
// and returns the last report (with the latency histogram).
//
// since is for the last report (see loadSet.report).
func (p *phase) drain(ctx context.Context, since int64) (loadReport, bool, error) {
	deadline := time.Now().Add(p.run.cfg.drain)
	for {
		rep, err := p.loads.report(p.senders, false, 0)
		if err != nil {
			return rep, false, err
		}
		done := rep.Lost == 0 && rep.RejoinLost == 0
		if done || !time.Now().Before(deadline) {
			rep, err = p.loads.report(p.senders, true, since)
			return rep, done && rep.Lost == 0 && rep.RejoinLost == 0, err
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return rep, false, err
		}
	}
}

// killOne stops the last holder's sender, tells the load processes, kills
// the node with SIGKILL and, while the others chat on at --rate, follows
// its members back (to the spares, mostly) and its presence away.
func (p *phase) killOne(ctx context.Context, nodeMembers []int) (*killReport, error) {
	cfg := p.run.cfg
	victim := len(p.talkers) - 1
	// The members the load processes hold there: its sender leaves first.
	kr := &killReport{Node: victim, Members: nodeMembers[victim] - 1, Forgot: make([]int, len(p.srv)), ForgotS: make([]float64, len(p.srv)), PresenceS: make([]float64, len(p.srv)), Shown: make([]int64, len(p.srv)), Expected: make([]int64, len(p.srv))}
	if _, err := p.loads.report(p.senders, true, 0); err != nil { // the histogram afresh
		return nil, err
	}
	if err := p.loads.dead(victim); err != nil {
		return nil, err
	}
	vs := p.senders[victim]
	vs.close()
	live := slicesCloneSenders(p.senders)
	live = append(live[:victim], live[victim+1:]...)
	talk := live[:victim] // the holders' senders are first, the victim the last of them
	cpu0, cnt0 := p.sampleCPU(), countersOf(p.srv)
	var lines int64
	for _, s := range talk {
		lines -= s.sent.Load()
	}

	victimID := p.srv[victim].nodeID()
	killed := time.Now()
	p.srv[victim].kill()
	p.run.log.Info("node killed", "node", victim, "members", kr.Members)

	// The survivors chat on while the members come back.
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var sendErr error
	wg.Go(func() { sendErr = sendLines(sctx, talk, cfg.rate, cfg.killWait, p.run.log, 0, nil) })
	defer func() { stop(); wg.Wait() }()

	deadline := killed.Add(cfg.killWait)
	lastProgress := killed
	var rep loadReport
	for {
		var err error
		if rep, err = p.loads.report(p.senders, false, 0); err != nil {
			return nil, err
		}
		// A survivor no longer shows the killed node's members once it has
		// forgotten them (its log says so of each, naming the node), none
		// for 3 s, and its /rooms shows no more members than there are.
		// Only answers to questions asked a second after the last member
		// came back count (their own entries are then known).
		members := int64(rep.Alive + len(live))
		clean := true
		for i, s := range p.srv {
			if i == victim {
				continue
			}
			var last int64
			kr.Forgot[i], last = s.forgottenOf(victimID)
			if kr.ForgotS[i] == 0 && kr.Forgot[i] >= kr.Members {
				kr.ForgotS[i] = float64(last-killed.UnixNano()) / 1e9
			}
			ls := p.senders[i]
			ask, at, size := ls.askNs.Load(), ls.sizeNs.Load(), ls.roomSize.Load()
			settled := rep.Rejoined == rep.Cut && ask > max(killed.UnixNano(), rep.LastRejoinNs+int64(time.Second))
			quiet := kr.Forgot[i] > 0 && time.Since(time.Unix(0, last)) > 3*time.Second
			if kr.PresenceS[i] == 0 && quiet && settled && at > ask && size <= members {
				kr.PresenceS[i] = float64(last-killed.UnixNano()) / 1e9
				kr.Shown[i], kr.Expected[i] = size, members
			}
			if kr.PresenceS[i] == 0 {
				clean = false
				kr.Shown[i], kr.Expected[i] = size, members
				if at > ask || time.Since(time.Unix(0, ask)) > 5*time.Second {
					ls.askRooms() // one question at a time: the server may pace them
				}
			}
		}
		back := rep.Cut >= kr.Members && rep.Back == rep.Cut
		if clean && back {
			break
		}
		if !time.Now().Before(deadline) {
			kr.TimedOut = true
			for i, s := range p.srv {
				if i != victim {
					p.run.log.Warn("the wait after the kill ended", "node", i, "room_shown", kr.Shown[i], "members", kr.Expected[i], "its_last_lines", s.lastLines(), "its_sender_got", p.senders[i].said.Load())
				}
			}
			break
		}
		if cfg.progress > 0 && time.Since(lastProgress) >= cfg.progress {
			lastProgress = time.Now()
			p.run.log.Info("after the kill", "elapsed", time.Since(killed).Round(time.Second), "cut", rep.Cut, "rejoined", rep.Rejoined, "back", rep.Back,
				"refused_full", rep.RefusedFull, "retry_errors", rep.RetryErrors, "forgot", kr.Forgot, "room_shown", kr.Shown, "members", kr.Expected)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
	stop()
	wg.Wait()
	if sendErr != nil {
		return nil, sendErr
	}
	end, drained, err := p.drain(ctx, killed.UnixNano())
	if err != nil {
		return nil, err
	}
	cpu1 := p.sampleCPU()
	for _, s := range talk {
		lines += s.sent.Load()
	}
	for i, s := range p.srv {
		if i != victim {
			kr.Forgot[i], _ = s.forgottenOf(victimID)
		}
		kr.NodeCPU = append(kr.NodeCPU, cpuSeconds(cpu0.nodes[i], cpu1.nodes[i]))
	}
	kr.NATSCPU = cpuSeconds(cpu0.nats, cpu1.nats)
	kr.LoadCPU = cpuSeconds(cpu0.load, cpu1.load)
	kr.Counters = countersOf(p.srv)
	for i := range kr.Counters {
		if i == victim {
			kr.Counters[i] = nodeCounters{}
			continue
		}
		kr.Counters[i].Rejected -= cnt0[i].Rejected
		kr.Counters[i].SlowCut -= cnt0[i].SlowCut
	}
	kr.DurationS = time.Since(killed).Seconds()
	kr.Cut, kr.Rejoined, kr.Back = end.Cut, end.Rejoined, end.Back
	kr.RefusedFull, kr.RetryErrors, kr.FirstRetryErr = end.RefusedFull, end.RetryErrors, end.FirstRetryErr
	back := newHistogram()
	if err := back.mergeWire(end.BackAfter); err != nil {
		return nil, err
	}
	if back.n > 0 {
		kr.BackP50S, kr.BackMaxS = float64(back.quantile(0.5))/1e9, float64(back.quantile(1))/1e9
	}
	if end.LastRejoinNs > 0 {
		kr.LastRejoinS = float64(end.LastRejoinNs-killed.UnixNano()) / 1e9
	}
	if end.LastBackNs > 0 {
		kr.LastBackS = float64(end.LastBackNs-killed.UnixNano()) / 1e9
	}
	kr.RejoinLost, kr.RejoinDup, kr.RejoinReord = end.RejoinLost, end.RejoinDup, end.RejoinReordered
	kr.Stayed, kr.Lines, kr.Drained = end.Stayed, lines, drained
	kr.Lost, kr.Duplicated, kr.Reordered = end.Lost, end.Duplicated, end.Reordered
	lat := newHistogram()
	if err := lat.mergeWire(end.Latency); err != nil {
		return nil, err
	}
	kr.P50us, kr.P99us = microseconds(lat.quantile(0.5)), microseconds(lat.quantile(0.99))
	p.run.log.Info("after the kill", "cut", kr.Cut, "back", kr.Back, "last_back_s", kr.LastBackS, "refused_full", kr.RefusedFull,
		"retry_errors", kr.RetryErrors, "forgot", kr.Forgot, "lost", kr.Lost)
	if kr.RetryErrors > 0 {
		p.run.log.Warn("members coming back were refused other than as full, or could not connect", "count", kr.RetryErrors, "first", kr.FirstRetryErr)
	}
	return kr, nil
}

func slicesCloneSenders(s []*clusterSender) []*clusterSender {
	return append([]*clusterSender(nil), s...)
}

// clusterSender is one of the run's senders, a TCP member of one node.
// Its lines are "bench <id> <seq> <ns>". It also asks its node for the
// room's size (/rooms) when told to: a goroutine reads what the server
// sends it, keeps the last size it was told, and drops the rest.
type clusterSender struct {
	id      int
	conn    *tcpConn
	sent    atomic.Int64
	closed  atomic.Bool
	readers sync.WaitGroup

	wmu      sync.Mutex   // one write at a time: lines and /rooms
	roomSize atomic.Int64 // the last size of the room /rooms gave, -1 before
	sizeNs   atomic.Int64 // when it came
	askNs    atomic.Int64 // when /rooms was last asked
	said     atomic.Value // the last other line it got, for a message
}

func dialSender(ctx context.Context, cfg clusterConfig, addrs []nodeAddr, node, slot int) (*clusterSender, error) {
	tcp, _, err := resolveEndpoints(ctx, []string{addrs[node].TCP}, nil)
	if err != nil {
		return nil, err
	}
	d := newDialer(tcp, nil, 0, wsOptions{}, cfg.connectTimeout)
	if cfg.perSource > 0 {
		d.perSource = cfg.perSource
	}
	c, err := d.dial(ctx, tcp[0], slot)
	if err != nil {
		return nil, fmt.Errorf("sender %d: %w", node, err)
	}
	tc, ok := c.(*tcpConn)
	if !ok {
		c.close()
		return nil, fmt.Errorf("sender %d: not a TCP connection", node)
	}
	s := &clusterSender{id: node, conn: tc}
	s.roomSize.Store(-1)
	s.readers.Go(s.read)
	return s, nil
}

// read reads until the connection ends, taking the room's size from each
// answer to /rooms ("*** rooms: lobby (N), ...").
func (s *clusterSender) read() {
	var line []byte
	s.conn.readLoop(make([]byte, 4096), func(p []byte, _ bool) {
		for len(p) > 0 {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if len(line) < 4096 {
					line = append(line, p...)
				}
				return
			}
			line = append(line, p[:i]...)
			p = p[i+1:]
			if n, ok := lobbySize(line); ok {
				s.roomSize.Store(n)
				s.sizeNs.Store(time.Now().UnixNano())
			} else if !bytes.Contains(line, []byte(tagPrefix)) {
				s.said.Store(lastLine(line))
			}
			line = line[:0]
		}
	})
}

// lobbySize finds the default room's size in an answer to /rooms.
func lobbySize(line []byte) (int64, bool) {
	_, rest, ok := bytes.Cut(line, []byte("rooms: "))
	if !ok {
		return 0, false
	}
	_, rest, ok = bytes.Cut(rest, []byte("lobby ("))
	if !ok {
		return 0, false
	}
	digits, _, ok := bytes.Cut(rest, []byte(")"))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, err == nil
}

func (s *clusterSender) send(ctx context.Context, t tag) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.conn.sendTag(ctx, t)
}

// askRooms asks the node for its rooms and their sizes.
func (s *clusterSender) askRooms() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.askNs.Store(time.Now().UnixNano())
	_, err := s.conn.c.Write([]byte("/rooms\n"))
	return err
}

// roomSizes asks every sender's node for the room's size, and waits up
// to 5 s for the answers (-1: none came).
func roomSizes(ctx context.Context, senders []*clusterSender) []int64 {
	for _, s := range senders {
		s.askRooms()
	}
	deadline := time.Now().Add(5 * time.Second)
	out := make([]int64, len(senders))
	for {
		done := true
		for i, s := range senders {
			out[i] = -1
			if s.sizeNs.Load() > s.askNs.Load() {
				out[i] = s.roomSize.Load()
			} else {
				done = false
			}
		}
		if done || time.Now().After(deadline) || sleepCtx(ctx, 50*time.Millisecond) != nil {
			return out
		}
	}
}

func (s *clusterSender) close() {
	if s.closed.CompareAndSwap(false, true) {
		s.conn.close()
	}
	s.readers.Wait()
}

// sendLines says rate lines a second in all for d, from each sender in
// turn.
func sendLines(ctx context.Context, senders []*clusterSender, rate float64, d time.Duration, log *slog.Logger, progress time.Duration, loads *loadSet) error {
	interval := time.Duration(float64(time.Second) / rate)
	t0 := time.Now()
	lastProgress := t0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := 0; ; k++ {
		due := t0.Add(time.Duration(k) * interval)
		if due.Sub(t0) >= d {
			return nil
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.Canceled) {
					return nil // stopped by the caller
				}
				return ctx.Err()
			}
		}
		s := senders[k%len(senders)]
		seq := s.sent.Load()
		if err := s.send(ctx, tag{sender: int64(s.id), seq: seq, sentNs: time.Now().UnixNano()}); err != nil {
			return fmt.Errorf("sender %d: %w", s.id, err)
		}
		s.sent.Store(seq + 1)
		if progress > 0 && loads != nil && time.Since(lastProgress) >= progress {
			lastProgress = time.Now()
			log.Info("progress", "elapsed", time.Since(t0).Round(time.Second), "lines", k+1)
		}
	}
}

// loadSet is the run's load processes. The run owns them: closing their
// stdin releases them, and close waits for each.
type loadSet struct {
	procs []*loadChild
}

type loadChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	enc   *json.Encoder
}

// startLoads starts procs load processes sharing total members, each
// given its spec: the members on the first holders of addrs, the rest
// spares.
func startLoads(ctx context.Context, cfg clusterConfig, addrs []nodeAddr, holders, procs, total int, startNs int64, log *slog.Logger) (*loadSet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program: %w", err)
	}
	ls := &loadSet{}
	first := 0
	for k := range procs {
		n := total / procs
		if k < total%procs {
			n++
		}
		cmd := exec.CommandContext(ctx, exe, "cluster", "--load", "--quiet")
		cmd.Stderr = cfg.loadErr
		stdin, stdout, err := startPiped(cmd)
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("load process %d: %w", k, err)
		}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		c := &loadChild{cmd: cmd, stdin: stdin, out: sc, enc: json.NewEncoder(stdin)}
		ls.procs = append(ls.procs, c)
		spec := loadSpec{Nodes: addrs, Holders: holders, First: first, N: n, Senders: len(addrs), StartNs: startNs,
			PerSource: cfg.perSource, ConnectRate: cfg.connectRate / float64(procs),
			Parallel: max(cfg.parallel/procs, 1), ConnectTimeout: cfg.connectTimeout}
		if err := c.enc.Encode(spec); err != nil {
			ls.close()
			return nil, fmt.Errorf("load process %d: %w", k, err)
		}
		first += n
	}
	log.Info("load processes started", "procs", procs, "members", total)
	return ls, nil
}

// first reads every load process's report of its connects.
func (ls *loadSet) first() (loadReport, error) {
	var sum loadReport
	for i, c := range ls.procs {
		r, err := c.read()
		if err != nil {
			return sum, fmt.Errorf("load process %d: %w", i, err)
		}
		sum.Connected += r.Connected
		sum.ConnectErrors += r.ConnectErrors
		if sum.FirstErr == "" {
			sum.FirstErr = r.FirstErr
		}
	}
	return sum, nil
}

func (c *loadChild) read() (loadReport, error) {
	if !c.out.Scan() {
		return loadReport{}, fmt.Errorf("read report: %w", errOrNone(c.out.Err()))
	}
	var r loadReport
	if err := json.Unmarshal(c.out.Bytes(), &r); err != nil {
		return loadReport{}, fmt.Errorf("decode report %q: %w", c.out.Text(), err)
	}
	return r, nil
}

// ask sends every load process cmd and sums the answers.
func (ls *loadSet) ask(cmd loadCommand) (loadReport, error) {
	for i, c := range ls.procs {
		if err := c.enc.Encode(cmd); err != nil {
			return loadReport{}, fmt.Errorf("load process %d: %w", i, err)
		}
	}
	var sum loadReport
	lat, back := newHistogram(), newHistogram()
	for i, c := range ls.procs {
		r, err := c.read()
		if err != nil {
			return sum, fmt.Errorf("load process %d: %w", i, err)
		}
		sum.add(r)
		if err := lat.mergeWire(r.Latency); err != nil {
			return sum, fmt.Errorf("load process %d: %w", i, err)
		}
		if err := back.mergeWire(r.BackAfter); err != nil {
			return sum, fmt.Errorf("load process %d: %w", i, err)
		}
	}
	sum.Latency, sum.BackAfter = lat.wire(), back.wire()
	return sum, nil
}

// report asks every load process how its members are, against what the
// senders said; with hist, the latency since the last such report, and,
// with since too, when each member that came back was chatting again.
func (ls *loadSet) report(senders []*clusterSender, hist bool, since int64) (loadReport, error) {
	sent := make([]int64, len(senders))
	for i, s := range senders {
		sent[i] = s.sent.Load()
	}
	return ls.ask(loadCommand{Cmd: "report", Sent: sent, Hist: hist, Since: since})
}

func (ls *loadSet) dead(node int) error {
	_, err := ls.ask(loadCommand{Cmd: "dead", Node: node})
	return err
}

// close releases every load process and waits for it.
func (ls *loadSet) close() {
	for _, c := range ls.procs {
		c.stdin.Close()
	}
	for _, c := range ls.procs {
		c.cmd.Wait()
	}
	ls.procs = nil
}

// add sums b into a (not the histograms, which the caller merges).
func (a *loadReport) add(b loadReport) {
	a.Connected += b.Connected
	a.ConnectErrors += b.ConnectErrors
	a.Alive += b.Alive
	a.Stayed += b.Stayed
	a.Deliveries += b.Deliveries
	if len(a.DeliveriesByNode) < len(b.DeliveriesByNode) {
		a.DeliveriesByNode = append(a.DeliveriesByNode, make([]int64, len(b.DeliveriesByNode)-len(a.DeliveriesByNode))...)
	}
	for i, d := range b.DeliveriesByNode {
		a.DeliveriesByNode[i] += d
	}
	a.Lost += b.Lost
	a.Duplicated += b.Duplicated
	a.Reordered += b.Reordered
	a.Foreign += b.Foreign
	a.Cut += b.Cut
	a.Rejoined += b.Rejoined
	a.Back += b.Back
	a.RefusedFull += b.RefusedFull
	a.RetryErrors += b.RetryErrors
	if a.FirstRetryErr == "" {
		a.FirstRetryErr = b.FirstRetryErr
	}
	a.RejoinLost += b.RejoinLost
	a.LastRejoinNs = max(a.LastRejoinNs, b.LastRejoinNs)
	a.LastBackNs = max(a.LastBackNs, b.LastBackNs)
	a.RejoinDup += b.RejoinDup
	a.RejoinReordered += b.RejoinReordered
}

// setFileLimit raises RLIMIT_NOFILE to at least want, the hard limit too
// if this process may (root), and sets it explicitly, so that the
// processes it starts inherit it.
func setFileLimit(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("set RLIMIT_NOFILE to %d: %w", lim.Max, err)
	}
	if lim.Max < want {
		return fmt.Errorf("RLIMIT_NOFILE is %d, below the %d wanted", lim.Max, want)
	}
	return nil
}

// loadAvg is the machine's load average as /proc says it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
