package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"chatbridge/tcpserver"
	"chatbridge/tcpserver/idlepoll"
)

// JSONProtocol is the WebSocket subprotocol of the JSON events. A client
// that does not ask for it speaks plain lines.
const JSONProtocol = "chatbridge.v1.json"

// ErrServerClosed is returned by Serve after Shutdown. It is the TCP
// server's, so that one check covers every server of the binary.
var ErrServerClosed = tcpserver.ErrServerClosed

// Config holds the bridge's settings. Zero fields take the defaults in
// brackets.
type Config struct {
	Queue        int           // events queued for a member before it is cut off as too slow [1024]
	QueueBytes   int           // bytes queued and being written for a member before it is cut off as too slow [tcpserver.DefaultQueueBytes; negative: no bound]
	WriteTimeout time.Duration // longest one write to a member may take before it is cut off, at least three quarters of it [10s]
	PingInterval time.Duration // how often each WebSocket is pinged [30s]
	PongTimeout  time.Duration // how long the pong may take before the connection is dropped [10s]
	SendBuffer   int           // each connection's kernel send buffer cap, bytes [tcpserver.DefaultSendBuffer; negative: the kernel's]

	// A connection that is not (yet) a chat member has a bounded life:
	// its request, body included, must arrive within RequestTimeout [20s]
	// (the headers within 10 s), the answer must be written within
	// WriteTimeout, and a keep-alive connection may wait IdleTimeout [30s]
	// for its next request. A WebSocket is rid of these at the upgrade.
	RequestTimeout time.Duration
	IdleTimeout    time.Duration

	// AllowOrigins lists the other origins whose pages may open /ws, as
	// patterns of host (or of scheme://host) in path.Match syntax:
	// "docs.example.com", "*.example.com". The server's own origin is
	// always allowed; any other is refused with 403 before the upgrade.
	AllowOrigins []string

	// EmbedOrigins are the CSP frame-ancestors sources of /embed, the
	// sites that may frame it [*], in the forms ParseEmbedOrigins takes;
	// if any is not, nobody may frame it. The full page may only be
	// framed by its own origin.
	EmbedOrigins []string

	// AllowHosts, if not empty, are the only host names the server
	// answers to (see ParseAllowHosts); a request naming any other gets
	// 421, except /healthz (see checkHost).
	AllowHosts []string

	// TrustedProxies are the reverse proxies whose X-Forwarded-For or
	// Forwarded header says who the client is (see Server.clientAddr);
	// from any other peer those headers are ignored. Empty: none.
	TrustedProxies []netip.Prefix

	// TLSCertFile and TLSKeyFile, if set, make Serve speak HTTPS (and so
	// WSS) with that certificate and key.
	TLSCertFile, TLSKeyFile string

	// Web serves the page: /, /embed and the files they load (package
	// web). Nil serves no page.
	Web http.Handler

	// Collectors are more metrics for /metrics, such as a relay's.
	Collectors []prometheus.Collector

	// MetricsApart takes /metrics off the server's routes: it is then
	// served only by a MetricsServer, on a listener of its own.
	MetricsApart bool

	// AuthSecret, if set, is the HS256 key of the sign-in tokens a site
	// gives its readers (/ws?token=JWT; see auth.go), at least
	// MinAuthSecret bytes. Empty: a token is refused.
	AuthSecret []byte
}

func (c Config) withDefaults() Config {
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = tcpserver.DefaultQueueBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = tcpserver.DefaultSendBuffer
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 20 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if len(c.EmbedOrigins) == 0 {
		c.EmbedOrigins = []string{"*"}
	}
	return c
}

// Server is the web side of chatbridge: the page, the WebSocket bridge to
// the hub, /healthz and /metrics, on one HTTP server.
//
// Each WebSocket connection costs one goroutine, its reader, while idle;
// its writer runs only while there is something to send (see wsConn).
// The HTTP handler returns as soon as the connection is upgraded.
type Server struct {
	hub    *tcpserver.Hub
	cfg    Config
	log    *slog.Logger
	router http.Handler
	http   *http.Server

	// logs takes what an attack makes many of (failed accepts,
	// handshakes and members refused): a line per kind per LogEvery.
	logs *tcpserver.LogThrottle

	readLimitPlain, readLimitJSON int64
	readBufs                      sync.Pool // *[]byte, for one message at a time
	corkBufs                      sync.Pool // *[]byte, see wireConn
	aheadBufs                     sync.Pool // *[]byte, see wireConn

	handshakeFailures atomic.Uint64
	authRefused       atomic.Uint64 // sign-in tokens refused (auth.go)

	mu       sync.Mutex
	conns    map[*wsConn]struct{}
	closed   bool           // no new WebSocket is taken
	shutdown bool           // Shutdown was called
	wg       sync.WaitGroup // a reader goroutine, or a parked reader, per WebSocket
	idle     idlepoll.Lazy  // parks idle WebSockets while Serve runs

	keepalive *keepalive // pings every WebSocket
}

// New returns a bridge whose WebSocket users join hub.
func New(hub *tcpserver.Hub, cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		hub:   hub,
		cfg:   cfg.withDefaults(),
		log:   log,
		logs:  tcpserver.NewLogThrottle(log, tcpserver.LogEvery),
		conns: make(map[*wsConn]struct{}),
	}
	s.keepalive = newKeepalive(s.cfg.PingInterval, s.cfg.PongTimeout)
	// A plain frame is a line, perhaps with its line end; a JSON frame
	// has room for the envelope and for escapes in the text. The hub
	// still applies its own limit to the text.
	maxLine := int64(hub.Config().MaxLine)
	s.readLimitPlain = maxLine + 2
	s.readLimitJSON = 2*maxLine + 256
	bufSize := int(max(s.readLimitPlain, s.readLimitJSON)) + 2
	s.readBufs.New = func() any {
		b := make([]byte, bufSize)
		return &b
	}
	s.corkBufs.New = func() any {
		b := make([]byte, 0, 4096)
		return &b
	}
	s.aheadBufs.New = func() any {
		b := make([]byte, aheadSize)
		return &b
	}

	s.router = s.routes()
	var protocols http.Protocols
	protocols.SetHTTP1(true) // WebSocket needs HTTP/1.1's Upgrade; no HTTP/2
	s.http = &http.Server{
		Handler:           s.router,
		Protocols:         &protocols,
		ReadHeaderTimeout: min(10*time.Second, s.cfg.RequestTimeout),
		ReadTimeout:       s.cfg.RequestTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          stdlog.New(httpErrors{s}, "", 0),
	}
	return s
}

// httpErrors takes what net/http logs. Its accept errors (out of
// descriptors, most likely) are logged at warn, a line per LogEvery, as
// the TCP server's are; the rest (a TLS handshake that failed, ...) at
// debug, as they come.
type httpErrors struct{ s *Server }

// acceptError starts what net/http logs when accepting fails.
const acceptError = "http: Accept error: "

func (h httpErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if err, ok := strings.CutPrefix(msg, acceptError); ok {
		h.s.logs.Log(slog.LevelWarn, "failed accepts on the web port", "accept failed; retrying", "service", "http", "err", err)
	} else {
		h.s.log.Debug(msg)
	}
	return len(p), nil
}

// Handler returns the server's routes, for tests and for mounting
// elsewhere. WebSocket connections it accepts are still the Server's:
// Shutdown closes them.
func (s *Server) Handler() http.Handler { return s.router }

// Serve serves HTTP (HTTPS if the Config has a certificate) on l until
// Shutdown is called, when it returns ErrServerClosed, or ctx is done,
// when it closes every connection at once and returns ctx.Err(). It
// waits for every WebSocket it accepted to be finished before it returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.mu.Unlock()
	if err := s.idle.Acquire(); err != nil {
		s.log.Debug("idle WebSockets keep a goroutine each", "why", err)
	}
	defer s.idle.Release() // after s.wg.Wait: no reader is parked any more

	stop := context.AfterFunc(ctx, s.closeAllNow)
	defer stop()

	var err error
	if s.cfg.TLSCertFile != "" || s.cfg.TLSKeyFile != "" {
		err = s.http.ServeTLS(l, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	} else {
		err = s.http.Serve(l)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		s.closeAllNow()
		s.wg.Wait()
		return fmt.Errorf("serve http on %s: %w", l.Addr(), err)
	}
	s.wg.Wait()
	s.mu.Lock()
	shutdown := s.shutdown
	s.mu.Unlock()
	if !shutdown && ctx.Err() != nil {
		return ctx.Err()
	}
	return ErrServerClosed
}

// Refusal is what a connection refused at accept (see
// tcpserver.ConnLimiter) is told: a 503 saying why, without waiting for
// the request. A browser's WebSocket sees its handshake fail. Over TLS
// there is nothing to say before the handshake: the connection is just
// closed.
func (s *Server) Refusal(reason string) []byte {
	if s.cfg.TLSCertFile != "" {
		return nil
	}
	body := reason + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: %d\r\nConnection: close\r\nRetry-After: 10\r\nX-Content-Type-Options: nosniff\r\n\r\n%s", len(body), body)
}

// Shutdown stops accepting, sends every WebSocket what is queued for it
// and then a close frame (1001, "server shutting down"), waits for the
// page requests in progress and for every WebSocket to be closed. If ctx
// ends first, it closes the rest at once and returns ctx.Err().
//
// http.Server.Shutdown alone would not do: it does not know the hijacked
// WebSocket connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed, s.shutdown = true, true
	conns := s.snapshotLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(reasonShutdown)
	}

	herr := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		if herr != nil {
			return fmt.Errorf("shut down http: %w", herr)
		}
		return nil
	case <-ctx.Done():
		s.closeAllNow()
		<-done
		return ctx.Err()
	}
}

// closeAllNow drops every connection, page requests and WebSockets alike.
func (s *Server) closeAllNow() {
	s.mu.Lock()
	s.closed = true
	conns := s.snapshotLocked()
	s.mu.Unlock()
	s.http.Close()
	for _, c := range conns {
		c.wire.closeNow()
	}
}

func (s *Server) snapshotLocked() []*wsConn {
	list := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		list = append(list, c)
	}
	return list
}

// add counts in a WebSocket handshake; it reports false once the server
// is shutting down.
func (s *Server) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// track makes c reachable by Shutdown; it reports false once the server is
// shutting down.
func (s *Server) track(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *wsConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) routes() http.Handler {
	var r *router
	if len(s.cfg.AllowHosts) > 0 {
		allow := s.cfg.AllowHosts
		r = newRouter(func(next http.Handler) http.Handler { return checkHost(allow, next) })
	} else {
		r = newRouter()
	}
	r.route("/ws", http.HandlerFunc(s.serveWS), http.MethodGet)
	r.route("/healthz", http.HandlerFunc(healthz), http.MethodGet, http.MethodHead)
	if !s.cfg.MetricsApart {
		r.route("/metrics", s.metricsHandler(), http.MethodGet, http.MethodHead)
	}

	web := s.cfg.Web
	if web == nil {
		web = http.NotFoundHandler()
	}
	pageCSP := cspBase + "'self'"
	sources, err := ParseEmbedOrigins(strings.Join(s.cfg.EmbedOrigins, " "))
	if err != nil {
		// The command line refuses these at start; a Config made in code
		// gets the same rule, and a bad entry frames nothing rather than
		// something nobody meant.
		s.log.Error("embed origins refused: nobody may frame /embed", "err", err)
		sources = []string{"'none'"}
	}
	embedCSP := cspBase + strings.Join(sources, " ")
	r.Group(func(r chi.Router) {
		r.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				h.Set("Referrer-Policy", "same-origin")
				if r.URL.Path == "/embed" {
					h.Set("Content-Security-Policy", embedCSP)
				} else {
					h.Set("Content-Security-Policy", pageCSP)
					h.Set("X-Frame-Options", "SAMEORIGIN")
				}
				next.ServeHTTP(w, r)
			})
		})
		// The page's paths answer GET and HEAD, and say so with 405 to
		// any other method; a path it does not have is 404, whatever
		// the method (see web.Handler).
		r.Handle("/*", web)
	})
	return r
}

// healthz answers "." while the server runs.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, ".")
}

// A router is a chi router whose routes each serve a few methods and
// answer any other with 405, the methods they serve in Allow; and whose
// every answer carries nosniff and a Content-Security-Policy, the page's
// own or one that lets nothing load or frame it. chi alone would hand a
// method a route lacks to the catch-all route (the page, which has no
// such path: 404), and answer a method it does not know at all with 405
// and no Allow.
type router struct {
	*chi.Mux
	allow map[string][]string // path: the methods it serves
}

// methodsPage is what the page's paths serve (see web.Handler), and what
// a method chi does not know is told of them.
const methodsPage = "GET, HEAD"

// Any middlewares given run after commonHeaders and before the methods
// check.
func newRouter(mw ...func(http.Handler) http.Handler) *router {
	r := &router{Mux: chi.NewRouter(), allow: make(map[string][]string)}
	// None of these wrap the ResponseWriter or the request's context:
	// /ws must see the real connection, and outlives the request.
	r.Use(commonHeaders)
	r.Use(mw...)
	r.Use(r.methods)
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) { notAllowed(w, methodsPage) })
	return r
}

// route serves path with h, for those methods only.
func (r *router) route(path string, h http.Handler, methods ...string) {
	r.allow[path] = methods
	for _, m := range methods {
		r.Method(m, path, h)
	}
}

// methods answers 405 to a method a route does not serve, before chi
// routes the request.
func (r *router) methods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if allow, ok := r.allow[req.URL.Path]; ok && !slices.Contains(allow, req.Method) {
			notAllowed(w, strings.Join(allow, ", "))
			return
		}
		next.ServeHTTP(w, req)
	})
}

func notAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
}

// cspBase is the page's Content-Security-Policy up to its frame-ancestors
// sources: its scripts, styles and WebSocket come from the server itself,
// and nothing else is loaded.
const cspBase = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors "

// cspNone is the Content-Security-Policy of every answer but the page's:
// it loads nothing, and nobody may frame it.
const cspNone = "default-src 'none'; frame-ancestors 'none'"

// commonHeaders gives every answer nosniff and cspNone; the page's routes
// put their own policy in its place.
func commonHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", cspNone)
		next.ServeHTTP(w, r)
	})
}

// serveWS upgrades GET /ws?room=NAME&nick=NAME and hands the connection to
// a reader goroutine of its own, so that the handler's goroutine, with the
// stack net/http grew for it, ends at once.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.add() {
		http.Error(w, reasonShutdown, http.StatusServiceUnavailable)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			s.wg.Done()
		}
	}()
	addr := s.clientAddr(r)

	if origin := r.Header.Get("Origin"); origin != "" && emptyLabel(origin) {
		// path.Match, which the library matches patterns with, lets "*"
		// match an empty label: "*.example.com" would let in
		// ".example.com", and "a..example.com" too. No real site's host
		// has one, so it is refused whatever the patterns.
		s.handshakeFailures.Add(1)
		s.logs.Log(slog.LevelInfo, "WebSocket handshakes refused", "websocket handshake refused",
			"addr", r.RemoteAddr, "origin", origin, "err", "origin host has an empty label")
		http.Error(w, "Origin host has an empty label", http.StatusForbidden)
		return
	}
	hw := &hijackWriter{ResponseWriter: w, timeout: s.cfg.WriteTimeout, sendBuffer: s.cfg.SendBuffer, pool: &s.corkBufs, aheadPool: &s.aheadBufs}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols:   []string{JSONProtocol},
		OriginPatterns: s.cfg.AllowOrigins,
	})
	if err != nil {
		// Accept has answered: 403 for a foreign origin, 4xx for a bad
		// handshake.
		s.handshakeFailures.Add(1)
		s.logs.Log(slog.LevelInfo, "WebSocket handshakes refused", "websocket handshake refused",
			"addr", addr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	c := &wsConn{
		srv:  s,
		ws:   ws,
		wire: hw.wire,
		json: strings.EqualFold(ws.Subprotocol(), JSONProtocol), // as the library agreed it
		addr: addr,
	}
	c.out.Init(s.hub, s.cfg.Queue, s.cfg.QueueBytes, c)
	if c.json {
		c.setReadLimit(s.readLimitJSON)
	} else {
		c.setReadLimit(s.readLimitPlain)
	}
	q := r.URL.Query()
	info := tcpserver.ConnectInfo{
		Addr:      addr,
		Transport: "ws",
		Nick:      q.Get("nick"),
		Room:      q.Get("room"),
		Echo:      c.json, // the page shows its own lines as the server confirms them
	}
	authErr := s.authenticate(q, &info)
	handedOff = true
	go s.run(c, info, authErr)
}

// emptyLabel reports whether origin names a host with an empty label: a
// leading or trailing dot, or two dots in a row. An origin that is not a
// URL with a host is left to the library, which refuses it.
func emptyLabel(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return slices.Contains(strings.Split(u.Hostname(), "."), "")
}

// run joins a WebSocket's member to the hub and becomes its reader (see
// wsConn.read), handing it this goroutine's count in s.wg. A member
// whose sign-in token was refused (authErr) is not joined.
func (s *Server) run(c *wsConn, info tcpserver.ConnectInfo, authErr error) {
	// What a writer may read (c.idle, through the wire's beforeClose) is
	// set before the connection is tracked, where a shutdown can reach it.
	if p := s.idle.Poller(); p != nil && c.wire.poll != nil {
		c.idle = p.Register(c.wire.poll, c.goRead)
	}
	c.wire.beforeClose = c.wake
	if !s.track(c) {
		c.closeBriefly(websocket.StatusGoingAway, reasonShutdown, refuseGrace)
		s.wg.Done()
		return
	}
	client, err := s.connect(c, info, authErr)
	if err != nil {
		s.logs.Log(slog.LevelInfo, "connections refused ("+err.Error()+")", "connection refused",
			"addr", info.Addr, "transport", "ws", "reason", err)
		code := websocket.StatusTryAgainLater
		switch {
		case errors.Is(err, tcpserver.ErrHubClosed):
			code = websocket.StatusGoingAway
		case errors.Is(err, tcpserver.ErrBanned), errors.Is(err, errAuth), errors.Is(err, tcpserver.ErrVerifiedName):
			code = websocket.StatusPolicyViolation // as for a member cut off: do not retry
		}
		c.closeBriefly(code, err.Error(), refuseGrace)
		s.untrack(c)
		s.wg.Done()
		return
	}
	c.client = client
	c.startKeepalive()
	c.read()
}
