package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsServer serves /metrics alone, on a listener of its own, such as
// one on loopback for the scraper only (see Config.MetricsApart). Any
// other path is 404.
type MetricsServer struct {
	http *http.Server

	mu       sync.Mutex
	shutdown bool // Shutdown was called
}

// MetricsServer returns a server of s's metrics; it knows nothing of the
// WebSockets, and its Serve and Shutdown are its own.
func (s *Server) MetricsServer() *MetricsServer {
	r := newRouter()
	r.route("/metrics", s.metricsHandler(), http.MethodGet, http.MethodHead)
	return &MetricsServer{http: &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}}
}

// Serve serves HTTP on l until Shutdown is called, when it returns
// ErrServerClosed, or ctx is done, when it closes every connection at
// once and returns ctx.Err().
func (m *MetricsServer) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { m.http.Close() })
	defer stop()
	err := m.http.Serve(l)
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics on %s: %w", l.Addr(), err)
	}
	m.mu.Lock()
	shutdown := m.shutdown
	m.mu.Unlock()
	if !shutdown && ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrServerClosed
}

// Shutdown stops accepting and waits for the scrapes in progress; if ctx
// ends first, it closes them and returns ctx.Err().
func (m *MetricsServer) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.shutdown = true
	m.mu.Unlock()
	if err := m.http.Shutdown(ctx); err != nil {
		m.http.Close()
		return fmt.Errorf("shut down metrics: %w", err)
	}
	return nil
}

// metricsHandler serves /metrics from a registry of the server's own (the
// default registry is a global): the hub's counters, read at scrape time,
// and the Go runtime's and the process's.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newHubCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	reg.MustRegister(s.cfg.Collectors...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{s},
	})
}

// hubCollector turns [tcpserver.Hub.Stats] into metrics when scraped, so
// that the hub keeps plain atomic counters and knows nothing of
// Prometheus.
type hubCollector struct {
	srv *Server

	clients, rooms                         *prometheus.Desc
	linesIn, deliveries, refused, rejected *prometheus.Desc
	slowKicks, floodKicks, connections     *prometheus.Desc
	roomBusy                               *prometheus.Desc
	handshakeFailures                      *prometheus.Desc
	privateRefused                         *prometheus.Desc
	moderation, opFailures, banned         *prometheus.Desc
	passwordFailures                       *prometheus.Desc
	authRefused                            *prometheus.Desc
}

func newHubCollector(s *Server) *hubCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("chatbridge_"+name, help, labels, nil)
	}
	return &hubCollector{
		srv:               s,
		clients:           d("clients", "Members connected now, by transport (tcp, ws, ssh).", "transport"),
		rooms:             d("rooms", "Rooms kept now, empty ones included."),
		linesIn:           d("lines_in_total", "Lines accepted from members (messages in)."),
		deliveries:        d("deliveries_total", "Events handed to members' outbound queues (messages out)."),
		refused:           d("lines_refused_total", "Lines dropped: over the flood limit, too long, or not understood."),
		rejected:          d("connections_rejected_total", "Connections refused by --max-clients or --max-per-ip."),
		slowKicks:         d("slow_consumer_disconnects_total", "Members cut off for not reading fast enough."),
		floodKicks:        d("flood_disconnects_total", "Members cut off for flooding."),
		connections:       d("connections_total", "Members admitted since start."),
		roomBusy:          d("room_busy_lines_total", "Lines refused because their room's output budget (--room-rate, --room-bytes) was spent."),
		handshakeFailures: d("websocket_handshake_failures_total", "WebSocket upgrades refused: foreign origin or bad handshake."),
		privateRefused:    d("private_refused_total", "Private messages not delivered: over the recipient's rate (rate), over its rate from the sender's address (per_ip), or its queue half full (queue).", "reason"),
		moderation:        d("moderation_actions_total", "Operators' actions taken, by command (kick, ban, mute, topic, ...).", "action"),
		opFailures:        d("op_password_failures_total", "Wrong passwords given to /op."),
		banned:            d("connections_banned_total", "Connections refused because their address is banned."),
		passwordFailures:  d("account_password_failures_total", "Wrong passwords given for registered names (/identify, /nick NAME PASSWORD, /password, /unregister)."),
		authRefused:       d("auth_refused_total", "WebSocket connections refused for their sign-in token (--auth-secret): bad, expired, too long, or none expected."),
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.clients, c.rooms, c.linesIn, c.deliveries, c.refused, c.rejected,
		c.slowKicks, c.floodKicks, c.connections, c.roomBusy, c.handshakeFailures, c.privateRefused,
		c.moderation, c.opFailures, c.banned, c.passwordFailures, c.authRefused,
	} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.hub.Stats()
	clients := map[string]int{"tcp": 0, "ws": 0}
	for t, n := range st.Clients {
		clients[t] = n
	}
	transports := make([]string, 0, len(clients))
	for t := range clients {
		transports = append(transports, t)
	}
	sort.Strings(transports)
	for _, t := range transports {
		ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(clients[t]), t)
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.rooms, st.Rooms)
	counter(c.linesIn, st.LinesIn)
	counter(c.deliveries, st.Deliveries)
	counter(c.refused, st.Refused)
	counter(c.rejected, st.Rejected)
	counter(c.slowKicks, st.SlowKicks)
	counter(c.floodKicks, st.FloodKicks)
	counter(c.connections, st.Connections)
	counter(c.roomBusy, st.RoomBusy)
	counter(c.handshakeFailures, c.srv.handshakeFailures.Load())
	for reason, n := range map[string]uint64{"rate": st.PrivateRefusedRate, "per_ip": st.PrivateRefusedPerIP, "queue": st.PrivateRefusedFull} {
		ch <- prometheus.MustNewConstMetric(c.privateRefused, prometheus.CounterValue, float64(n), reason)
	}
	for action, n := range st.Moderation {
		ch <- prometheus.MustNewConstMetric(c.moderation, prometheus.CounterValue, float64(n), action)
	}
	counter(c.opFailures, st.OpFailures)
	counter(c.authRefused, c.srv.authRefused.Load())
	counter(c.banned, st.Banned)
	counter(c.passwordFailures, st.PasswordFailures)
}

// slogPrinter adapts the server's logger to promhttp's error log.
type slogPrinter struct{ srv *Server }

func (p slogPrinter) Println(v ...any) {
	p.srv.log.Warn("metrics", "err", v)
}
