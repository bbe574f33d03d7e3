package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// flagValues holds every subcommand's flags; each subcommand registers the
// ones it has.
type flagValues struct {
	// shared by all
	timeout time.Duration
	json    bool
	quiet   bool
	verbose bool

	// fanout and hold
	tcp, ws        listFlag
	wsMix          float64
	wsBinary       bool
	wsSubprotocol  string
	wsJSON         bool
	connectRate    float64
	connectTimeout time.Duration
	dialParallel   int
	pids           pidFlag
	pidTree        bool
	perSource      int

	// fanout
	receivers, senders int
	rate               float64
	duration           time.Duration // also ceiling
	messages           int64
	drain, settle      time.Duration
	window             int64

	// hold
	n          int
	hold       time.Duration
	procs      int
	child      bool // hidden: this process is one of --procs
	slotOffset int  // hidden: the child's first client slot

	// ceiling
	listen string
	queue  int
}

// isHidden reports the flags internal to --procs, left out of the usage text.
func isHidden(name string) bool { return name == "child" || name == "slot-offset" || name == "load" }

func description(cmd string) string {
	switch cmd {
	case "fanout":
		return "fanout: N receivers and S senders share a room; senders send tagged lines,\n" +
			"receivers count deliveries, latency, broadcast completion, loss, duplicates, reordering."
	case "hold":
		return "hold: open N idle connections, keep them for --hold, report how many held,\n" +
			"the connect rate and (with --pid) the server's memory per connection."
	case "ceiling":
		return "ceiling: serve as the thinnest Go TCP broadcaster (each read's complete lines to\n" +
			"every other connection), the reference for deliveries per server CPU-second."
	case "cluster":
		return "cluster: start NATS, --nodes chatbridge nodes and load processes on loopback; one room of\n" +
			"--nodes x --members members: hold, chat at --rate, a node killed, and one node alone."
	}
	return ""
}

func newFlagSet(name string, out io.Writer) (*flag.FlagSet, *flagValues) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	v := &flagValues{}
	fs.DurationVar(&v.timeout, "timeout", 0, "hard limit for the whole run (0 = planned length + 30s)")
	fs.BoolVar(&v.json, "json", false, "print one JSON object instead of a summary line")
	fs.BoolVar(&v.quiet, "quiet", false, "no progress lines on stderr (warnings still show)")
	fs.BoolVar(&v.verbose, "verbose", false, "debug logging on stderr")

	switch name {
	case "fanout", "hold":
		fs.Var(&v.tcp, "tcp", "TCP endpoint `host:port` (repeatable or comma list); ssh://host:port is chatbridge's SSH door, each client an SSH member with a pseudo-terminal")
		fs.Var(&v.ws, "ws", "WebSocket endpoint `ws://host:port/path`, or wss:// (repeatable or comma list)")
		fs.Float64Var(&v.wsMix, "ws-mix", 0.5, "fraction of clients on WebSocket when both --tcp and --ws are given")
		fs.BoolVar(&v.wsBinary, "ws-binary", false, "send binary frames, each line ending in \"\\n\" (websockify wants this)")
		fs.StringVar(&v.wsSubprotocol, "ws-subprotocol", "", "offer this WebSocket subprotocol (e.g. binary for websockify)")
		fs.BoolVar(&v.wsJSON, "ws-json", false, "send {\"type\":\"message\",\"text\":\"<tag>\"} instead of the bare line")
		fs.Float64Var(&v.connectRate, "connect-rate", 0, "connections started per second (0 = unlimited)")
		fs.DurationVar(&v.connectTimeout, "connect-timeout", 5*time.Second, "limit for one connection attempt, handshake included")
		fs.IntVar(&v.dialParallel, "dial-parallel", 64, "connection attempts in flight at once")
		fs.Var(&v.pids, "pid", "server process `id` to measure CPU and RSS of (repeatable or comma list)")
		fs.BoolVar(&v.pidTree, "pid-tree", false, "with --pid, also sum every descendant process (a process per connection)")
		fs.IntVar(&v.perSource, "per-source", 0, "clients per source address before moving on to 127.0.0.2, 127.0.0.3, ...\n"+
			"(0 = 90% of the ephemeral port range; lower it for servers that limit connections per IP)")
	}
	switch name {
	case "fanout":
		fs.IntVar(&v.receivers, "receivers", 100, "dedicated receiving clients")
		fs.IntVar(&v.senders, "senders", 1, "sending clients (room members too)")
		fs.Float64Var(&v.rate, "rate", 100, "lines per second per sender (0 = flat out, within --window)")
		fs.DurationVar(&v.duration, "duration", 10*time.Second, "how long to send")
		fs.Int64Var(&v.messages, "messages", 0, "lines per sender, if sending should stop before --duration (0 = no limit)")
		fs.DurationVar(&v.drain, "drain", 2*time.Second, "wait this long after sending for stragglers")
		fs.DurationVar(&v.settle, "settle", 500*time.Millisecond, "wait this long after connecting before sending")
		fs.Int64Var(&v.window, "window", 1000, "lines per sender that may be unreceived by the slowest receiver")
	case "hold":
		fs.IntVar(&v.n, "n", 1000, "connections to open")
		fs.DurationVar(&v.hold, "hold", 5*time.Second, "keep the connections open this long")
		fs.IntVar(&v.procs, "procs", 1, "split the connections over this many child processes")
		fs.BoolVar(&v.child, "child", false, "internal: run as a --procs child")
		fs.IntVar(&v.slotOffset, "slot-offset", 0, "internal: first client slot of a child")
	case "ceiling":
		fs.StringVar(&v.listen, "listen", "127.0.0.1:5001", "loopback address to listen on")
		fs.DurationVar(&v.duration, "duration", 30*time.Minute, "stop serving after this long (or on SIGINT/SIGTERM)")
		fs.IntVar(&v.queue, "queue", 1024, "messages queued per connection before it is dropped")
	}
	fs.Usage = func() { printUsage(fs, out, name) }
	return fs, v
}

// printUsage is flag.PrintDefaults without the hidden flags.
func printUsage(fs *flag.FlagSet, out io.Writer, name string) {
	fmt.Fprintf(out, "%s\n\nUsage: chatbench %s [flags]\n\nFlags:\n", description(name), name)
	fs.VisitAll(func(f *flag.Flag) {
		if isHidden(f.Name) {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		line := "  " + dashes + f.Name
		if typ != "" {
			line += " " + typ
		}
		// -1 is a default the flag's usage tells in words.
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "-1" && f.DefValue != "false" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		usage = strings.ReplaceAll(usage, "\n", "\n"+strings.Repeat(" ", 31))
		fmt.Fprintf(out, "%-30s %s\n", line, usage)
	})
}

// plannedLength is how long a run should take, the base of --timeout.
func (v *flagValues) plannedLength(cmd string) time.Duration {
	var connecting time.Duration
	if v.connectRate > 0 {
		connecting = time.Duration(float64(v.receivers+v.senders+v.n) / v.connectRate * float64(time.Second))
	}
	switch cmd {
	case "fanout":
		return connecting + v.settle + v.duration + v.drain
	case "hold":
		return connecting + v.hold
	default:
		return v.duration
	}
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errUsage)
}

// clientConfig checks the shared flags and resolves the endpoints.
func (v *flagValues) clientConfig(ctx context.Context) (clientConfig, error) {
	if len(v.tcp) == 0 && len(v.ws) == 0 {
		return clientConfig{}, usageErr("give at least one --tcp or --ws endpoint")
	}
	if v.wsMix < 0 || v.wsMix > 1 {
		return clientConfig{}, usageErr("--ws-mix %g: want 0..1", v.wsMix)
	}
	if v.connectRate < 0 || v.connectTimeout <= 0 || v.dialParallel < 1 {
		return clientConfig{}, usageErr("--connect-rate must be >= 0, --connect-timeout > 0, --dial-parallel >= 1")
	}
	if v.perSource < 0 {
		return clientConfig{}, usageErr("--per-source must not be negative")
	}
	if v.pidTree && len(v.pids) == 0 {
		return clientConfig{}, usageErr("--pid-tree needs --pid")
	}
	tcp, ws, err := resolveEndpoints(ctx, v.tcp, v.ws)
	if err != nil {
		return clientConfig{}, err
	}
	progress := 2 * time.Second
	if v.quiet {
		progress = 0
	}
	return clientConfig{
		tcp: tcp, ws: ws, wsMix: v.wsMix,
		wsOpts:         wsOptions{binary: v.wsBinary, subprotocol: v.wsSubprotocol, json: v.wsJSON},
		connect:        connectPlan{rate: v.connectRate, parallel: v.dialParallel},
		connectTimeout: v.connectTimeout,
		proc:           procSampler{pids: v.pids, tree: v.pidTree, root: "/proc"},
		progress:       progress,
		perSource:      v.perSource,
	}, nil
}

func (v *flagValues) fanoutConfig(ctx context.Context) (fanoutConfig, error) {
	switch {
	case v.receivers < 1 || v.senders < 1:
		return fanoutConfig{}, usageErr("--receivers and --senders must be at least 1")
	case v.rate < 0:
		return fanoutConfig{}, usageErr("--rate must not be negative")
	case v.duration <= 0:
		return fanoutConfig{}, usageErr("--duration must be positive")
	case v.messages < 0 || v.drain < 0 || v.settle < 0:
		return fanoutConfig{}, usageErr("--messages, --drain and --settle must not be negative")
	case v.window < 1:
		return fanoutConfig{}, usageErr("--window must be at least 1")
	}
	cc, err := v.clientConfig(ctx)
	if err != nil {
		return fanoutConfig{}, err
	}
	return fanoutConfig{
		clientConfig: cc,
		receivers:    v.receivers, senders: v.senders,
		rate: v.rate, duration: v.duration, messages: v.messages,
		drain: v.drain, settle: v.settle, window: v.window,
	}, nil
}

func (v *flagValues) holdConfig(ctx context.Context) (holdConfig, error) {
	switch {
	case v.n < 1:
		return holdConfig{}, usageErr("-n must be at least 1")
	case v.procs < 1 || v.procs > v.n:
		return holdConfig{}, usageErr("--procs must be between 1 and -n")
	case v.hold < 0:
		return holdConfig{}, usageErr("--hold must not be negative")
	case v.slotOffset < 0:
		return holdConfig{}, usageErr("--slot-offset must not be negative")
	}
	cc, err := v.clientConfig(ctx)
	if err != nil {
		return holdConfig{}, err
	}
	if v.child {
		cc.progress = 0
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return holdConfig{
		clientConfig: cc,
		n:            v.n, hold: v.hold, procs: v.procs,
		given: childFlags{
			tcp: v.tcp, ws: v.ws, wsMix: v.wsMix,
			wsOpts:      cc.wsOpts,
			connectRate: v.connectRate,
			timeout:     v.timeout,
			quiet:       v.quiet,
		},
		childExe:   exe,
		slotOffset: v.slotOffset,
	}, nil
}
