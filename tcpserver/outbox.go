package tcpserver

import (
	"errors"
	"os"
	"sync"
)

// ReasonTooSlow is why a member whose queue overflowed, or whose write
// timed out, is cut off.
const ReasonTooSlow = "too slow"

// spareKeep is the largest queue array an Outbox keeps while idle.
const spareKeep = 8

// DefaultQueueBytes is the most bytes a member may have waiting, queued
// and being written, before it is cut off as too slow (see
// [Outbox.Init]): about 250 lines of 4 KB, a minute of a busy room.
const DefaultQueueBytes = 1 << 20

// A Sink is the connection an [Outbox] writes to. The Outbox calls
// BeginBatch and Interrupt with its lock held (they must only touch the
// connection's deadlines), the others from its writer goroutine.
type Sink interface {
	// BeginBatch comes before each batch is taken out: set the write
	// deadline, say.
	BeginBatch()
	// Interrupt comes when the member is cut off: end a write in
	// progress at once.
	Interrupt()
	// WriteEvents writes a batch, in order.
	WriteEvents(batch []*Event) error
	// Cost is how many bytes WriteEvents will write for ev, about: what
	// ev weighs in the member's queue. It is called with the Outbox's
	// lock held, often with a room's too, so it must be quick; the same
	// event must always cost the same.
	Cost(ev *Event) int
	// Drained comes after Close, once everything queued is written: say
	// the last words (reason) and hang up.
	Drained(reason string)
	// Abort comes after a cut: one short try at telling the member why,
	// then close.
	Abort(reason string)
	// Failed comes when a write failed for any other reason than a
	// timeout: close.
	Failed(err error)
}

// An Outbox is the sending half every transport's member shares: a
// bounded queue of events and a writer goroutine that runs only while
// there is something to write, so an idle member has neither. Send never
// blocks: a member whose queue overflows, in events or in bytes, or whose
// write does not finish within its deadline, is cut off as too slow and
// counted.
//
// The bytes bound what one member that lags may pin. Events are shared
// by every member they go to, so a queue costs the server only its array
// and what keeps its events alive; but a member far behind keeps alive
// every event since it fell behind, and each writer copies what it writes
// through a buffer. The bytes counted are the event's cost to this member
// (its Sink's Cost: its text line, or its JSON), once per queue entry,
// from Send until the writer has written it.
//
// The zero Outbox is unusable; call Init before the member is connected.
type Outbox struct {
	hub      *Hub
	limit    int // events
	maxBytes int // bytes queued and being written; 0 or less: no bound
	sink     Sink
	wg       sync.WaitGroup // the writer

	mu      sync.Mutex
	queue   []*Event // waiting for the writer
	spare   []*Event // the writer's last batch array, for reuse
	queued  int      // the cost of queue
	inBatch int      // the cost of the batch being written
	writing bool     // a writer goroutine is running (or closing up)
	closing bool     // no more events are taken
	abort   bool     // stop writing: the member is being cut off
	stopped bool     // the connection is gone: no writer starts any more
	reason  string   // why the connection is closing
}

// Init sets the Outbox up: at most limit events queued, and maxBytes of
// them queued and being written (0 or less: no bound in bytes), written
// to sink, slow members counted in hub's stats. An event costing more
// than maxBytes alone is still taken when nothing else is waiting: a room's
// history may be big.
func (o *Outbox) Init(hub *Hub, limit, maxBytes int, sink Sink) {
	o.hub, o.limit, o.maxBytes, o.sink = hub, limit, maxBytes, sink
}

// Bound returns the most bytes o lets wait (0 or less: no bound), for
// [QueueBounded].
func (o *Outbox) Bound() int { return o.maxBytes }

// Send queues ev; see [Member].
func (o *Outbox) Send(ev *Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return
	}
	if len(o.queue) >= o.limit {
		o.cutLocked()
		return
	}
	cost := o.sink.Cost(ev)
	if held := o.queued + o.inBatch; o.maxBytes > 0 && held > 0 && held+cost > o.maxBytes {
		o.cutLocked()
		return
	}
	o.queue = append(o.queue, ev)
	o.queued += cost
	o.startLocked()
}

// TrySend queues ev only while the queue is less than half full, in
// events and in bytes (ev's cost included), and reports whether it did.
// Unlike Send it never cuts the member off: it is for what others choose
// to send the member (a private message), whose sender can be told it was
// not delivered. The other half of the queue is kept for the room, so
// that what others send one member never brings it nearer to being cut
// off than half its queue.
func (o *Outbox) TrySend(ev *Event) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing || 2*len(o.queue) >= o.limit {
		return false
	}
	cost := o.sink.Cost(ev)
	if o.maxBytes > 0 && 2*(o.queued+o.inBatch+cost) > o.maxBytes {
		return false
	}
	o.queue = append(o.queue, ev)
	o.queued += cost
	o.startLocked()
	return true
}

// Close takes no more events; the writer writes what is queued, then
// last, then calls the sink's Drained with reason. It reports false if
// the Outbox was already closing.
func (o *Outbox) Close(reason string, last ...*Event) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false
	}
	o.closing, o.reason = true, reason
	for _, ev := range last {
		o.queue = append(o.queue, ev)
		o.queued += o.sink.Cost(ev)
	}
	o.startLocked()
	return true
}

// Stop drops what is queued and starts no writer any more: the
// connection is being torn down. Wait then waits for a writer already
// running.
func (o *Outbox) Stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closing, o.stopped = true, true
	clear(o.queue)
	o.queue, o.queued = nil, 0
}

// Wait waits for the writer to finish.
func (o *Outbox) Wait() { o.wg.Wait() }

// Closing reports whether the Outbox takes no more events.
func (o *Outbox) Closing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}

// Reason says why the connection is closing: the reason given to Close,
// [ReasonTooSlow] for a cut, "" while it is not.
func (o *Outbox) Reason() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reason
}

// cutLocked drops a member that cannot keep up: its queue is thrown away,
// its write in progress is interrupted, and the writer has the sink abort.
func (o *Outbox) cutLocked() {
	o.closing, o.abort, o.reason = true, true, ReasonTooSlow
	clear(o.queue)
	o.queue, o.queued = o.queue[:0], 0
	o.hub.CountSlowKick()
	o.sink.Interrupt()
	o.startLocked()
}

func (o *Outbox) startLocked() {
	if o.writing || o.stopped {
		return
	}
	o.writing = true
	o.wg.Add(1)
	go o.writeLoop()
}

// writeLoop writes queued events, every event queued by then in one
// batch, until the queue is empty; then it exits. When the connection is
// closing it finishes it off instead.
func (o *Outbox) writeLoop() {
	defer o.wg.Done()
	var batch []*Event
	for {
		o.mu.Lock()
		o.inBatch = 0
		if batch != nil && cap(batch) <= spareKeep {
			o.spare = batch[:0]
		}
		if o.abort {
			reason := o.reason
			o.mu.Unlock()
			o.sink.Abort(reason)
			return
		}
		batch = o.queue
		if len(batch) == 0 {
			if o.closing && !o.stopped {
				reason := o.reason
				o.mu.Unlock()
				o.sink.Drained(reason)
				return
			}
			if cap(o.queue) > spareKeep {
				o.queue = nil
			}
			o.writing = false
			o.mu.Unlock()
			return
		}
		o.queue, o.spare = o.spare, nil
		o.inBatch, o.queued = o.queued, 0
		o.sink.BeginBatch()
		o.mu.Unlock()

		err := o.sink.WriteEvents(batch)
		clear(batch)
		if err != nil {
			o.writeFailed(err)
			return
		}
	}
}

// writeFailed ends a connection whose write failed. A timeout means the
// member stopped reading: it is cut off as too slow.
func (o *Outbox) writeFailed(err error) {
	o.mu.Lock()
	cut := o.abort
	if !cut && errors.Is(err, os.ErrDeadlineExceeded) {
		cut = true
		o.closing, o.abort, o.reason = true, true, ReasonTooSlow
		o.hub.CountSlowKick()
	}
	reason := o.reason
	o.mu.Unlock()
	if cut {
		o.sink.Abort(reason)
		return
	}
	o.sink.Failed(err)
}
