package tcpserver

import (
	"sync"
	"time"
)

// A Pause stops a connection's reader for a while without a goroutine:
// the reader arms it and returns, and a timer starts the next reader. A
// member whose lines wait for flood control is paused this way (see
// [Client.Resume]), as an idle one is parked in the poller, so that a
// thousand members being slowed down hold no goroutine and no stack.
//
// Whoever ends the connection must call Wake before closing it, as for a
// parked one: a paused reader would otherwise see the end only when the
// timer fires. The zero Pause is ready to use.
type Pause struct {
	mu      sync.Mutex
	timer   *time.Timer
	ready   func() // what starts the next reader, while pending
	pending bool   // armed: ready has yet to be called
	awake   bool   // woken to end: never paused again
}

// Sleep arranges for ready to be called once, after d, and reports true:
// the caller must then return, and from here on another reader may be
// running. It reports false, and arranges nothing, once the connection is
// being ended (see Wake): the caller goes on at once. ready must not block
// (start a goroutine).
func (p *Pause) Sleep(d time.Duration, ready func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.awake {
		return false
	}
	p.ready, p.pending = ready, true
	p.timer = time.AfterFunc(d, p.fire)
	return true
}

// Wake ends a pause at once, starting the next reader now, and makes any
// later Sleep report false.
func (p *Pause) Wake() {
	p.mu.Lock()
	p.awake = true
	if p.timer != nil {
		p.timer.Stop()
	}
	ready := p.take()
	p.mu.Unlock()
	if ready != nil {
		ready()
	}
}

// Paused reports whether a reader is due: the connection is paused.
func (p *Pause) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

func (p *Pause) fire() {
	p.mu.Lock()
	ready := p.take()
	p.mu.Unlock()
	if ready != nil {
		ready()
	}
}

// take returns ready if it is due, and makes it not due. Called with mu
// held.
func (p *Pause) take() func() {
	if !p.pending {
		return nil
	}
	ready := p.ready
	p.ready, p.pending, p.timer = nil, false, nil
	return ready
}
