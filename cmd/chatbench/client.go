package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/ssh"
)

// benchConn is one client connection, TCP or WebSocket.
//
// sendTag is called by one goroutine (the sender's), readLoop by another;
// close may be called from anywhere, and unblocks both.
type benchConn interface {
	// sendTag writes one line carrying t.
	sendTag(ctx context.Context, t tag) error
	// readLoop reads until the connection fails or is closed, handing every
	// piece of data to onData in order; msgEnd marks the end of a WebSocket
	// text message (a boundary no tag spans). It takes no context: close
	// ends it. (coder/websocket registers a context.AfterFunc for every
	// frame read under a context that can end, all under one parent shared
	// by every receiver: that was 15% of the load tool's CPU with 500
	// receivers flat out, measured as if it were the server's slowness.)
	readLoop(buf []byte, onData func(p []byte, msgEnd bool)) error
	close()
}

// clientConfig holds what fanout and hold share: where to connect, how, and
// which server processes to watch.
type clientConfig struct {
	tcp, ws        []endpoint
	wsMix          float64
	wsOpts         wsOptions
	connect        connectPlan
	connectTimeout time.Duration
	proc           procSampler
	progress       time.Duration // interval of progress lines on stderr
	perSource      int           // connections per source address; 0 = from the kernel's port range
	pad            int           // bytes of padding after each sent tag
}

func (c clientConfig) newDialer() *dialer {
	d := newDialer(c.tcp, c.ws, c.wsMix, c.wsOpts, c.connectTimeout)
	if c.perSource > 0 {
		d.perSource = c.perSource
	}
	d.pad = c.pad
	return d
}

// wsOptions says how WebSocket clients frame what they send.
type wsOptions struct {
	binary      bool   // binary frames; the line then ends in "\n", as on a byte stream
	subprotocol string // offered in the handshake when set
	json        bool   // {"type":"message","text":"<tag>"} instead of the bare line
}

// dialer opens client connections to the resolved endpoints. Client i of a
// run always gets the same endpoint and source address, so runs repeat.
type dialer struct {
	tcp, ws        []endpoint
	wsMix          float64 // fraction of clients on WebSocket when both kinds are given
	wsOpts         wsOptions
	connectTimeout time.Duration
	perSource      int // connections per local source address before the next one
	pad            int // bytes of padding after each sent tag

	mu        sync.Mutex
	clients   map[netip.Addr]*http.Client // one per source address; guarded by mu
	sshSigner ssh.Signer                  // made at the first SSH client; guarded by mu
}

func newDialer(tcp, ws []endpoint, wsMix float64, wsOpts wsOptions, connectTimeout time.Duration) *dialer {
	return &dialer{
		tcp: tcp, ws: ws, wsMix: wsMix, wsOpts: wsOpts,
		connectTimeout: connectTimeout,
		perSource:      connsPerSource(),
		clients:        make(map[netip.Addr]*http.Client),
	}
}

// endpointFor picks the endpoint of the i-th client of a group: WebSocket
// for an evenly spread wsMix share of them, round robin within each kind.
func (d *dialer) endpointFor(i int) endpoint {
	switch {
	case len(d.ws) == 0:
		return d.tcp[i%len(d.tcp)]
	case len(d.tcp) == 0:
		return d.ws[i%len(d.ws)]
	}
	before := int(float64(i) * d.wsMix)
	if int(float64(i+1)*d.wsMix) > before {
		return d.ws[before%len(d.ws)]
	}
	return d.tcp[(i-before)%len(d.tcp)]
}

// sourceFor is the local address for the globally numbered client slot:
// the default for the first perSource, then 127.0.0.2, 127.0.0.3, ... so a
// run can exceed one address's ephemeral port range. Only IPv4 can do this.
func (d *dialer) sourceFor(ep endpoint, slot int) (netip.Addr, error) {
	k := slot / d.perSource
	if k == 0 {
		return netip.Addr{}, nil
	}
	if !ep.ipv4 {
		return netip.Addr{}, fmt.Errorf("client %d needs a second source address, which only IPv4 loopback has", slot)
	}
	if k >= 0xfffffe { // stay below 127.255.255.255, the broadcast address
		return netip.Addr{}, fmt.Errorf("client %d: out of 127.0.0.0/8 source addresses", slot)
	}
	v := 0x7f000001 + uint32(k) // 127.0.0.1 + k
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// dial connects client slot (its number across the whole run, for the source
// address) to ep.
func (d *dialer) dial(ctx context.Context, ep endpoint, slot int) (benchConn, error) {
	src, err := d.sourceFor(ep, slot)
	if err != nil {
		return nil, err
	}
	return d.dialFrom(ctx, ep, src)
}

// dialFrom connects to ep from the local address src (the zero Addr: the
// kernel's choice).
func (d *dialer) dialFrom(ctx context.Context, ep endpoint, src netip.Addr) (benchConn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.connectTimeout)
	defer cancel()
	if !ep.ws {
		c, err := dialReset(ctx, d.netDialer(src), ep.dialAddr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", ep.given, err)
		}
		if ep.ssh {
			key, err := d.sshKey()
			if err != nil {
				c.Close()
				return nil, err
			}
			s, err := dialSSH(ctx, c, ep.dialAddr, key, d.pad)
			if err != nil {
				return nil, fmt.Errorf("dial %s: %w", ep.given, err)
			}
			return s, nil
		}
		return &tcpConn{c: c, pad: d.pad}, nil
	}
	opts := &websocket.DialOptions{
		HTTPClient:      d.httpClient(ep, src),
		CompressionMode: websocket.CompressionDisabled,
	}
	if d.wsOpts.subprotocol != "" {
		opts.Subprotocols = []string{d.wsOpts.subprotocol}
	}
	c, resp, err := websocket.Dial(ctx, ep.url, opts)
	if resp != nil && resp.Body != nil {
		resp.Body.Close() // a 101 body is the connection itself; only errors leave one to close
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ep.given, err)
	}
	c.SetReadLimit(-1) // reads are streamed through a fixed buffer, never held whole
	w := newWSConn(c, d.wsOpts)
	w.pad = d.pad
	return w, nil
}

func (d *dialer) netDialer(src netip.Addr) *net.Dialer {
	nd := &net.Dialer{Timeout: d.connectTimeout}
	if src.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		nd.Control = bindNoPort
	}
	return nd
}

// dialReset dials addr with a connection that is reset when it is closed.
// A normal close leaves the client's side of every connection in
// TIME_WAIT for a minute, and the run after a run of 10,000 connections
// then spends its connects searching for a free source port: it measured
// the run before it, not the server (5,000 to 12,000 connects/s for the
// same server). The server sees a reset instead of an end of file once the
// run is over.
func dialReset(ctx context.Context, nd *net.Dialer, addr string) (net.Conn, error) {
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return c, nil
}

// httpClient returns the client used for WebSocket handshakes from src. It
// always dials ep's checked loopback address, whatever the URL says, and
// never goes through a proxy.
func (d *dialer) httpClient(ep endpoint, src netip.Addr) *http.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := src
	if hc, ok := d.clients[key]; ok {
		return hc
	}
	nd := d.netDialer(src)
	wsEPs := d.ws
	hc := &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			for _, e := range wsEPs {
				if hostPortOf(e.url) == addr {
					return dialReset(ctx, nd, e.dialAddr)
				}
			}
			return nil, fmt.Errorf("dial %s: %w", addr, errNotLoopback)
		},
		DisableCompression: true,
		// wss:// endpoints are servers on this machine's loopback, most
		// likely with a certificate made for the run: the load tool
		// measures their TLS, it does not check who they are.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	d.clients[key] = hc
	return hc
}

// hostPortOf is the host:port that http.Transport asks to dial for a ws URL.
func hostPortOf(wsURL string) string {
	scheme, rest, _ := strings.Cut(wsURL, "://")
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return net.JoinHostPort(strings.Trim(rest, "[]"), defaultPort(scheme))
	}
	return rest
}

// closeIdle releases the handshake clients' idle resources.
func (d *dialer) closeIdle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, hc := range d.clients {
		hc.CloseIdleConnections()
	}
}

// connsPerSource is how many connections one source address can hold: the
// kernel's ephemeral port range, less a tenth left for everyone else.
func connsPerSource() int {
	const fallback = 28232 // the Linux default range 32768-60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback * 9 / 10
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fallback * 9 / 10
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || hi <= lo {
		return fallback * 9 / 10
	}
	return max((hi-lo+1)*9/10, 1)
}

// tcpConn is a TCP client. Lines end in "\n".
type tcpConn struct {
	c    net.Conn
	pad  int
	wbuf []byte // owned by the sending goroutine
}

// appendPad adds n bytes of padding, after a space, to a line: bigger
// lines fill a client that does not read sooner.
func appendPad(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	b = append(b, ' ')
	for range n {
		b = append(b, 'x')
	}
	return b
}

func (t *tcpConn) sendTag(_ context.Context, tg tag) error {
	t.wbuf = append(appendPad(appendTag(t.wbuf[:0], tg), t.pad), '\n')
	if _, err := t.c.Write(t.wbuf); err != nil {
		return fmt.Errorf("write line: %w", err)
	}
	return nil
}

func (t *tcpConn) readLoop(buf []byte, onData func([]byte, bool)) error {
	for {
		n, err := t.c.Read(buf)
		if n > 0 {
			onData(buf[:n], false)
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

func (t *tcpConn) close() { t.c.Close() }

// wsConn is a WebSocket client: one line per message.
type wsConn struct {
	c       *websocket.Conn
	pad     int
	opts    wsOptions
	msgType websocket.MessageType
	wbuf    []byte // owned by the sending goroutine
}

func newWSConn(c *websocket.Conn, opts wsOptions) *wsConn {
	mt := websocket.MessageText
	if opts.binary {
		mt = websocket.MessageBinary
	}
	return &wsConn{c: c, opts: opts, msgType: mt}
}

func (w *wsConn) sendTag(ctx context.Context, tg tag) error {
	b := w.wbuf[:0]
	if w.opts.json {
		b = append(b, `{"type":"message","text":"`...)
		b = appendPad(appendTag(b, tg), w.pad)
		b = append(b, `"}`...)
	} else {
		b = appendPad(appendTag(b, tg), w.pad)
	}
	if w.opts.binary {
		b = append(b, '\n')
	}
	w.wbuf = b
	if err := w.c.Write(ctx, w.msgType, b); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return nil
}

// readLoop treats a text message as a whole (a tag may end at its end) and
// binary messages as pieces of a byte stream (a proxy such as websockify
// frames whatever its TCP reads returned, so tags can span messages).
func (w *wsConn) readLoop(buf []byte, onData func([]byte, bool)) error {
	for {
		typ, r, err := w.c.Reader(context.Background())
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		for {
			n, err := r.Read(buf)
			if n > 0 {
				onData(buf[:n], false)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read message: %w", err)
			}
		}
		if typ == websocket.MessageText {
			onData(nil, true)
		}
	}
}

func (w *wsConn) close() { w.c.CloseNow() }
