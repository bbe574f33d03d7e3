package tcpserver

import (
	"errors"
	"io"
	"log/slog"
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
	// [no limit].
	MaxPerIP int
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
	linger   atomic.Int32 // refused connections being read away now

	mu   sync.Mutex
	open int
	byIP map[netip.Addr]int

	spareMu sync.Mutex
	spare   io.Closer // a descriptor held back, see shed

	refusedFull, refusedPerIP atomic.Uint64
}

// ConnStats is a snapshot of a [ConnLimiter]'s counters.
type ConnStats struct {
	Open         int    // connections open now
	Max          int    // the effective MaxConns (0: no limit)
	RefusedFull  uint64 // refused because MaxConns were open, or no descriptor was left
	RefusedPerIP uint64 // refused because MaxPerIP were open from the same address
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
	return ConnStats{Open: open, Max: l.max, RefusedFull: l.refusedFull.Load(), RefusedPerIP: l.refusedPerIP.Load()}
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
	ll.lim.lingerWG.Wait()
	return err
}

// admit counts in a connection from addr (invalid: not an IP peer), or
// says why it may not come in.
func (l *ConnLimiter) admit(addr netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		l.refusedFull.Add(1)
		return ErrServerFull
	}
	perIP := addr.IsValid() && l.perIP > 0 && !l.exempted(addr)
	if perIP && l.byIP[addr] >= l.perIP {
		l.refusedPerIP.Add(1)
		return ErrTooManyFromIP
	}
	l.open++
	if addr.IsValid() {
		l.byIP[addr]++
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
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !addr.IsValid() {
		return
	}
	if l.byIP[addr]--; l.byIP[addr] <= 0 {
		delete(l.byIP, addr)
	}
}

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

// outOfFiles reports whether err says the process, or the system, has
// no descriptor left.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
