package tcpserver

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// presenceNames is the most names a presence event lists; the rest are
// counted. A room of ten thousand should not cost a 200 KB line per join.
const presenceNames = 100

// A Room is a set of members who hear each other, with the recent lines
// said in it.
//
// Fan-out happens under the room's lock, in the sender's goroutine: every
// member gets the same events in the same order, and history and live
// lines never cross. Sending to a member only queues (see [Member]), so the
// lock is held for a few tens of nanoseconds per member.
type Room struct {
	hub  *Hub
	name string

	// hist is the room's recent lines, guarded by mu; the hub's history
	// store takes mu to trim them.
	hist *roomHistory

	// pins counts those who looked the room up under the hub's lock and
	// use it after letting go (Deliver, hydrate): a pinned room is not
	// forgotten. Added to under the hub's lock, taken from anywhere.
	pins atomic.Int32

	mu         sync.Mutex
	members    []*Client // Client.idx is the index here
	lastActive time.Time
	synced     uint64     // the hub's histEpoch when history last came from the cluster
	budget     roomBudget // what the room may still deliver

	// sortedNames is the sorted names of the first presenceNames members, as
	// a presence event lists them, kept while those members stay; nil
	// when it must be made again. Events share it: it is never changed,
	// only replaced.
	sortedNames []string
}

func newRoom(h *Hub, name string) *Room {
	r := &Room{hub: h, name: name, lastActive: time.Now()}
	r.hist = h.hist.open(name, &r.mu)
	return r
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// join adds c and tells it where it is (hello, any notices, history, who
// is here), then announces it to the others.
func (r *Room) join(c *Client, notices []string) {
	h := r.hub
	hello := &Event{Kind: KindHello, Room: r.name, To: c.Name()}
	if c.joined {
		hello.Text = "You are now in " + r.name + " as " + c.Name() + "."
	} else {
		hello.Text = "Welcome to chatbridge, " + c.Name() + "! You are in " + r.name + ". Type /help for commands."
		c.joined = true
	}
	h.stamp(hello)

	r.mu.Lock()
	defer r.mu.Unlock()
	m := c.member
	m.Send(hello)
	for _, n := range notices {
		m.Send(h.notice(KindSystem, n))
	}
	if lines := r.hist.linesLocked(); len(lines) > 0 {
		m.Send(h.stamp(&Event{Kind: KindHistory, Room: r.name, Events: lines}))
	}
	c.idx = len(r.members)
	r.members = append(r.members, c)
	if c.idx < presenceNames {
		r.sortedNames = nil
	}
	m.Send(r.presenceLocked())
	r.lastActive = time.Now()
	join := h.stamp(&Event{Kind: KindJoin, Room: r.name, From: c.Name(), Addr: c.shown})
	r.publishLocked(join, c, len(r.members) <= h.cfg.AnnounceLimit)
}

// leave removes c and announces it, with reason if there is one.
func (r *Room) leave(c *Client, reason string) {
	h := r.hub
	r.mu.Lock()
	defer r.mu.Unlock()
	i := c.idx
	if i >= len(r.members) || r.members[i] != c {
		return
	}
	if i < presenceNames {
		r.sortedNames = nil // the last member takes c's place
	}
	last := len(r.members) - 1
	r.members[i] = r.members[last]
	r.members[i].idx = i
	r.members[last] = nil
	r.members = r.members[:last]
	if len(r.members) == 0 {
		r.members = nil // give back a big room's array
	}
	r.lastActive = time.Now()
	ev := h.stamp(&Event{Kind: KindLeave, Room: r.name, From: c.Name(), Addr: c.shown, Text: reason})
	r.publishLocked(ev, nil, len(r.members)+1 <= h.cfg.AnnounceLimit)
}

// say sends ev, a line c said or did, or a KindBatch of them, to the
// room. Lines are kept in the history one by one, and go to the relay one
// by one; local members get a batch as one event, so a member's queue
// holds one entry however many lines a read carried.
//
// A line (or batch) goes only if the room's budget has room for it (see
// roomBudget); if not, say reports false and how long to wait, and
// nothing of it is sent, kept or relayed.
func (r *Room) say(ev *Event, from *Client) (ok bool, wait time.Duration) {
	except := from
	if from != nil && from.echo {
		except = nil // it asked for its own lines back
	}
	lines, bytes := 1, 0
	rates := r.hub.budget
	if !rates.unbounded() {
		if ev.Kind != KindBatch {
			bytes = lineBytes(ev)
		} else {
			lines = len(ev.Events)
			for _, line := range ev.Events {
				bytes += lineBytes(line)
			}
		}
	}
	r.mu.Lock()
	n := len(r.members)
	if except != nil && n > 0 {
		n-- // the sender is a member
	}
	if !r.budget.take(ev.Time, rates, lines, bytes, n) {
		wait = r.budget.wait(rates, lines, bytes, n)
		r.mu.Unlock()
		r.hub.roomBusy.Add(uint64(lines))
		return false, wait
	}
	if ev.Kind != KindBatch {
		r.rememberLocked(ev)
		r.publishLocked(ev, except, true)
	} else {
		for _, line := range ev.Events {
			r.rememberLocked(line)
		}
		n := r.sendLocked(ev, except)
		r.hub.deliveries.Add(uint64(n * (len(ev.Events) - 1)))
		if relay := r.hub.cfg.Relay; relay != nil {
			for _, line := range ev.Events {
				relay.Publish(line)
			}
		}
	}
	r.mu.Unlock()
	r.hub.trimHistory()
	return true, 0
}

// broadcast sends ev to every member (but except, if not nil), keeping it
// in the history if it is a line, or its lines if it is a batch. It is how
// relayed events arrive. Their lines are charged to the room's budget but
// never refused (see roomBudget.charge).
func (r *Room) broadcast(ev *Event, except *Client) {
	lines, bytes := 0, 0
	switch ev.Kind {
	case KindMessage, KindAction:
		lines, bytes = 1, lineBytes(ev)
	case KindBatch:
		lines = len(ev.Events)
		for _, line := range ev.Events {
			bytes += lineBytes(line)
		}
	}
	r.mu.Lock()
	if lines > 0 {
		r.budget.charge(time.Now(), r.hub.budget, lines, bytes, len(r.members))
	}
	if ev.Kind != KindBatch {
		r.rememberLocked(ev)
		r.sendLocked(ev, except)
	} else {
		for _, line := range ev.Events {
			r.rememberLocked(line)
		}
		n := r.sendLocked(ev, except)
		r.hub.deliveries.Add(uint64(n * (len(ev.Events) - 1)))
	}
	r.mu.Unlock()
	r.hub.trimHistory()
}

// publishLocked sends a local event to the room's members (when local is
// true) and to the relay, in the room's order.
func (r *Room) publishLocked(ev *Event, except *Client, local bool) {
	if local {
		r.sendLocked(ev, except)
	}
	if relay := r.hub.cfg.Relay; relay != nil {
		relay.Publish(ev)
	}
}

// sendLocked queues ev for every member but except.
func (r *Room) sendLocked(ev *Event, except *Client) int {
	n := 0
	for _, m := range r.members {
		if m == except {
			continue
		}
		m.member.Send(ev)
		n++
	}
	r.hub.deliveries.Add(uint64(n))
	return n
}

// rememberLocked keeps ev in the history if it is a line. Its caller
// trims the hub's history (Hub.trimHistory) once it has let go of the
// room.
func (r *Room) rememberLocked(ev *Event) {
	if ev.Kind != KindMessage && ev.Kind != KindAction {
		return
	}
	r.lastActive = ev.Time
	r.hist.addLocked(ev)
}

// presence returns who is in the room, as an event for one member.
func (r *Room) presence() *Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.presenceLocked()
}

// presenceLocked lists the first presenceNames members, sorted. Sorting
// them for every join of a big room cost a tenth of a connection's CPU, so
// the list is kept (see Room.sortedNames) until one of them leaves or is
// renamed; in a cluster, where other nodes' members come into it, it is
// made each time.
func (r *Room) presenceLocked() *Event {
	count := len(r.members)
	names := r.sortedNames
	if names == nil {
		names = make([]string, 0, min(len(r.members), presenceNames))
		for _, m := range r.members[:min(len(r.members), presenceNames)] {
			names = append(names, m.Name())
		}
		if cl := r.hub.cluster; cl != nil {
			remote, n := cl.RemoteMembers(r.name, presenceNames-len(names))
			names = append(names, remote...)
			count += n
		}
		slices.SortFunc(names, compareFold)
		if r.hub.cluster == nil {
			r.sortedNames = names
		}
	}
	return (&Event{Kind: KindPresence, Time: time.Now(), Room: r.name, Names: names, Count: count}).finish()
}

// renamed forgets the kept presence list: a member's name changed.
func (r *Room) renamed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sortedNames = nil
}

// usage returns how many are in the room and when it was last used.
func (r *Room) usage() (int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members), r.lastActive
}

// idle reports whether the room has nobody in it and nothing to replay.
func (r *Room) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members) == 0 && r.hist.lenLocked() == 0
}

// compareFold orders names as their ASCII lower case would, without
// building it (names are ASCII, see ValidNick; other bytes compare as
// they are).
func compareFold(a, b string) int {
	for i := range min(len(a), len(b)) {
		ca, cb := lowerASCII(a[i]), lowerASCII(b[i])
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return len(a) - len(b)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
