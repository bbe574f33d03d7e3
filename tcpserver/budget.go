package tcpserver

import (
	"math"
	"time"
)

// Defaults of a room's output budget (see HubConfig.RoomRate and
// HubConfig.RoomBytes), measured on two cores: what the server delivers
// to 5,000 to 10,000 WebSocket members, beside the load tool that reads
// it all, with p99 under a second (see README, "What the server does
// with bad input").
const (
	DefaultRoomRate  = 25_000   // deliveries (lines times the members who get them) a second
	DefaultRoomBytes = 64 << 20 // bytes delivered (bytes times members) a second
)

// A roomBudget is what a room may still deliver, so that one room cannot
// take the whole server: a line said in a room of ten thousand is ten
// thousand deliveries, and a member's own flood limit does not see that.
// Two token buckets, one of deliveries and one of bytes delivered, refill
// at the hub's RoomRate and RoomBytes a second and hold one second of
// each. A member's line is said only while both hold its cost (see
// roomBudget.take); lines relayed from other nodes are charged, never
// refused (see roomBudget.charge). Guarded by the room's lock.
type roomBudget struct {
	deliveries float64 // below zero: owed
	bytes      float64
	last       time.Time // when the buckets were last brought up to date; zero: full
}

// jsonEnvelope is about what a line's JSON takes besides its text, room,
// sender and ID (see keyLen): its type, time and field names.
const jsonEnvelope = 100

// lineBytes is the most one member may be sent for a line: its text
// line, or its JSON (see Event.JSON), in which '<', '>' and '&' take six
// bytes each and '"', '\' and a tab two. Without the JSON a line of 4,000
// '<' would be budgeted at 4 KB and sent to each of the page's members as
// 24 KB. Other characters that JSON escapes never get this far (see
// CleanLine).
func lineBytes(ev *Event) int {
	extra := 0
	for i := 0; i < len(ev.Text); i++ {
		switch ev.Text[i] {
		case '<', '>', '&':
			extra += 5
		case '"', '\\', '\t':
			extra++
		}
	}
	return max(len(ev.line), jsonEnvelope+keyLen(ev)+len(ev.Room)+len(ev.From)+len(ev.Text)+extra)
}

// sayCost is what ev costs a room's budget: one line and its lineBytes,
// or a batch's lines and their lineBytes in all; nothing for an event
// that is not a line.
func sayCost(ev *Event) (lines, bytes int) {
	switch ev.Kind {
	case KindMessage, KindAction:
		return 1, lineBytes(ev)
	case KindBatch:
		for _, line := range ev.Events {
			bytes += lineBytes(line)
		}
		return len(ev.Events), bytes
	}
	return 0, 0
}

// keyLen is the length of a line's JSON id, its [LineKey] as text: some
// 16 digits of a time-based ID, after the node's name in a cluster.
func keyLen(ev *Event) int {
	n := 20 // the most digits a uint64 takes
	if ev.Node != "" {
		n += len(ev.Node) + 1
	}
	return n
}

// budgetRates are the hub's, a rate of 0 or less meaning no bound.
type budgetRates struct {
	deliveries, bytes float64
}

func (r budgetRates) unbounded() bool { return r.deliveries <= 0 && r.bytes <= 0 }

// refill brings the buckets up to now. A room's budget starts full.
func (b *roomBudget) refill(now time.Time, r budgetRates) {
	if b.last.IsZero() {
		b.deliveries, b.bytes, b.last = r.deliveries, r.bytes, now
		return
	}
	dt := now.Sub(b.last).Seconds()
	if dt <= 0 {
		return // events are stamped before the room's lock is taken
	}
	b.last = now
	b.deliveries = min(r.deliveries, b.deliveries+dt*r.deliveries)
	b.bytes = min(r.bytes, b.bytes+dt*r.bytes)
}

// fits reports whether a cost may be drawn from a bucket holding tokens
// of at most capacity: while it holds the cost, or is full. So a line
// that costs more than a second's budget (a 4 KB line to twenty thousand
// members) still goes when the room has been quiet for a second, and
// leaves the bucket owing the rest.
func fits(tokens, cost, capacity float64) bool {
	return capacity <= 0 || tokens >= min(cost, capacity)
}

// take draws the cost of lines delivered to n members, bytes each time
// in all, if both buckets allow it now, and reports whether they did.
func (b *roomBudget) take(now time.Time, r budgetRates, lines, bytes, n int) bool {
	if r.unbounded() || n == 0 {
		return true
	}
	b.refill(now, r)
	d, by := float64(lines*n), float64(bytes)*float64(n)
	if !fits(b.deliveries, d, r.deliveries) || !fits(b.bytes, by, r.bytes) {
		return false
	}
	b.draw(r, d, by)
	return true
}

// draw takes d deliveries and by bytes from the buckets that bound.
func (b *roomBudget) draw(r budgetRates, d, by float64) {
	if r.deliveries > 0 {
		b.deliveries -= d
	}
	if r.bytes > 0 {
		b.bytes -= by
	}
}

// charge draws the cost of lines delivered to n members whether the
// buckets allow it or not: the lines were said on another node and are
// already in its history, and refusing them here would split the room.
// What they owe is refused to this node's own members.
func (b *roomBudget) charge(now time.Time, r budgetRates, lines, bytes, n int) {
	if r.unbounded() || n == 0 {
		return
	}
	b.refill(now, r)
	b.draw(r, float64(lines*n), float64(bytes)*float64(n))
}

// wait says how long until lines of bytes in all, delivered to n
// members, would fit, at least a second: what a refused member is told.
func (b *roomBudget) wait(r budgetRates, lines, bytes, n int) time.Duration {
	need := func(tokens, cost, rate float64) float64 {
		if rate <= 0 {
			return 0
		}
		return (min(cost, rate) - tokens) / rate
	}
	s := max(need(b.deliveries, float64(lines*n), r.deliveries), need(b.bytes, float64(bytes)*float64(n), r.bytes), 1)
	return time.Duration(math.Ceil(s)) * time.Second
}
