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
