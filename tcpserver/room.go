package tcpserver

import (
	"slices"
	"strings"
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

	// hist is the room's lines in the hub's memory (see Hub.hist). Lines
	// are added to it under mu, so that its order is the room's.
	hist *roomHistory

	// pins counts those who looked the room up under the hub's lock and
	// use it after letting go (Deliver, hydrate): a pinned room is not
	// forgotten. Added to under the hub's lock, taken from anywhere.
	pins atomic.Int32

	mu         sync.Mutex
	members    []*Client // Client.idx is the index here
	lastActive time.Time
	synced     uint64     // the hub's histEpoch when history last came from the cluster or the store
	budget     roomBudget // what the room may still deliver

	// sortedNames is the sorted names of the first presenceNames shown
	// members, as a presence event lists them, kept while those members
	// stay; nil when it must be made again. Events share it: it is never
	// changed, only replaced. namesEnd is the index in members just past
	// the last one looked at to make it.
	sortedNames []string
	namesEnd    int

	// pending holds the members whose join is not announced yet (see
	// join), each with its timer. They are not in presence events but
	// their own, and their leave is not announced either.
	pending map[*Client]*pendingJoin

	// ignorers are the members who ignore someone (see ignoreList): an
	// event that none of them ignores goes to everyone without asking
	// each member.
	ignorers []*Client
}

// pendingJoin is a join to announce once the timer fires.
type pendingJoin struct{ timer *time.Timer }

func newRoom(h *Hub, name string) *Room {
	r := &Room{hub: h, name: name, lastActive: time.Now()}
	r.hist = h.hist.open(name)
	return r
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// join adds c and tells it where it is (hello, any notices, history, who
// is here), then announces it to the others: after HubConfig.AnnounceDelay,
// or as soon as it says something, whichever comes first (at once if the
// delay is negative). A member who leaves before that is never announced,
// its leave neither: connecting and leaving over and over shows nobody
// anything. (InspIRCd's delayed join, channel mode +D, does the same until
// the newcomer speaks.)
func (r *Room) join(c *Client, notices []string) {
	h := r.hub
	hello := &Event{Kind: KindHello, Room: r.name, To: c.Name()}
	if c.joined {
		hello.Text = "You are now in " + r.name + " as " + c.Name() + "."
	} else {
		hello.Text = "Welcome to chatbridge, " + c.Name() + "! You are in " + r.name + ". Type /help for commands."
		c.joined = true
	}
	hello.Addr = h.mod.topic(r.name) // see Event.Topic
	h.stamp(hello)

	r.mu.Lock()
	defer r.mu.Unlock()
	m := c.member
	m.Send(hello)
	for _, n := range notices {
		m.Send(h.notice(KindSystem, n))
	}
	c.replayedLocked(r.replayLocked(c))
	c.idx = len(r.members)
	r.members = append(r.members, c)
	if c.ignored.Load() != nil {
		r.ignorers = append(r.ignorers, c)
	}
	r.lastActive = time.Now()
	if r.pending == nil {
		r.pending = make(map[*Client]*pendingJoin)
	}
	p := &pendingJoin{}
	r.pending[c] = p
	c.visible.Store(false)
	m.Send(r.presenceLocked(c))
	if d := h.cfg.AnnounceDelay; d >= 0 {
		p.timer = time.AfterFunc(d, func() { r.showWhenDue(c, p) })
		return
	}
	r.showLocked(c)
}

// replayLocked sends c the room's last History lines, with whether
// there are earlier ones, and returns them (before /ignore hides any).
func (r *Room) replayLocked(c *Client) ([]*Event, bool) {
	h := r.hub
	if h.cfg.History <= 0 {
		return nil, false
	}
	lines, more := r.hist.last(h.cfg.History)
	if kept, cut := fitQueue(c.member, lines); cut {
		lines, more = kept, true
	}
	shown := lines
	if l := c.ignored.Load(); l != nil && len(shown) > 0 {
		shown = l.visible(shown)
	}
	if len(shown) > 0 {
		c.member.Send(h.stamp(&Event{Kind: KindHistory, Room: r.name, Events: shown, More: more}))
	}
	return lines, more
}

// showWhenDue announces c's join, pending as p, if it is still pending:
// c may have left, spoken, or left and come back meanwhile.
func (r *Room) showWhenDue(c *Client, p *pendingJoin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[c] == p {
		r.showLocked(c)
	}
}

// show announces c's join now if it is still pending: c is about to say
// something to the room.
func (r *Room) show(c *Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pending[c]; ok {
		if p.timer != nil {
			p.timer.Stop()
		}
		r.showLocked(c)
	}
}

// showLocked makes pending c one of the members everyone sees, and
// announces it, unless the room is bigger than AnnounceLimit.
func (r *Room) showLocked(c *Client) {
	h := r.hub
	delete(r.pending, c)
	c.visible.Store(true)
	if len(r.sortedNames) < presenceNames {
		r.sortedNames = nil // c is one more to list; a full list may stay as it is
	}
	join := h.stamp(&Event{Kind: KindJoin, Room: r.name, From: c.Name(), Addr: c.shown})
	r.publishLocked(join, c, len(r.members) <= h.cfg.AnnounceLimit)
}

// leave removes c and announces it, with reason if there is one, if its
// join was announced.
func (r *Room) leave(c *Client, reason string) {
	h := r.hub
	r.mu.Lock()
	defer r.mu.Unlock()
	i := c.idx
	if i >= len(r.members) || r.members[i] != c {
		return
	}
	p, quiet := r.pending[c]
	if quiet {
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(r.pending, c)
	}
	if c.ignored.Load() != nil {
		r.dropIgnorerLocked(c)
	}
	if r.sortedNames != nil && !quiet && i < r.namesEnd {
		// c may be listed. (A member not announced is not, and one moved
		// into its place from past namesEnd need not be: the list is of
		// the members announced, the first of them if there are more.)
		r.sortedNames = nil
	}
	last := len(r.members) - 1
	r.members[i] = r.members[last]
	r.members[i].idx = i
	r.members[last] = nil
	r.members = r.members[:last]
	if len(r.members) == 0 {
		r.members = nil // give back a big room's array
		r.pending = nil
	}
	r.lastActive = time.Now()
	if quiet {
		return
	}
	ev := h.stamp(&Event{Kind: KindLeave, Room: r.name, From: c.Name(), Addr: c.shown, Text: reason})
	r.publishLocked(ev, nil, len(r.members)+1 <= h.cfg.AnnounceLimit)
}

// renamedLocked tells the room that c, a member, is now known by ev.To
// (ev is the KindNick event). The room is told only if it was told c is
// here and is no bigger than AnnounceLimit: a hundred members renaming
// in a room of thousands would otherwise be a hundred notices to each.
// c itself is always told (the page learns its new name so), and the
// relay is told if the room was; the other nodes apply their own limit.
func (r *Room) renamedLocked(c *Client, ev *Event) {
	if _, quiet := r.pending[c]; quiet {
		c.member.Send(ev)
		r.hub.deliveries.Add(1)
		return
	}
	if len(r.members) <= r.hub.cfg.AnnounceLimit {
		r.publishLocked(ev, nil, true)
		return
	}
	c.member.Send(ev)
	r.hub.deliveries.Add(1)
	r.publishLocked(ev, nil, false)
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
	lines, bytes := 0, 0
	rates := r.hub.budget
	if !rates.unbounded() {
		lines, bytes = sayCost(ev)
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
	if !r.hub.budget.unbounded() {
		lines, bytes = sayCost(ev)
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
	if len(r.ignorers) > 0 && r.ignoredLocked(ev) {
		return r.sendUnignoredLocked(ev, except)
	}
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

// ignoredLocked reports whether someone in the room ignores ev. It asks
// the few who ignore anyone once an event, so that the loop over every
// member asks nobody unless someone does.
func (r *Room) ignoredLocked(ev *Event) bool {
	for _, c := range r.ignorers {
		if c.ignored.Load().hides(ev) {
			return true
		}
	}
	return false
}

// dropIgnorerLocked takes c out of the room's ignorers.
func (r *Room) dropIgnorerLocked(c *Client) {
	if i := slices.Index(r.ignorers, c); i >= 0 {
		r.ignorers = slices.Delete(r.ignorers, i, i+1)
	}
}

// sendUnignoredLocked is sendLocked for an event someone in the room
// ignores: each member's list has its say.
func (r *Room) sendUnignoredLocked(ev *Event, except *Client) int {
	n := 0
	for _, m := range r.members {
		if m == except {
			continue
		}
		if l := m.ignored.Load(); l != nil && l.hides(ev) {
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
	r.hist.add(ev)
	if s := r.hub.cfg.Store; s != nil {
		s.Append(ev)
	}
}

// presence returns who is in the room, as an event for asker.
func (r *Room) presence(asker *Client) *Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.presenceLocked(asker)
}

// presenceLocked lists the first presenceNames members whose join was
// announced, sorted, and asker too if it is one not yet announced: a
// member not announced to the room shows in nobody's list but its own,
// so that the page, which keeps its list from presence, joins and
// leaves, never lists one whose leave it will not be told. Sorting the
// names for every join of a big room cost a tenth of a connection's CPU,
// so the list is kept (see Room.sortedNames) until one of them leaves or
// is renamed, or a member is announced among them; in a cluster, where
// other nodes' members come into it, it is made each time.
func (r *Room) presenceLocked(asker *Client) *Event {
	count := len(r.members) - len(r.pending)
	names := r.sortedNames
	if names == nil {
		names = make([]string, 0, min(count, presenceNames))
		i := 0
		for ; i < len(r.members) && len(names) < presenceNames; i++ {
			if m := r.members[i]; r.pending[m] == nil {
				names = append(names, m.Name())
			}
		}
		r.namesEnd = i
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
	if _, quiet := r.pending[asker]; quiet {
		count++
		if len(names) < presenceNames {
			names = withName(names, asker.Name())
		}
	}
	ev := &Event{Kind: KindPresence, Time: time.Now(), Room: r.name, Names: names, Count: count}
	if reg := r.hub.mod.registeredAmong(names); reg != nil {
		ev.Text = strings.Join(reg, " ") // see Event.Registered
	}
	if ver := r.hub.verifiedAmong(names); ver != nil {
		ev.Addr = strings.Join(ver, " ") // see Event.Verified
	}
	return ev.finish()
}

// withName returns a copy of the sorted names with name in its place.
func withName(names []string, name string) []string {
	i, _ := slices.BinarySearchFunc(names, name, compareFold)
	out := make([]string, 0, len(names)+1)
	out = append(out, names[:i]...)
	out = append(out, name)
	return append(out, names[i:]...)
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
	return len(r.members) == 0 && r.hist.empty()
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
