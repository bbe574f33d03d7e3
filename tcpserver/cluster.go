package tcpserver

import (
	"context"
	"errors"
	"time"
)

// Errors a [Cluster] returns.
var (
	ErrNameTaken    = errors.New("name taken on another node")
	ErrNoSuchMember = errors.New("no such member")
)

// clusterTimeout bounds every call the hub makes to a [Cluster]. The calls
// run in a member's reader goroutine, never under a hub or room lock, so a
// slow link holds up only the member who asked.
const clusterTimeout = 2 * time.Second

// A Cluster is what a [Relay] may also implement to make several nodes one
// chat: names unique across nodes, who is where, private messages to
// members on other nodes and the history of rooms. The hub checks for it
// once, in [NewHub].
//
// Methods that take a ctx may block on the network; the hub calls them
// outside its locks, with a timeout. The others must return at once:
// the hub may call them with a room's lock held.
//
// An error other than the sentinels means the cluster could not be asked
// (the link is down): the hub then does what a single node does.
type Cluster interface {
	// ClaimName reserves name (as typed; unique regardless of case) for a
	// member of this node, in room. It returns [ErrNameTaken] if a member
	// of another node has it. On any other error the name is still
	// recorded as this node's, to be claimed once the link is back; the
	// hub then checks it on this node only.
	ClaimName(ctx context.Context, name, room string) error

	// ReleaseName gives up a name claimed by ClaimName.
	ReleaseName(name string)

	// RemoteMembers returns up to limit names of the members of room on
	// other nodes, and how many there are in all.
	RemoteMembers(room string, limit int) (names []string, count int)

	// RemoteRooms returns the rooms that have members on other nodes, and
	// how many.
	RemoteRooms() map[string]int

	// Private hands a private message to the member called to on another
	// node, through its [Hub.DeliverPrivate], and returns that member's
	// name as it spells it. It returns [ErrNoSuchMember] if nobody is
	// called to.
	Private(ctx context.Context, from, to, text string) (string, error)

	// History returns the last lines (KindMessage, KindAction) said in room
	// on any node, oldest first: this node's own with their ID, the others'
	// with Node and NodeID and no ID.
	History(ctx context.Context, room string) ([]*Event, error)
}

// Notice sends text as a system line ("*** text") to every local member. A
// relay uses it to tell members about the link to the other nodes.
func (h *Hub) Notice(text string) {
	ev := h.notice(KindSystem, text)
	h.mu.Lock()
	rooms := make([]*Room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		r.sendLocked(ev, nil)
		r.mu.Unlock()
	}
}

// DeliverPrivate hands a private message from a member of another node to
// the local member called to, within that member's rate of private
// messages and half its queue, as a local one is (see [Client.private]);
// the sender's address is not known here, so only the rate of all senders
// together applies. It returns that member's name, [ErrNoSuchMember] if
// nobody here is called to, or why the message was not delivered, fit to
// show its sender.
func (h *Hub) DeliverPrivate(from, to, text string) (string, error) {
	target := h.lookup(to)
	if target == nil {
		return "", ErrNoSuchMember
	}
	name := target.Name()
	ev := h.stamp(&Event{Kind: KindPrivate, From: from, To: name, Text: text})
	if err := target.offerPrivate(ev, ""); err != nil {
		return "", err
	}
	return name, nil
}

// ResyncHistory makes every room take its history from the cluster again
// on its next join. A relay calls it when its link comes back, since lines
// said while it was away never reached this node.
func (h *Hub) ResyncHistory() { h.histEpoch.Add(1) }

// claimForConnect claims a name in the cluster for a new member: the one
// it asked for, or else a guest name. If the cluster cannot be asked, the
// name is kept (the cluster will claim it when it can) and checked on this
// node only, like any other.
func (h *Hub) claimForConnect(name, room string, notices []string) (string, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if name != "" {
		err := h.cluster.ClaimName(ctx, name, room)
		if !errors.Is(err, ErrNameTaken) {
			if err != nil {
				h.log.Debug("cluster name claim failed; checking this node only", "name", name, "err", err)
			}
			return name, notices
		}
		notices = append(notices, "nick \""+name+"\" is taken; you are a guest for now")
	}
	others := 0
	for _, k := range h.cluster.RemoteRooms() {
		others += k
	}
	for try := range 5 {
		h.mu.Lock()
		guest := h.guestNameAmongLocked(others, try) // a bigger space after each clash
		// Drawn, not yet taken: nobody else connecting meanwhile may
		// draw it too, or both would claim it as this node's and one
		// keep a name the cluster never heard of. Connect takes it, or
		// gives it up, with the lock taken again.
		h.drawn[guest] = struct{}{}
		h.mu.Unlock()
		err := h.cluster.ClaimName(ctx, guest, room)
		if !errors.Is(err, ErrNameTaken) {
			if err != nil {
				h.log.Debug("cluster name claim failed; checking this node only", "name", guest, "err", err)
			}
			return guest, notices
		}
		h.mu.Lock()
		delete(h.drawn, guest)
		h.mu.Unlock()
	}
	return "", notices
}

// hydrate fills the room called name with its last History lines as
// the store (HubConfig.Store) or else the cluster has them, if it has not
// had them since the link last came back. The store or cluster is asked
// with no lock held, and within clusterTimeout: one that is slow or down
// holds up only the member who is joining, and the room then replays
// what this node kept.
func (h *Hub) hydrate(name string) {
	if h.cfg.History <= 0 || h.cluster == nil && h.cfg.Store == nil {
		return
	}
	epoch := h.histEpoch.Load()
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		done := r.synced >= epoch
		r.mu.Unlock()
		if done {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	var lines []*Event
	var more bool
	var err error
	if s := h.cfg.Store; s != nil {
		lines, more, err = s.Lines(ctx, name, LineKey{}, h.cfg.History)
	} else {
		lines, err = h.cluster.History(ctx, name)
	}
	if err != nil {
		h.log.Debug("room's history unavailable", "room", name, "err", err)
		return
	}
	h.mu.Lock()
	r, err = h.roomLocked(name)
	if err == nil {
		h.pinLocked(r) // not forgotten before it has its lines
	}
	h.mu.Unlock()
	if err != nil {
		// The member's move or connect meets the same refusal and says why.
		h.log.Debug("room's history not kept", "room", name, "err", err)
		return
	}
	r.seed(lines, more, epoch)
	h.unpin(r)
	h.trimHistory()
}

// nameOwn names a line of this node's, as a store or the cluster gives it
// back (Node empty), as this node names its lines in a cluster (see
// [Event.Key]), so that a line has one id whichever way it reached a
// member. The store's events are its own copies, not yet sent.
func (h *Hub) nameOwn(ev *Event) {
	if ev.Node == "" && h.node != "" {
		ev.Node, ev.NodeID = h.node, ev.ID
	}
	if ev.Node == h.node && ev.ID == 0 {
		ev.ID = ev.NodeID
	}
}

// storeLines is h.store's Lines with the lines named as every node names
// them (see nameOwn): a store other than the hub's own memory gives back
// copies of its own making, this node's lines without their node, and
// then neither /history's next page, nor /delete ID (the id members saw),
// nor the other nodes' copies of a deletion record matched them. Each
// reader of the store reads through here, before it measures, matches or
// shows a line.
func (h *Hub) storeLines(ctx context.Context, room string, before LineKey, limit int) ([]*Event, bool, error) {
	lines, more, err := h.store.Lines(ctx, room, before, limit)
	if h.store != Store(h.hist) {
		for _, ev := range lines {
			h.nameOwn(ev)
		}
	}
	return lines, more, err
}

// seed merges the room's last lines as the cluster or the store has them
// (more: it has earlier ones) with the ones this node kept: theirs first,
// then any kept here they do not have yet (said since they were asked),
// the newest History of them, in the place of the last lines kept here.
func (r *Room) seed(lines []*Event, more bool, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.synced >= epoch {
		return
	}
	h := r.hub
	hist := r.hist
	hist.mu.Lock()
	defer hist.mu.Unlock()
	own, _ := hist.lastLocked(max(h.cfg.History, len(lines)))
	seen := make(map[LineKey]bool, len(lines))
	for _, ev := range own {
		seen[ev.Key()] = true
	}
	merged := make([]*Event, 0, len(lines)+len(own))
	inMerged := make(map[LineKey]bool, len(lines))
	fresh := 0
	for _, ev := range lines {
		h.nameOwn(ev)
		k := ev.Key()
		if ev.Kind != KindMessage && ev.Kind != KindAction || inMerged[k] {
			continue
		}
		if ev.Node == h.node {
			h.sawID(k.ID) // a line of this node's, said before a restart
		}
		if _, older := hist.findLocked(k); older && !seen[k] {
			continue // kept here already, before the lines the merge replaces
		}
		if !seen[k] {
			fresh++
		}
		if ev.ID == 0 {
			ev.ID = h.newID(time.Now())
		}
		if ev.line == nil {
			ev.finish()
		}
		inMerged[k] = true
		merged = append(merged, ev)
	}
	if fresh > 0 {
		for _, ev := range own {
			if !inMerged[ev.Key()] {
				merged = append(merged, ev)
			}
		}
		hist.replaceTailLocked(len(own), merged, more)
	} else if hist.n == 0 {
		hist.earlier = more
	}
	r.synced = epoch
}
