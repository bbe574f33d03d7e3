package tcpserver

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ConnLimits bounds the connections of a whole process, counted on every
// listener from the moment each is accepted: chat members, page requests,
// idle keep-alive connections and echo clients alike. A connection that
// never becomes a member costs a descriptor and memory all the same, and
// the hub's own limits only see members. Zero fields take the defaults in
// brackets.
type ConnLimits struct {
	// MaxConns is the most connections open at once, all listeners
	// together [no limit but the descriptor budget]. Whatever it says,
	// it is lowered to what the open-file limit allows, less Reserve, so
	// that accepting never fails for want of a descriptor.
	MaxConns int
	// MaxPerIP is the most connections open at once from one address
	// (IPv6: one /64, see addrKey) [no limit].
	MaxPerIP int
	// ConnectRate is how many new connections one address may open a
	// second, after a burst of ConnectBurst [no limit; 10 x ConnectRate].
	// Connecting and leaving over and over is otherwise free, and each
	// connection a chat member's costs the server a welcome, a history
	// and a name.
	ConnectRate  float64
	ConnectBurst int
	// Exempt lists peers not counted per address: trusted reverse
	// proxies, each of which carries many visitors. They still count
	// towards MaxConns.
	Exempt []netip.Prefix
	// FileLimit is the process's open-file limit [read from the system].
	FileLimit int
	// Reserve is how many descriptors are kept out of MaxConns, for the
	// listeners, the poller, logs, the link to other nodes and the
	// connections being refused [64].
	Reserve int
	// Log is where refusals are logged, a line per reason per LogEvery
	// at most, with how many more there were [nowhere].
	Log *slog.Logger
}

// lingerRefused bounds how long, and how many at once, refused connections
// are kept to read away what the client sends after the refusal (see
// ConnLimiter.refuse).
const (
	lingerRefused    = time.Second
	maxLingerRefused = 32
)

// A ConnLimiter applies [ConnLimits] to the listeners it wraps (see
// [ConnLimiter.Listen]). One limiter shared by every listener of the
// process makes the limits hold across them. It is safe for concurrent use.
type ConnLimiter struct {
	max      int // 0: no limit
	perIP    int // 0: no limit
	exempt   []netip.Prefix
	logs     *LogThrottle
	lingerWG sync.WaitGroup
	lingerMu sync.Mutex   // orders lingerWG's Adds and Waits: one listener may close while another refuses
	linger   atomic.Int32 // refused connections being read away now

	mu    sync.Mutex
	open  int
	byIP  map[netip.Addr]int // by addrKey
	rates *connectRates      // nil: no ConnectRate

	spareMu sync.Mutex
	spare   io.Closer // a descriptor held back, see shed

	refusedFull, refusedPerIP, refusedRate atomic.Uint64
}

// ConnStats is a snapshot of a [ConnLimiter]'s counters.
type ConnStats struct {
	Open         int    // connections open now
	Max          int    // the effective MaxConns (0: no limit)
	RefusedFull  uint64 // refused because MaxConns were open, or no descriptor was left
	RefusedPerIP uint64 // refused because MaxPerIP were open from the same address
	RefusedRate  uint64 // refused because the address opened more than ConnectRate a second
}

// NewConnLimiter returns a limiter for limits.
func NewConnLimiter(limits ConnLimits) *ConnLimiter {
	if limits.Reserve <= 0 {
		limits.Reserve = 64
	}
	if limits.FileLimit <= 0 {
		limits.FileLimit = fileLimit()
	}
	l := &ConnLimiter{
		max:    max(limits.MaxConns, 0),
		perIP:  max(limits.MaxPerIP, 0),
		exempt: limits.Exempt,
		logs:   NewLogThrottle(limits.Log, LogEvery),
		byIP:   make(map[netip.Addr]int),
	}
	if limits.ConnectRate > 0 {
		burst := limits.ConnectBurst
		if burst <= 0 {
			burst = max(int(math.Ceil(10*limits.ConnectRate)), 1)
		}
		l.rates = newConnectRates(limits.ConnectRate, burst)
	}
	if limits.FileLimit > 0 {
		budget := max(limits.FileLimit-limits.Reserve, 1)
		if l.max == 0 || l.max > budget {
			l.max = budget
		}
	}
	l.spare = openSpare()
	return l
}

// Stats returns the limiter's counters.
func (l *ConnLimiter) Stats() ConnStats {
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	return ConnStats{Open: open, Max: l.max, RefusedFull: l.refusedFull.Load(), RefusedPerIP: l.refusedPerIP.Load(), RefusedRate: l.refusedRate.Load()}
}

// A Refusal makes the bytes a listener's refused connections are sent,
// in its own protocol, for the reason given; nil bytes send nothing.
type Refusal func(reason string) []byte

// Listen returns a listener whose Accept returns only the connections
// the limits let in. Each is counted until it is closed. The rest are
// refused at once: sent refuse's answer (if refuse is not nil), then
// closed. When the process is out of descriptors, Accept frees the one it
// holds in reserve to take the next connection off the queue and refuse
// it, rather than leave it waiting or spin.
func (l *ConnLimiter) Listen(inner net.Listener, refuse Refusal) net.Listener {
	return &limitedListener{Listener: inner, lim: l, refuse: refuse}
}

type limitedListener struct {
	net.Listener
	lim    *ConnLimiter
	refuse Refusal
}

func (ll *limitedListener) Accept() (net.Conn, error) {
	for {
		nc, err := ll.Listener.Accept()
		if err != nil {
			if outOfFiles(err) && ll.lim.shed(ll.Listener, ll.refuse) {
				continue
			}
			return nil, err
		}
		addr := peerIP(nc)
		if err := ll.lim.admit(addr); err != nil {
			ll.lim.refuse(nc, ll.refuse, err)
			continue
		}
		return ll.lim.wrap(nc, addr), nil
	}
}

// Close closes the listener, then waits (at most lingerRefused) for the
// connections it refused to be read away and closed.
func (ll *limitedListener) Close() error {
	err := ll.Listener.Close()
	// Every listener of the limiter shares lingerWG: another may be
	// refusing a connection now. The lock makes its Add come before this
	// Wait or after it (a WaitGroup's first Add must not race its Wait);
	// the goroutines waited for do not take it.
	ll.lim.lingerMu.Lock()
	defer ll.lim.lingerMu.Unlock()
	ll.lim.lingerWG.Wait()
	return err
}

// admit counts in a connection from addr (invalid: not an IP peer), or
// says why it may not come in.
func (l *ConnLimiter) admit(addr netip.Addr) error { return l.admitAt(addr, time.Now()) }

func (l *ConnLimiter) admitAt(addr netip.Addr, now time.Time) error {
	key := addrKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		l.refusedFull.Add(1)
		return ErrServerFull
	}
	counted := addr.IsValid() && !l.exempted(addr)
	// Every try counts against the rate, refused or not: an address
	// that keeps knocking at its MaxPerIP is slowing nobody down.
	if counted && l.rates != nil && !l.rates.take(key, now) {
		l.refusedRate.Add(1)
		return ErrConnectRate
	}
	if counted && l.perIP > 0 && l.byIP[key] >= l.perIP {
		l.refusedPerIP.Add(1)
		return ErrTooManyFromIP
	}
	l.open++
	if addr.IsValid() {
		l.byIP[key]++
	}
	return nil
}

func (l *ConnLimiter) exempted(addr netip.Addr) bool {
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// release counts out a connection from addr.
func (l *ConnLimiter) release(addr netip.Addr) {
	key := addrKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !addr.IsValid() {
		return
	}
	if l.byIP[key]--; l.byIP[key] <= 0 {
		delete(l.byIP, key)
	}
}

// ErrConnectRate refuses a connection from an address that opened more
// than ConnLimits.ConnectRate a second.
var ErrConnectRate = errors.New("too many connections from your address; slow down")

// maxConnectRates bounds the addresses a connectRates keeps in each of
// its two maps: about 3 MiB in all, however many addresses connect.
const maxConnectRates = 1 << 15

// connectRates is a token bucket per address (see addrKey), in memory
// bounded whatever the number of addresses. An address's bucket is whole
// again window after its last connection, and a whole bucket is as good
// as none, so the buckets live in two maps: cur, the addresses seen since
// turned, and prev, those seen the window before. Every window cur
// becomes prev and the old prev, whose buckets have all refilled, is
// dropped. If cur fills up first, it turns early: some buckets are then
// forgotten before they refill, which only an attacker with more than
// maxConnectRates addresses can bring about, and who gains little by it.
// Guarded by the limiter's lock.
type connectRates struct {
	rate, burst float64
	window      time.Duration
	cur, prev   map[netip.Addr]tokenBucket
	turned      time.Time
}

func newConnectRates(rate float64, burst int) *connectRates {
	// A window past what a Duration holds would convert to a negative
	// one, turning at every connection and forgetting every bucket: it
	// is the longest Duration instead, and cur turns only when full.
	window := time.Duration(math.MaxInt64)
	if secs := float64(burst) / rate; secs < window.Seconds() {
		window = time.Duration(secs * float64(time.Second))
	}
	return &connectRates{
		rate:   rate,
		burst:  float64(burst),
		window: window,
		cur:    make(map[netip.Addr]tokenBucket),
	}
}

// take takes a connection from key's bucket, and reports whether there
// was one to take.
func (cr *connectRates) take(key netip.Addr, now time.Time) bool {
	if now.Sub(cr.turned) >= cr.window || len(cr.cur) >= maxConnectRates {
		cr.prev, cr.cur, cr.turned = cr.cur, make(map[netip.Addr]tokenBucket, len(cr.cur)/2), now
	}
	b, ok := cr.cur[key]
	if !ok {
		if b, ok = cr.prev[key]; ok {
			delete(cr.prev, key)
		} else {
			b.tokens = cr.burst
		}
	}
	took := b.take(now, cr.rate, cr.burst)
	cr.cur[key] = b
	return took
}

// size returns how many addresses cr keeps.
func (cr *connectRates) size() int { return len(cr.cur) + len(cr.prev) }

// refuse tells nc why it is refused and closes it. A client that already
// sent something (a request, telnet's negotiation) would get a reset for
// a plain close, and a reset can throw the answer away before the client
// reads it; so the connection is half-closed and what the client sends is
// read away for a moment, in a goroutine of its own, at most
// maxLingerRefused of them at once. Past that it is simply closed.
func (l *ConnLimiter) refuse(nc net.Conn, refuse Refusal, why error) {
	l.logRefused(nc, why)
	var answer []byte
	if refuse != nil {
		answer = refuse(why.Error())
	}
	if len(answer) > 0 {
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write(answer)
	}
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || l.linger.Add(1) > maxLingerRefused {
		if ok {
			l.linger.Add(-1)
		}
		nc.Close()
		return
	}
	l.lingerMu.Lock()
	defer l.lingerMu.Unlock()
	l.lingerWG.Go(func() {
		defer l.linger.Add(-1)
		defer nc.Close()
		if cw.CloseWrite() != nil {
			return
		}
		nc.SetReadDeadline(time.Now().Add(lingerRefused))
		io.CopyN(io.Discard, nc, 64<<10)
	})
}

// shed takes one connection off l's queue with the descriptor held in
// reserve, refuses it as "server full" and takes the reserve back. It
// reports whether it could; if not, the caller backs off as for any other
// accept error.
func (l *ConnLimiter) shed(ln net.Listener, refuse Refusal) bool {
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return false
	}
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if l.spare == nil {
		l.spare = openSpare()
		return false
	}
	l.spare.Close()
	// The queue is not empty (accept failed on a waiting connection), but
	// the client may have gone meanwhile: do not wait for another.
	dl.SetDeadline(time.Now().Add(10 * time.Millisecond))
	nc, err := ln.Accept()
	dl.SetDeadline(time.Time{})
	if err == nil {
		l.refusedFull.Add(1)
		l.logRefused(nc, ErrServerFull, "descriptors", "none left")
		if refuse != nil {
			nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			nc.Write(refuse(ErrServerFull.Error()))
		}
		nc.Close()
	}
	l.spare = openSpare()
	return err == nil
}

// logRefused logs a connection refused at accept, why and from where.
func (l *ConnLimiter) logRefused(nc net.Conn, why error, args ...any) {
	l.logs.Log(slog.LevelWarn, "connections refused at accept ("+why.Error()+")", "connection refused at accept",
		append([]any{"addr", nc.RemoteAddr().String(), "reason", why.Error()}, args...)...)
}

// wrap makes nc give its count back when it is closed. A TCP connection
// stays a *net.TCPConn underneath, with all its methods (SyscallConn for
// the poller, CloseWrite, SetWriteBuffer).
func (l *ConnLimiter) wrap(nc net.Conn, addr netip.Addr) net.Conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		return &countedTCPConn{TCPConn: tc, counted: counted{lim: l, addr: addr}}
	}
	return &countedConn{Conn: nc, counted: counted{lim: l, addr: addr}}
}

// counted gives a connection's count back once, on its first Close.
type counted struct {
	lim    *ConnLimiter
	addr   netip.Addr
	closed atomic.Bool
}

func (c *counted) done() {
	if c.closed.CompareAndSwap(false, true) {
		c.lim.release(c.addr)
	}
}

type countedTCPConn struct {
	*net.TCPConn
	counted
}

func (c *countedTCPConn) Close() error {
	c.done()
	return c.TCPConn.Close()
}

type countedConn struct {
	net.Conn
	counted
}

func (c *countedConn) Close() error {
	c.done()
	return c.Conn.Close()
}

// peerIP returns the IP address nc comes from, or the zero Addr if it is
// not an IP connection.
func peerIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// addrKey is the address limits per address count addr under: an IPv4
// address as it is, an IPv6 address by its /64, which is what one host
// or one subscriber is given (as Ergo and InspIRCd count IPv6 clones:
// counted one by one, an address from a /64 is a new one for each of
// 2^64 connections).
func addrKey(addr netip.Addr) netip.Addr {
	if addr.Is6() && !addr.Is4In6() {
		if p, err := addr.WithZone("").Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return addr
}

// sourceKey is addrKey for an address given as text ("" for none); text
// that is not an IP address is its own key.
func sourceKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addrKey(addr.Unmap())
	if addr.Is6() {
		return addr.String() + "/64"
	}
	return addr.String()
}

// outOfFiles reports whether err says the process, or the system, has
// no descriptor left.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
