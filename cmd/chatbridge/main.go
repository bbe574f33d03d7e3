// Command chatbridge runs the chat: telnet and nc users on --tcp, browser
// users on --http, SSH users on --ssh, all in the same rooms, and
// optionally the seed's echo service on --echo. Run it with --help for
// the flags.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"chatbridge/bridge"
	"chatbridge/tcpserver"
	"chatbridge/tcpserver/natsrelay"
	"chatbridge/tcpserver/sshdoor"
	"chatbridge/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stderr)
	stop()
	os.Exit(code)
}

// A service is one listening server of the binary.
type service struct {
	name     string // what it serves, for logs and errors
	addr     string
	serve    func(context.Context, net.Listener) error
	shutdown func(context.Context) error
	refuse   tcpserver.Refusal // what a connection over the limits is told

	unlimited bool // its connections are not counted against the limits
}

// run starts every configured server, waits for ctx to end (a signal) or
// for a server to fail, shuts them all down and returns the exit code.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	cfg, err := parseConfig(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "chatbridge: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if _, gogc := lookupEnv("GOGC"); cfg.gcPercentSet || !gogc {
		// Idle connections are most of what the heap holds, and the
		// runtime keeps about the heap's growth allowance resident: 50
		// instead of Go's 100 takes about a third off an idle member's
		// RSS, for a collector that has little to do (a delivery
		// allocates nothing).
		debug.SetGCPercent(cfg.gcPercent)
	}

	// --data alone: an embedded NATS server, which makes this node a
	// cluster of one, so the relay serves its history and state as it
	// serves a cluster's.
	var embedded *natsrelay.Embedded
	if cfg.dataDir != "" && cfg.natsURL == "" {
		embedded, err = natsrelay.StartEmbedded(natsrelay.EmbedConfig{Dir: filepath.Join(cfg.dataDir, "nats")}, log)
		if err != nil {
			fmt.Fprintf(stderr, "chatbridge: --data: %v\n", err)
			return 1
		}
		defer embedded.Shutdown()
	}
	nodeID := cfg.natsNode
	if nodeID == "" && cfg.dataDir != "" {
		// The same ID at every start: it tells this node's own lines
		// in the stream from the others'.
		if nodeID, err = dataNodeID(cfg.dataDir); err != nil {
			fmt.Fprintf(stderr, "chatbridge: --data: %v\n", err)
			return 1
		}
	}

	var relay *natsrelay.Relay
	if cfg.natsURL != "" || embedded != nil {
		// Presence shows at most this many members of one other node;
		// give every node the same --max-clients.
		maxMembers := cfg.maxClients
		if maxMembers == 0 {
			maxMembers = 1_000_000
		}
		rcfg := natsrelay.Config{
			URL:         cfg.natsURL,
			Prefix:      cfg.natsPrefix,
			NodeID:      nodeID,
			Required:    cfg.natsRequired,
			History:     max(cfg.history, 1),
			HistoryKeep: cfg.historyKeep,
			HistoryAge:  cfg.historyAge,
			Replicas:    cfg.natsReplicas,
			Secret:      []byte(cfg.clusterSecret),
			Insecure:    cfg.clusterInsecure,
			Creds:       cfg.natsCreds,
			CAFile:      cfg.natsCA,
			MaxLine:     cfg.maxLine,
			MaxMembers:  maxMembers,
		}
		if embedded != nil {
			// Nothing but this process can reach it: no secret to keep.
			rcfg.InProcess, rcfg.Insecure, rcfg.Required, rcfg.Alone = embedded.Server(), true, true, true
		}
		relay, err = natsrelay.New(rcfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "chatbridge: --nats: %v\n", err)
			return 2
		}
		if cfg.clusterInsecure {
			log.Warn("--cluster-insecure: the nodes do not authenticate each other; any client of NATS can speak as a node, " +
				"read private messages and take names. Run so only on a NATS nothing but the nodes can reach, and see \"Securing NATS\" in the README")
		}
	}
	hubCfg := tcpserver.HubConfig{
		DefaultRoom:   cfg.defaultRoom,
		History:       noLimit(cfg.history),
		HistoryMemory: int64(cfg.historyMemory),
		HistoryKeep:   cfg.historyKeep,
		MaxLine:       cfg.maxLine,
		Rate:          noLimit(cfg.rate),
		Burst:         cfg.burst,
		MaxClients:    noLimit(cfg.maxClients),
		MaxPerIP:      noLimit(cfg.maxPerIP),
		MaxRooms:      cfg.maxRooms,
		AnnounceLimit: cfg.announceLimit,
		AnnounceDelay: noLimit(cfg.announceDelay),
		RoomRate:      noLimit(float64(cfg.roomRate)),
		RoomBytes:     noLimit(float64(cfg.roomBytes)),
		ShowAddresses: cfg.showAddresses,

		PrivateRate:       noLimit(cfg.privateRate),
		PrivateBurst:      burstOf(cfg.privateRate, 4),
		PrivateRatePerIP:  noLimit(cfg.privatePerIP),
		PrivateBurstPerIP: burstOf(cfg.privatePerIP, 4),

		OpPassword: cfg.opPassword,
		Speak:      cfg.speak,
	}
	if relay != nil {
		hubCfg.Relay = relay // not a nil *Relay in the interface
		// The history stream keeps the rooms' lines (for scrollback and
		// restarts) and the buckets moderation's records, on one node
		// (--data) as on many (--nats).
		hubCfg.Store, hubCfg.State = relay.Store(), relay
	}
	hub := tcpserver.NewHub(hubCfg, log)

	// Every connection on every listener counts against --max-clients,
	// --max-per-ip and --connect-rate from the moment it is accepted,
	// member or not. Trusted proxies carry many visitors each: the hub
	// counts those by the address the proxy names (see
	// bridge.Config.TrustedProxies).
	limiter := tcpserver.NewConnLimiter(tcpserver.ConnLimits{
		MaxConns: cfg.maxClients, MaxPerIP: cfg.maxPerIP, Exempt: cfg.trustedProxies,
		ConnectRate: cfg.connectRate, ConnectBurst: burstOf(cfg.connectRate, 10), Log: log,
	})

	chat := tcpserver.New(hub, tcpserver.Config{Queue: cfg.queue, QueueBytes: noLimit(int(cfg.queueBytes)), WriteTimeout: cfg.writeTimeout, SendBuffer: cfg.sendBuffer}, log)
	services := []service{{name: "telnet chat", addr: cfg.tcpAddr, serve: chat.Serve, shutdown: chat.Shutdown, refuse: chat.Refusal}}
	if cfg.echoAddr != "" {
		echo := tcpserver.NewEcho(tcpserver.EchoConfig{MaxLine: cfg.maxLine, WriteTimeout: cfg.writeTimeout}, log)
		services = append(services, service{name: "echo", addr: cfg.echoAddr, serve: echo.Serve, shutdown: echo.Shutdown, refuse: echo.Refusal})
	}
	if cfg.sshAddr != "" {
		key, created, err := sshdoor.HostKey(cfg.sshHostKey)
		if err != nil {
			fmt.Fprintf(stderr, "chatbridge: --ssh-host-key: %v\n", err)
			return 2
		}
		if created {
			log.Info("made a new SSH host key", "file", cfg.sshHostKey)
		}
		door, err := sshdoor.New(hub, sshdoor.Config{HostKey: key, Queue: cfg.queue, QueueBytes: noLimit(int(cfg.queueBytes)), WriteTimeout: cfg.writeTimeout, SendBuffer: cfg.sendBuffer}, log)
		if err != nil {
			fmt.Fprintf(stderr, "chatbridge: --ssh: %v\n", err)
			return 2
		}
		log.Info("SSH host key", "fingerprint", ssh.FingerprintSHA256(key.PublicKey()))
		services = append(services, service{name: "ssh", addr: cfg.sshAddr, serve: door.Serve, shutdown: door.Shutdown, refuse: door.Refusal})
	}
	if cfg.httpAddr != "" && cfg.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey); err != nil {
			fmt.Fprintf(stderr, "chatbridge: --tls-cert/--tls-key: %v\n", err)
			return 2
		}
	}
	if cfg.httpAddr != "" || cfg.metricsAddr != "" {
		// The metrics are the bridge's, even with no web page to serve.
		site := bridge.New(hub, bridge.Config{
			Queue:          cfg.queue,
			QueueBytes:     noLimit(int(cfg.queueBytes)),
			WriteTimeout:   cfg.writeTimeout,
			SendBuffer:     cfg.sendBuffer,
			AllowOrigins:   list(cfg.allowOrigins),
			EmbedOrigins:   cfg.embedSources,
			AllowHosts:     cfg.allowHostList,
			TrustedProxies: cfg.trustedProxies,
			TLSCertFile:    cfg.tlsCert,
			TLSKeyFile:     cfg.tlsKey,
			Web:            web.Handler(),
			Collectors:     append(relayCollectors(relay), limiterCollectors(limiter)...),
			MetricsApart:   cfg.metricsAddr != "",
			AuthSecret:     []byte(cfg.authSecret),
		}, log)
		if cfg.httpAddr != "" {
			name := "web (http)"
			if cfg.tlsCert != "" {
				name = "web (https)"
			}
			services = append(services, service{name: name, addr: cfg.httpAddr, serve: site.Serve, shutdown: site.Shutdown, refuse: site.Refusal})
		}
		if cfg.metricsAddr != "" {
			m := site.MetricsServer()
			// Not limited: the operator's scraper must get in while an
			// attack fills every other port.
			services = append(services, service{name: "metrics", addr: cfg.metricsAddr, serve: m.Serve, shutdown: m.Shutdown, unlimited: true})
		}
	}

	// Bind everything before serving anything, so that a taken port fails
	// the start cleanly.
	listeners := make([]net.Listener, 0, len(services))
	for _, s := range services {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			fmt.Fprintf(stderr, "chatbridge: cannot listen for %s on %q: %v\n", s.name, s.addr, err)
			return 1
		}
		if !s.unlimited {
			l = limiter.Listen(l, s.refuse)
		}
		listeners = append(listeners, l)
	}
	if relay != nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := relay.Start(sctx, hub)
		cancel()
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			fmt.Fprintf(stderr, "chatbridge: --nats: %v\n", err)
			return 1
		}
		if embedded != nil {
			log.Info("keeping rooms and state", "data", cfg.dataDir, "node", relay.NodeID(), "history_keep", cfg.historyKeep)
		} else {
			log.Info("relaying through NATS", "url", natsrelay.RedactURL(cfg.natsURL), "prefix", cfg.natsPrefix, "node", relay.NodeID(),
				"authenticated", !cfg.clusterInsecure, "replicas", cfg.natsReplicas)
		}
	}

	// Bans, mutes, topics, modes and registered names: loaded from the
	// state store (the relay's buckets, once it is connected), and kept
	// in step with it, and so with the other nodes, until the end.
	stateCtx, stopState := context.WithCancel(context.Background())
	defer stopState()
	if err := startModeration(stateCtx, hub, relay != nil, log); err != nil {
		for _, l := range listeners {
			l.Close()
		}
		fmt.Fprintf(stderr, "chatbridge: moderation state: %v\n", err)
		return 1
	}

	if st := limiter.Stats(); st.Max > 0 && (cfg.maxClients == 0 || cfg.maxClients > st.Max) {
		log.Info("connections capped by the open-file limit, less descriptors kept in reserve", "max_connections", st.Max)
	}
	var wg sync.WaitGroup
	failed := make(chan error, len(services))
	for i, s := range services {
		l := listeners[i]
		log.Info("listening", "service", s.name, "addr", l.Addr().String())
		wg.Go(func() {
			if err := s.serve(context.Background(), l); !errors.Is(err, tcpserver.ErrServerClosed) {
				failed <- fmt.Errorf("%s: %w", s.name, err)
			}
		})
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.shutdownTimeout)
	case err := <-failed:
		log.Error("server failed", "err", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	var down sync.WaitGroup
	for _, s := range services {
		down.Go(func() {
			if err := s.shutdown(sctx); err != nil {
				log.Warn("shutdown cut short", "service", s.name, "err", err)
			}
		})
	}
	down.Wait()
	wg.Wait()
	if relay != nil {
		relay.Close() // after the servers, so that their members' leaves go out
	}
	log.Info("stopped")
	return code
}

// dataNodeID returns the node ID kept in dir, made at the first start.
func dataNodeID(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	file := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(file)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !tcpserver.ValidName(id, natsrelay.MaxNodeID) {
			return "", fmt.Errorf("%s: %q is not a node ID (letters, digits, - or _); fix or delete it", file, id)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node ID: %w", err)
	}
	var r [6]byte
	rand.Read(r[:])
	id := "n" + hex.EncodeToString(r[:])
	if err := os.WriteFile(file, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node ID: %w", err)
	}
	return id, nil
}

// relayCollectors is the relay's metrics for /metrics, if there is a relay.
func relayCollectors(r *natsrelay.Relay) []prometheus.Collector {
	if r == nil {
		return nil
	}
	return []prometheus.Collector{r.Collector()}
}

// limiterCollectors is the connection limiter's metrics for /metrics.
func limiterCollectors(l *tcpserver.ConnLimiter) []prometheus.Collector {
	refused := func(read func(tcpserver.ConnStats) uint64) func() float64 {
		return func() float64 { return float64(read(l.Stats())) }
	}
	help := "Connections refused at accept, before any protocol: the server full, too many open from one address, or too many opened from one address a second."
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatbridge_connections_open", Help: "Connections open on every listener, members or not."},
			func() float64 { return float64(l.Stats().Open) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatbridge_connections_refused_total", Help: help, ConstLabels: prometheus.Labels{"reason": "full"}},
			refused(func(s tcpserver.ConnStats) uint64 { return s.RefusedFull })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatbridge_connections_refused_total", Help: help, ConstLabels: prometheus.Labels{"reason": "per_ip"}},
			refused(func(s tcpserver.ConnStats) uint64 { return s.RefusedPerIP })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chatbridge_connections_refused_total", Help: help, ConstLabels: prometheus.Labels{"reason": "rate"}},
			refused(func(s tcpserver.ConnStats) uint64 { return s.RefusedRate })),
	}
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(cfg.logLevel)}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// startModeration loads moderation's records and keeps them in step.
// Through a relay (retry), whose NATS may be out of reach or still
// electing the leaders of a new bucket, they are loaded when they can
// be: until then the server runs with none, and says so; a later try
// ends its failed one's watches first. The memory store loads at once.
func startModeration(ctx context.Context, hub *tcpserver.Hub, retry bool, log *slog.Logger) error {
	try := func() (context.CancelFunc, error) {
		tctx, cancel := context.WithCancel(ctx)
		if err := hub.Moderation().Start(tctx); err != nil {
			cancel()
			return nil, err
		}
		return cancel, nil
	}
	stop, err := try()
	if err == nil || !retry {
		if stop != nil {
			context.AfterFunc(ctx, stop)
		}
		return err
	}
	log.Warn("moderation state not loaded yet; trying again while NATS is out of reach", "err", err)
	go func() { // ends with ctx, or once loaded
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(3 * time.Second):
			}
			if stop, err := try(); err == nil {
				context.AfterFunc(ctx, stop)
				log.Info("moderation state loaded")
				return
			}
		}
	}()
	return nil
}
