package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"chatbridge/bridge"
	"chatbridge/tcpserver"
	"chatbridge/tcpserver/natsrelay"
)

// envPrefix starts the environment variable that stands in for each flag:
// --max-line is CHATBRIDGE_MAX_LINE.
const envPrefix = "CHATBRIDGE_"

// config is everything the command line sets.
type config struct {
	tcpAddr     string
	httpAddr    string
	metricsAddr string // empty: /metrics is on httpAddr
	echoAddr    string
	sshAddr     string // empty: no SSH door
	sshHostKey  string
	logFormat   string
	logLevel    levelFlag

	defaultRoom   string
	history       int
	historyMemory byteSize
	maxLine       int
	rate          float64
	burst         int
	queue         int
	queueBytes    byteSize
	writeTimeout  time.Duration
	sendBuffer    int
	maxClients    int
	maxPerIP      int
	maxRooms      int
	announceLimit int
	announceDelay time.Duration
	connectRate   float64
	privateRate   float64
	privatePerIP  float64
	roomRate      int
	roomBytes     byteSize

	shutdownTimeout time.Duration
	gcPercent       int
	gcPercentSet    bool // given by flag or environment, not the default

	allowOrigins string // comma-separated
	embedOrigins string // comma-separated, checked by bridge.ParseEmbedOrigins
	allowHosts   string // comma-separated, checked by bridge.ParseAllowHosts
	tlsCert      string
	tlsKey       string

	showAddrsFlag  string // --show-addresses
	proxiesFlag    string // --trusted-proxies
	showAddresses  tcpserver.ShowAddrs
	trustedProxies []netip.Prefix
	embedSources   []string // embedOrigins, parsed
	allowHostList  []string // allowHosts, parsed

	natsURL      string // empty: a single node
	natsRequired bool
	natsPrefix   string
	natsNode     string // empty: random
	natsCreds    string
	natsCA       string

	clusterSecret   string // never logged
	clusterInsecure bool

	opPassword string // never logged, never shown by --help

	authSecret string          // never logged, never shown by --help
	speakFlag  string          // --speak
	speak      tcpserver.Speak // speakFlag, parsed

	dataDir      string // empty: history in memory, unless --nats
	historyKeep  int
	historyAge   time.Duration
	natsReplicas int
}

// list splits a comma- or space-separated flag value.
func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// parseConfig reads flags from args and, for each flag not given there,
// its environment variable through lookupEnv (os.LookupEnv). An empty
// variable counts: CHATBRIDGE_HTTP= turns the web bridge off. Usage and
// errors go to out.
func parseConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (config, error) {
	c := config{historyMemory: tcpserver.DefaultHistoryMemory, queueBytes: tcpserver.DefaultQueueBytes, roomBytes: tcpserver.DefaultRoomBytes}
	fs := flag.NewFlagSet("chatbridge", flag.ContinueOnError)
	fs.SetOutput(out)

	fs.StringVar(&c.tcpAddr, "tcp", ":5000", "`address` of the telnet/nc chat")
	fs.StringVar(&c.httpAddr, "http", ":8080", "`address` of the web page and WebSocket bridge (empty: off)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "`address` of a listener of its own for /metrics, e.g. 127.0.0.1:9100, which takes it off --http (empty: /metrics is on --http)")
	fs.StringVar(&c.echoAddr, "echo", "", "`address` of the seed's echo service, e.g. :8888 (empty: off)")
	fs.StringVar(&c.sshAddr, "ssh", "", "`address` of the SSH door, e.g. :2222: terminal users with a line editor, in the same rooms (empty: off)")
	fs.StringVar(&c.sshHostKey, "ssh-host-key", "", "the SSH door's host key `file`, required with --ssh unless --data (then DIR/ssh_host_key); made (ed25519, mode 0600) if it does not exist")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	c.logLevel = levelFlag(slog.LevelInfo)
	fs.Var(&c.logLevel, "log-level", "`level` of the log: debug, info, warn or error")

	fs.StringVar(&c.defaultRoom, "room", "lobby", "the `room` members start in")
	fs.IntVar(&c.history, "history", 20, "`lines` of history each room replays on join")
	fs.Var(&c.historyMemory, "history-memory", "`bytes` the history of all rooms together may take, text and JSON of each line counted, in bytes or with KiB, MiB or GiB; when full, the oldest lines of the rooms least recently active go first")
	fs.IntVar(&c.maxLine, "max-line", 4096, "longest line accepted, in `bytes`")
	fs.Float64Var(&c.rate, "rate", 10, "lines per second each member may send; lines over it wait their turn, up to 100 (0: no limit)")
	fs.IntVar(&c.burst, "burst", 20, "`lines` each member may send at once, above the rate")
	fs.IntVar(&c.queue, "queue", 1024, "`messages` queued for a member before it is cut off as too slow")
	fs.Var(&c.queueBytes, "queue-bytes", "`bytes` waiting for a member, queued and being written, before it is cut off as too slow, counted as its transport sends them (text lines, or JSON), in bytes or with KiB, MiB or GiB; at least 16 of --max-line (0: no bound in bytes)")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 10*time.Second, "longest a write to a member may take before it is cut off (at least three quarters of it)")
	fs.IntVar(&c.sendBuffer, "send-buffer", 128<<10, "kernel send buffer of each member's socket, in `bytes` (-1: the kernel's, which grows to megabytes)")
	fs.IntVar(&c.maxClients, "max-clients", 20000, "connections at once, every listener together, members or not; never more than the open-file limit less 64 (0: only that)")
	fs.IntVar(&c.maxPerIP, "max-per-ip", 100, "connections at once from one IP address, every listener together, members or not (0: no limit)")
	fs.IntVar(&c.maxRooms, "max-rooms", 1000, "rooms kept at once; the longest-idle empty room is forgotten first")
	fs.IntVar(&c.announceLimit, "announce-limit", 200, "rooms with more `members` than this stop announcing joins, leaves and name changes")
	fs.DurationVar(&c.announceDelay, "announce-delay", 5*time.Second, "how long a newcomer to a room goes unannounced unless it speaks; who leaves sooner is never announced, its leave neither (0: announce at once)")
	fs.Float64Var(&c.connectRate, "connect-rate", 10, "new connections per second from one IP address (IPv6: one /64), every listener together, after a burst of 10 times as many (0: no limit)")
	fs.Float64Var(&c.privateRate, "private-rate", 5, "private messages per second one member may be sent, all senders together, after a burst of 4 times as many (0: no limit)")
	fs.Float64Var(&c.privatePerIP, "private-rate-per-ip", 2, "private messages per second one member may be sent from any one IP address (IPv6: one /64), after a burst of 4 times as many (0: no limit)")
	fs.IntVar(&c.roomRate, "room-rate", tcpserver.DefaultRoomRate, "each room's output budget in `deliveries` a second (lines times the members who get them), one second's worth at once; a member's line over it is refused with a notice that the room is busy (0: no budget)")
	fs.Var(&c.roomBytes, "room-bytes", "each room's output budget in `bytes` delivered a second (line bytes times members), one second's worth at once, with KiB, MiB or GiB (0: no budget)")
	fs.StringVar(&c.allowOrigins, "allow-origin", "", "other `origins` whose pages may open /ws, comma-separated host patterns such as docs.example.com or *.example.com (the page's own origin is always allowed)")
	fs.StringVar(&c.embedOrigins, "embed-origins", "*", "`origins` that may frame /embed (CSP frame-ancestors), comma-separated: scheme://host[:port] such as https://docs.example.com, *.example.com, 'self', or alone * (any site) or 'none'")
	fs.StringVar(&c.allowHosts, "allow-host", "", "host `names` the web server answers to, comma-separated, such as chat.example.com, *.example.com or an IP address; a request for another gets 421, except /healthz (empty: any)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "certificate `file` (PEM): serve HTTPS and WSS")
	fs.StringVar(&c.tlsKey, "tls-key", "", "private key `file` (PEM) for --tls-cert")
	fs.StringVar(&c.showAddrsFlag, "show-addresses", "tcp", "`whose` address join and leave notices show: tcp (telnet/nc members'), all or none; the log keeps every address")
	fs.StringVar(&c.proxiesFlag, "trusted-proxies", "", "reverse proxies whose X-Forwarded-For or Forwarded header names the client, comma-separated `IPs` or CIDR prefixes such as 127.0.0.1,10.0.0.0/8 (empty: none)")
	fs.StringVar(&c.natsURL, "nats", "", "NATS server `URL` that joins this node to the others, e.g. nats://127.0.0.1:4222 (empty: a single node)")
	fs.BoolVar(&c.natsRequired, "nats-required", false, "refuse to start if --nats cannot be reached (otherwise start alone and keep trying)")
	fs.StringVar(&c.natsPrefix, "nats-prefix", "chatbridge", "`prefix` of the NATS subjects, stream and bucket, so that two deployments can share one NATS")
	fs.StringVar(&c.natsNode, "nats-node", "", "this node's `ID` on NATS, unique in the cluster, so that NATS permissions can name its subject (default: random at each start)")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "NATS credentials `file` (.creds) this node connects with")
	fs.StringVar(&c.natsCA, "nats-ca", "", "PEM `file` of the CAs that signed the NATS server's certificate, for tls:// URLs (default: the system's)")
	fs.StringVar(&c.clusterSecret, "cluster-secret", "", fmt.Sprintf("the `secret` every node of the cluster shares, at least %d bytes: messages between nodes are signed with it and private messages encrypted; required with --nats (set it through the environment: the command line shows in ps)", natsrelay.MinSecret))
	fs.BoolVar(&c.clusterInsecure, "cluster-insecure", false, "run --nats without --cluster-secret: any client of NATS can then speak as a node, so only on a NATS nothing but the nodes can reach")
	fs.StringVar(&c.opPassword, "op-password", "", fmt.Sprintf("the `secret` /op takes to make a session an operator's (kick, ban, mute, topic, modes), at least %d bytes (empty: no operators; set it through the environment: the command line shows in ps)", minOpPassword))
	fs.StringVar(&c.authSecret, "auth-secret", "", fmt.Sprintf("the HS256 `secret` of the sign-in tokens (JWT) a site gives its readers (/ws?token=..., embed.js data-token): the name they give is the member's, verified; at least %d bytes (empty: tokens are refused; set it through the environment: the command line shows in ps)", bridge.MinAuthSecret))
	fs.StringVar(&c.speakFlag, "speak", "anyone", "`who` may speak (the others read): anyone, registered (identified with a registered name, or verified) or verified (signed in by --auth-secret's site); operators always may")
	fs.StringVar(&c.dataDir, "data", "", "`directory` that keeps the rooms' lines and the server's state across restarts, in an embedded NATS server (JetStream files); with --nats, only what is this node's own (its node ID, the default SSH host key) (empty: history in memory)")
	fs.IntVar(&c.historyKeep, "history-keep", 10000, "`lines` kept per room for scrollback (with --data or --nats: in the history stream)")
	fs.DurationVar(&c.historyAge, "history-age", 0, "how long a line is kept, e.g. 720h (0: no age limit)")
	fs.IntVar(&c.natsReplicas, "nats-replicas", 1, "NATS servers that keep the history stream and every bucket, 1 to 5 (3 on a three-server NATS cluster survives losing one)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGINT or SIGTERM, how long to flush before closing anyway")
	fs.IntVar(&c.gcPercent, "gc-percent", 50, "heap growth, in `percent`, before the garbage collector runs (Go's GOGC, which wins if set and this is not; lower holds less memory per idle connection)")

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: chatbridge [flags]\n\n")
		fmt.Fprintf(out, "A chat server for telnet and browser users in the same rooms.\n")
		fmt.Fprintf(out, "Each flag can also be set by its environment variable, shown in brackets.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(out, " %s", name)
			}
			fmt.Fprintf(out, "  [%s]\n    \t%s", envName(f.Name), usage)
			// An empty or false default is "off", which the usage says;
			// "(default \"\")" would only be noise.
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}

	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := envName(f.Name)
		if v, ok := lookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	_, fromEnv := lookupEnv(envName("gc-percent"))
	c.gcPercentSet = set["gc-percent"] || fromEnv
	if err := c.check(); err != nil {
		return c, err
	}
	// check has refused what does not parse.
	c.defaultRoom, _ = tcpserver.RoomName(c.defaultRoom) // as /join folds it
	c.showAddresses.UnmarshalText([]byte(c.showAddrsFlag))
	c.speak, _ = tcpserver.ParseSpeak(c.speakFlag)
	c.trustedProxies, _ = bridge.ParseTrustedProxies(c.proxiesFlag)
	c.embedSources, _ = bridge.ParseEmbedOrigins(c.embedOrigins)
	c.allowHostList, _ = bridge.ParseAllowHosts(c.allowHosts)
	if c.sshAddr != "" && c.sshHostKey == "" {
		c.sshHostKey = filepath.Join(c.dataDir, "ssh_host_key") // check made sure of --data
	}
	return c, nil
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c config) check() error {
	var errs []error
	if c.tcpAddr == "" {
		errs = append(errs, errors.New("--tcp must not be empty"))
	}
	if _, err := tcpserver.RoomName(c.defaultRoom); err != nil {
		errs = append(errs, fmt.Errorf("--room: %w", err))
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.logFormat))
	}
	positive := map[string]int{"--max-line": c.maxLine, "--burst": c.burst, "--queue": c.queue, "--max-rooms": c.maxRooms, "--announce-limit": c.announceLimit}
	for _, name := range []string{"--max-line", "--burst", "--queue", "--max-rooms", "--announce-limit"} {
		if positive[name] <= 0 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", name))
		}
	}
	for _, b := range []struct {
		name    string
		v, most int
		why     string
	}{
		{"--max-line", c.maxLine, maxMaxLine, "bytes; every member's reader, queue and relayed message is sized by it"},
		{"--queue", c.queue, maxQueue, "messages a member; a slow reader holds them all"},
	} {
		if b.v > b.most {
			errs = append(errs, fmt.Errorf("%s %d: want 1 to %d (%s)", b.name, b.v, b.most, b.why))
		}
	}
	if c.gcPercent < 1 || c.gcPercent > maxGCPercent {
		// Go reads any negative as off: a server facing the internet
		// with no collector grows until it is killed. GOGC=off, with
		// GOMEMLIMIT, is there for whoever means it.
		errs = append(errs, fmt.Errorf("--gc-percent %d: want 1 to %d (to turn the collector off, leave this flag and set GOGC=off)", c.gcPercent, maxGCPercent))
	}
	if c.queueBytes != 0 && c.queueBytes < byteSize(16*max(c.maxLine, 1)) {
		errs = append(errs, fmt.Errorf("--queue-bytes must be 0 (no bound) or at least 16 lines of --max-line (%d bytes)", 16*max(c.maxLine, 1)))
	}
	if c.historyMemory < 1 {
		errs = append(errs, errors.New("--history-memory must be at least 1 byte (--history 0 keeps no history)"))
	}
	if c.history < 0 || c.maxClients < 0 || c.maxPerIP < 0 || c.roomRate < 0 {
		errs = append(errs, errors.New("--history, --max-clients, --max-per-ip and --room-rate must not be negative"))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.natsURL != "" {
		errs = append(errs, c.checkNATS()...)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"--nats-required", c.natsRequired}, {"--nats-node", c.natsNode != ""}, {"--nats-creds", c.natsCreds != ""}, {"--nats-ca", c.natsCA != ""},
		{"--cluster-secret", c.clusterSecret != ""}, {"--cluster-insecure", c.clusterInsecure},
	} {
		if f.set && c.natsURL == "" {
			errs = append(errs, fmt.Errorf("%s needs --nats", f.name))
		}
	}
	var show tcpserver.ShowAddrs
	if err := show.UnmarshalText([]byte(c.showAddrsFlag)); err != nil {
		errs = append(errs, fmt.Errorf("--show-addresses %w", err))
	}
	if _, err := bridge.ParseTrustedProxies(c.proxiesFlag); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies %w", err))
	}
	switch {
	case c.sshAddr != "" && c.sshHostKey == "" && c.dataDir == "":
		errs = append(errs, errors.New("--ssh needs --ssh-host-key FILE (made on first start if it does not exist), or --data"))
	case c.sshAddr == "" && c.sshHostKey != "":
		errs = append(errs, errors.New("--ssh-host-key needs --ssh"))
	}
	if _, err := bridge.ParseEmbedOrigins(c.embedOrigins); err != nil {
		errs = append(errs, fmt.Errorf("--embed-origins %w", err))
	}
	if _, err := bridge.ParseAllowHosts(c.allowHosts); err != nil {
		errs = append(errs, fmt.Errorf("--allow-host %w", err))
	}
	if c.metricsAddr != "" {
		if err := checkAddr(c.metricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-addr %q: %w", c.metricsAddr, err))
		}
	}
	if c.writeTimeout <= 0 || c.shutdownTimeout <= 0 {
		errs = append(errs, errors.New("--write-timeout and --shutdown-timeout must be positive"))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"--rate", c.rate}, {"--connect-rate", c.connectRate}, {"--private-rate", c.privateRate}, {"--private-rate-per-ip", c.privatePerIP}} {
		if !(r.v >= 0 && r.v <= maxRate) { // NaN too
			errs = append(errs, fmt.Errorf("%s %v: want a number from 0 (no limit) to %d", r.name, r.v, maxRate))
		}
	}
	if c.opPassword != "" && len(c.opPassword) < minOpPassword {
		// Its length only: the password itself is never shown.
		errs = append(errs, fmt.Errorf("--op-password must be at least %d bytes (it is %d)", minOpPassword, len(c.opPassword)))
	}
	if c.authSecret != "" && len(c.authSecret) < bridge.MinAuthSecret {
		// Its length only: the secret itself is never shown.
		errs = append(errs, fmt.Errorf("--auth-secret must be at least %d bytes (it is %d)", bridge.MinAuthSecret, len(c.authSecret)))
	}
	if _, err := tcpserver.ParseSpeak(c.speakFlag); err != nil {
		errs = append(errs, fmt.Errorf("--%v", err))
	}
	if c.historyKeep < 1 || c.historyKeep > maxHistoryKeep {
		errs = append(errs, fmt.Errorf("--history-keep %d: want 1 to %d", c.historyKeep, maxHistoryKeep))
	}
	if c.historyAge < 0 || c.historyAge > 0 && c.historyAge < time.Second {
		errs = append(errs, fmt.Errorf("--history-age %v: want 0 (no limit) or at least 1s", c.historyAge))
	}
	if c.natsReplicas < 1 || c.natsReplicas > 5 {
		errs = append(errs, fmt.Errorf("--nats-replicas %d: want 1 to 5", c.natsReplicas))
	} else if c.natsReplicas > 1 && c.natsURL == "" {
		errs = append(errs, errors.New("--nats-replicas needs --nats (a NATS cluster; --data alone is one server)"))
	}
	if c.announceDelay < 0 || c.announceDelay > maxAnnounceDelay {
		errs = append(errs, fmt.Errorf("--announce-delay %v: want 0 (at once) to %v", c.announceDelay, maxAnnounceDelay))
	}
	return errors.Join(errs...)
}

// minOpPassword is the shortest --op-password: wrong guesses are limited
// per address, but addresses are many.
const minOpPassword = 12

// Bounds of the rate and delay flags: past them a value is a mistake
// (and a burst of ten times 1e308 no number at all).
const (
	maxRate          = 1_000_000
	maxAnnounceDelay = time.Hour
	maxHistoryKeep   = 10_000_000
)

// Bounds of the size flags: past them a value is a misconfiguration that
// can run the process out of memory. A line of 64 KiB is sixteen times
// the default, and the longest message relayed for it (a private one,
// four times a line) fits NATS's default payload of 1 MiB; a queue of
// 65,536 is 64 times the default; and at 10,000 percent the heap grows a
// hundredfold between collections, as good as off.
const (
	maxMaxLine   = 64 << 10
	maxQueue     = 1 << 16
	maxGCPercent = 10_000
)

// burstOf is the burst that goes with a rate: times its rate, at least 1.
func burstOf(rate float64, times int) int {
	return max(int(math.Ceil(rate*float64(times))), 1)
}

// checkAddr says what is wrong with addr as a listener's address: it
// must be host:port (the host may be empty, for every interface) with a
// port number, not 0, which would pick a port nobody knows.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %q: want a number from 1 to 65535", port)
	}
	return nil
}

// checkNATS checks the flags of a node that joins others through NATS.
func (c config) checkNATS() []error {
	var errs []error
	for _, u := range strings.Split(c.natsURL, ",") {
		if err := checkNATSURL(strings.TrimSpace(u)); err != nil {
			errs = append(errs, err)
		}
	}
	if !validPrefix(c.natsPrefix) {
		errs = append(errs, fmt.Errorf("--nats-prefix %q: use letters, digits, - or _", c.natsPrefix))
	}
	if c.natsNode != "" && !tcpserver.ValidName(c.natsNode, natsrelay.MaxNodeID) {
		errs = append(errs, fmt.Errorf("--nats-node %q: use letters, digits, - or _, at most %d", c.natsNode, natsrelay.MaxNodeID))
	}
	switch {
	case c.clusterSecret != "" && c.clusterInsecure:
		errs = append(errs, errors.New("--cluster-secret and --cluster-insecure do not go together"))
	case c.clusterInsecure:
	case c.clusterSecret == "":
		errs = append(errs, errors.New("--nats needs --cluster-secret (the same on every node), or --cluster-insecure on a NATS nothing but the nodes can reach"))
	case len(c.clusterSecret) < natsrelay.MinSecret:
		errs = append(errs, fmt.Errorf("--cluster-secret must be at least %d bytes", natsrelay.MinSecret))
	}
	return errs
}

// checkNATSURL checks one of the URLs of --nats, which may hold a
// password: errors show it redacted.
func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("--nats %q: not a URL", natsrelay.RedactURL(s))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("--nats %q: want nats://, tls://, ws:// or wss://HOST:PORT", natsrelay.RedactURL(s))
	}
	if u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return fmt.Errorf("--nats %q: want nats://, tls://, ws:// or wss://HOST:PORT", natsrelay.RedactURL(s))
	}
	return nil
}

// validPrefix reports whether s can start NATS subjects and name a stream.
func validPrefix(s string) bool {
	return s != "" && len(s) <= 32 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// levelFlag is --log-level: slog's level names, shown in lower case as
// the usage asks for them (slog.Level itself says "INFO").
type levelFlag slog.Level

func (l *levelFlag) Set(s string) error { return (*slog.Level)(l).UnmarshalText([]byte(s)) }

func (l *levelFlag) String() string { return strings.ToLower(slog.Level(*l).String()) }

// byteSize is a flag's number of bytes: plain, or with a binary suffix
// (64MiB).
type byteSize int64

type byteUnit struct {
	suffix string
	size   int64
}

func byteUnits() []byteUnit { return []byteUnit{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} }

func (b *byteSize) Set(s string) error {
	num, unit := s, int64(1)
	for _, u := range byteUnits() {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, unit = n, u.size
			break
		}
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return fmt.Errorf("want a number of bytes, such as 67108864 or 64MiB (suffixes KiB, MiB, GiB)")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return fmt.Errorf("%s bytes is too many", s)
	}
	*b = byteSize(n * unit)
	return nil
}

func (b *byteSize) String() string {
	for _, u := range byteUnits() {
		if *b != 0 && int64(*b)%u.size == 0 {
			return strconv.FormatInt(int64(*b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

// noLimit turns the command line's "0: no limit" into the hub's -1.
func noLimit[T int | float64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
