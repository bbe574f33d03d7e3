// Package idlepoll parks idle connections so that they need no goroutine
// while they wait for data.
//
// A server that gives each connection a reader goroutine pays for a
// parked goroutine and its stack per idle member. With a Poller, the
// reader parks its connection (one epoll registration, armed one-shot) and
// returns; when the connection has something to read (data, end of
// stream, an error) the Poller calls the connection's ready function,
// which starts a new reader. The Poller's epoll set is its own: the Go
// runtime keeps its registration of the same sockets, and reads go
// through net.Conn as usual.
//
// Whoever ends a connection must call Wake before closing it: a closed
// descriptor leaves epoll without a word, and a parked reader would never
// see its connection end.
//
// Parking works on Linux; elsewhere New fails and callers keep a reader
// goroutine per connection.
package idlepoll

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// A Conn is one connection known to a Poller.
type Conn struct {
	p     *Poller
	rc    syscall.RawConn
	ready func()

	// Owned by the connection's reader, one at a time.
	token      uint64
	registered bool

	parked atomic.Bool // armed, with no reader running
	awake  atomic.Bool // woken to end: never parked again
}

// Register makes c known to p. ready is called, in the Poller's goroutine
// or in Wake's caller, each time a parked c needs a reader again; it must
// not block (start a goroutine).
func (p *Poller) Register(rc syscall.RawConn, ready func()) *Conn {
	return &Conn{p: p, rc: rc, ready: ready}
}

// Park arms c, and reports whether it did: then the caller must return,
// and ready will be called once, later or at once. If Park reports false
// (c was woken, or its connection is closed) the caller goes on reading
// itself.
func (c *Conn) Park() bool {
	if c.awake.Load() {
		return false
	}
	op := c.p.prepare(c)
	token := c.token
	c.parked.Store(true)
	// From here on another reader may be running: hands off c's fields.
	if c.p.arm(c.rc, token, op) {
		return true
	}
	if c.parked.CompareAndSwap(true, false) {
		return false
	}
	return true // woken meanwhile: ready has been called
}

// Wake makes sure c has a reader from now on: if it is parked, it is taken
// out and ready is called. Call it before closing c's connection, while
// the descriptor is still c's.
func (c *Conn) Wake() {
	c.awake.Store(true)
	if c.parked.CompareAndSwap(true, false) {
		c.p.disarm(c.rc)
		c.ready()
	}
}

// Forget drops c for good once its connection is finished.
func (c *Conn) Forget() { c.p.forget(c) }

// fire is the Poller's side of an event for c.
func (c *Conn) fire() {
	if c.parked.CompareAndSwap(true, false) {
		c.ready()
	}
}

// A Lazy holds a Poller that runs while a server is serving: each Serve
// calls Acquire when it starts and Release when it has finished with
// every connection. The zero value is ready to use.
type Lazy struct {
	mu    sync.Mutex
	users int
	p     *Poller
	err   error
}

// Acquire starts the Poller if it is not running, and reports why it
// could not be had, if so.
func (l *Lazy) Acquire() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == 0 {
		l.p, l.err = New()
	}
	l.users++
	return l.err
}

// Release stops the Poller after the last user. No connection may be
// parked in it any more.
func (l *Lazy) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users--; l.users == 0 && l.p != nil {
		l.p.Close()
		l.p = nil
	}
}

// Poller returns the running Poller, or nil.
func (l *Lazy) Poller() *Poller {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}
