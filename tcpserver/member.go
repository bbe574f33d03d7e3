package tcpserver

// A Member is the outbound side of one connection, as a transport
// implements it. The hub calls it from many goroutines at once, often with
// a room's lock held, so both methods must be safe for concurrent use and
// must never block on the network.
type Member interface {
	// Send queues ev for the member. It must return at once: a member
	// whose queue is full cuts itself off (counting it with
	// [Hub.CountSlowKick]) rather than make the sender wait. ev is shared
	// with other members and must not be changed. An [Outbox] does all
	// this; both of chatbridge's transports use one.
	Send(ev *Event)

	// Close ends the connection after the member has been sent what is
	// already queued and then reason, as a last notice. It returns at
	// once; the transport's reader sees the connection end and calls
	// [Client.Leave].
	Close(reason string)
}

// QueueBounded is what a [Member] whose queue is bounded in bytes (an
// [Outbox]'s) may also implement, so that what the hub sends it of
// history, which it may ask for itself, never costs it its connection:
// a history event keeps to half of QueueBound, in the newest lines.
type QueueBounded interface {
	QueueBound() int // bytes that may wait; 0 or less: no bound
}

// fitQueue returns the newest of lines whose cost (see lineBytes) fits in
// half of m's queue, if it is bounded in bytes, and whether it left any
// out. The newest line alone always fits: a queue holds at least 16 of
// the longest lines.
func fitQueue(m Member, lines []*Event) ([]*Event, bool) {
	b, ok := m.(QueueBounded)
	if !ok || len(lines) == 0 {
		return lines, false
	}
	room := b.QueueBound() / 2
	if room <= 0 {
		return lines, false
	}
	i := len(lines)
	for i > 0 {
		cost := lineBytes(lines[i-1])
		if cost > room && i < len(lines) {
			break
		}
		room -= cost
		i--
	}
	return lines[i:], i > 0
}
