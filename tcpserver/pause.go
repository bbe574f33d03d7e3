package tcpserver

import (
	"sync/atomic"
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
// timer fires. The zero Pause is ready to use; it is one word, so that
// members who never wait pay next to nothing for it.
type Pause struct {
	state atomic.Pointer[pauseState] // nil: running; woken: never paused again; else paused
}

// pauseState is one pause: what starts the next reader.
type pauseState struct{ ready func() }

// woken is the state of a Pause woken for good.
var woken = new(pauseState)

// Sleep arranges for ready to be called once, after d, and reports true:
// the caller must then return, and from here on another reader may be
// running. It reports false, and arranges nothing, once the connection is
// being ended (see Wake): the caller goes on at once. ready must not block
// (start a goroutine).
func (p *Pause) Sleep(d time.Duration, ready func()) bool {
	st := &pauseState{ready: ready}
	if !p.state.CompareAndSwap(nil, st) {
		return false
	}
	// Whichever of the timer and Wake takes st out calls ready; a timer
	// that comes second does nothing.
	time.AfterFunc(d, func() {
		if p.state.CompareAndSwap(st, nil) {
			ready()
		}
	})
	return true
}

// Wake ends a pause at once, starting the next reader now, and makes any
// later Sleep report false.
func (p *Pause) Wake() {
	if st := p.state.Swap(woken); st != nil && st != woken {
		st.ready()
	}
}

// Paused reports whether a reader is due: the connection is paused.
func (p *Pause) Paused() bool {
	st := p.state.Load()
	return st != nil && st != woken
}
