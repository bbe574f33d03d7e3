package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"chatbridge/tcpserver"
)

// names keeps this node's names in the names bucket and watches the bucket
// for everybody else's.
//
// A name is claimed with a create-only write of its folded form, which
// JetStream refuses if the key holds a value: of two nodes claiming one
// name at once, exactly one wins. The owning node then keeps the entry
// alive by rewriting it (compare-and-set on its last revision) every
// PresenceTTL/3; the bucket forgets entries older than PresenceTTL, so the
// names of a node that died come free, and its members drop out of every
// other node's presence, within PresenceTTL.
//
// Entries are sealed (see sealer) with their key and the time they were
// written. One that is not, or is older than the window, is as good as
// absent: it shows nobody, routes no private message and may be
// overwritten by a claim. A node puts back at once its own entries that
// someone else deleted or overwrote, and deletes entries in its name that
// it did not write (a replay), so that what the bucket says of its
// members is what it wrote.
type names struct {
	r *Relay

	mu       sync.Mutex
	owned    map[string]*ownedName // by folded name: this node's members
	claiming map[string]int        // folded names being claimed now, not yet owned
	deletes  map[string]uint64     // released names still to delete, at their last revision
	dirty    map[string]bool       // folded names the writer must write or delete
	remote   map[string]remoteName // by folded name: other nodes' members
	// lastKnown is remote as it was when the link was last lost: while
	// the bucket cannot be asked, a name another node held then is still
	// refused, so that a failover of NATS does not let two members take
	// one name. Cleared when the watch starts again.
	lastKnown map[string]string // folded name -> node
	byRoom    map[string]map[string]string
	perNode   map[string]int // how many of remote each node has

	wake chan struct{} // the writer has work

	watchMu     sync.Mutex
	watchCancel context.CancelFunc
	watchDone   chan struct{}
}

type ownedName struct {
	name string
	room string
	rev  uint64 // the entry's revision as last written; 0: not in the bucket
}

type remoteName struct {
	nameEntry
	seen time.Time // when the entry was last written
}

func (n *names) init(r *Relay) {
	n.r = r
	n.owned = make(map[string]*ownedName)
	n.claiming = make(map[string]int)
	n.perNode = make(map[string]int)
	n.deletes = make(map[string]uint64)
	n.dirty = make(map[string]bool)
	n.remote = make(map[string]remoteName)
	n.byRoom = make(map[string]map[string]string)
	n.wake = make(chan struct{}, 1)
}

func (n *names) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// sealEntry returns this node's entry for the member called name, in
// room, as written now under key.
func (r *Relay) sealEntry(key, name, room string) []byte {
	e := nameEntry{Node: r.cfg.NodeID, Name: name, Room: room, Time: time.Now().UnixNano()}
	return r.seal.seal(nil, purposeName, key, e.encode())
}

// readEntry opens and decodes the entry stored under key.
func (r *Relay) readEntry(key string, b []byte, now time.Time) (nameEntry, ignored, error) {
	if len(b) > maxEntry {
		return nameEntry{}, ignoredUnverified, fmt.Errorf("%d bytes, more than an entry", len(b))
	}
	payload, err := r.seal.open(nil, purposeName, key, b)
	if err != nil {
		return nameEntry{}, ignoredUnverified, err
	}
	e, err := decodeEntry(key, payload)
	if err != nil {
		return e, ignoredBad, err
	}
	if !inWindow(e.Time, now, r.cfg.Window) {
		return e, ignoredReplayed, fmt.Errorf("entry of %s on %s written at %v", e.Name, e.Node, timeOf(e.Time))
	}
	return e, 0, nil
}

// holder returns the node that holds the name stored as key, by what the
// bucket says in b: "" if nobody does, for all this node can verify.
func (r *Relay) holder(key string, b []byte) string {
	e, why, err := r.readEntry(key, b, time.Now())
	if err != nil {
		r.ignore(why, "bucket key "+key, err)
		return ""
	}
	return e.Node
}

// ClaimName implements [tcpserver.Cluster].
func (r *Relay) ClaimName(ctx context.Context, name, room string) error {
	if r.cfg.Alone {
		return nil // nobody else to ask: the hub checks its own members
	}
	n := &r.names
	key := strings.ToLower(name)
	s, err := r.current()
	if err != nil {
		if n.heldElsewhere(key) {
			return tcpserver.ErrNameTaken
		}
		n.keep(key, name, room, 0)
		return err
	}
	n.mu.Lock()
	n.claiming[key]++ // so that the watch does not take our new entry for a stray
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.claiming[key]--; n.claiming[key] == 0 {
			delete(n.claiming, key)
		}
		n.mu.Unlock()
	}()
	val := r.sealEntry(key, name, room)
	rev, err := s.kv.Create(ctx, key, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		// Ours, released a moment ago and not yet deleted? Or an entry
		// nobody can vouch for? Then take it.
		e, gerr := s.kv.Get(ctx, key)
		if gerr != nil {
			return fmt.Errorf("claim %q: %w", name, gerr)
		}
		if node := r.holder(key, e.Value()); node != "" && node != r.cfg.NodeID {
			return tcpserver.ErrNameTaken
		}
		rev, err = s.kv.Update(ctx, key, val, e.Revision())
	}
	if err != nil {
		if n.heldElsewhere(key) { // the bucket does not answer now
			return tcpserver.ErrNameTaken
		}
		n.keep(key, name, room, 0)
		return fmt.Errorf("claim %q: %w", name, err)
	}
	n.keep(key, name, room, rev)
	return nil
}

// heldElsewhere reports whether another node held the name stored as key
// when this node last knew: by the watch, or when the link was lost.
func (n *names) heldElsewhere(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m, ok := n.remote[key]; ok && m.Node != n.r.cfg.NodeID {
		return true
	}
	node, ok := n.lastKnown[key]
	return ok && node != n.r.cfg.NodeID
}

// keep records name as this node's. rev 0 means it is not in the bucket
// yet: the writer will claim it.
func (n *names) keep(key, name, room string, rev uint64) {
	n.mu.Lock()
	n.owned[key] = &ownedName{name: name, room: room, rev: rev}
	delete(n.deletes, key)
	if rev == 0 {
		n.dirty[key] = true
	}
	n.mu.Unlock()
	if rev == 0 {
		n.poke()
	}
}

// ReleaseName implements [tcpserver.Cluster]. The entry is deleted by the
// writer, only if it is still the one this node wrote.
func (r *Relay) ReleaseName(name string) {
	if r.cfg.Alone {
		return
	}
	n := &r.names
	key := strings.ToLower(name)
	n.mu.Lock()
	if o, ok := n.owned[key]; ok {
		delete(n.owned, key)
		if o.rev != 0 {
			n.deletes[key] = o.rev
			n.dirty[key] = true
		}
	}
	n.mu.Unlock()
	n.poke()
}

// moved notes that the member called name is now in room (a join or a
// name change), to be written to the bucket.
func (n *names) moved(name, room string) {
	key := strings.ToLower(name)
	n.mu.Lock()
	o, ok := n.owned[key]
	if ok {
		o.name, o.room = name, room
		n.dirty[key] = true
	}
	n.mu.Unlock()
	if ok {
		n.poke()
	}
}

// refreshAll marks every name of this node to be written again.
func (n *names) refreshAll() {
	n.mu.Lock()
	for key := range n.owned {
		n.dirty[key] = true
	}
	n.mu.Unlock()
	n.poke()
}

// writeLoop writes what is dirty to the bucket, one entry at a time, in
// its own goroutine: claims are the only bucket writes anyone waits for.
func (n *names) writeLoop() {
	ctx := n.r.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		s, err := n.r.current()
		if err != nil {
			continue // setup marks everything dirty when the link is back
		}
		n.mu.Lock()
		keys := make([]string, 0, len(n.dirty))
		for key := range n.dirty {
			keys = append(keys, key)
		}
		clear(n.dirty)
		n.mu.Unlock()
		for _, key := range keys {
			if ctx.Err() != nil {
				return
			}
			if err := n.write(ctx, s.kv, key); err != nil {
				n.r.log.Debug("name not written; will retry", "name", key, "err", err)
				n.mu.Lock()
				n.dirty[key] = true
				n.mu.Unlock()
			}
		}
	}
}

// write brings key in the bucket up to date with this node's view of it.
func (n *names) write(ctx context.Context, kv jetstream.KeyValue, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n.mu.Lock()
	o, ok := n.owned[key]
	var want ownedName
	if ok {
		want = *o
	}
	delRev, del := n.deletes[key]
	delete(n.deletes, key)
	n.mu.Unlock()

	if !ok {
		if del {
			err := kv.Delete(ctx, key, jetstream.LastRevision(delRev))
			if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("delete %q: %w", key, err)
			}
		}
		return nil
	}
	val := n.r.sealEntry(key, want.name, want.room)
	var rev uint64
	var err error
	if want.rev != 0 {
		rev, err = kv.Update(ctx, key, val, want.rev)
	}
	if want.rev == 0 || err != nil {
		// Never written, expired while the link was down, or written by
		// someone else since.
		rev, err = kv.Create(ctx, key, val)
		if errors.Is(err, jetstream.ErrKeyExists) {
			e, gerr := kv.Get(ctx, key)
			if gerr != nil {
				return fmt.Errorf("read %q: %w", key, gerr)
			}
			if other := n.r.holder(key, e.Value()); other != "" && other != n.r.cfg.NodeID {
				n.r.log.Warn("name taken on another node while the link was down; both keep it until one leaves",
					"name", want.name, "other", other)
				n.mu.Lock()
				if n.owned[key] == o {
					delete(n.owned, key)
				}
				n.mu.Unlock()
				return nil
			}
			rev, err = kv.Update(ctx, key, val, e.Revision())
		}
	}
	if err != nil {
		return fmt.Errorf("write %q: %w", key, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.owned[key] {
	case o:
		o.rev = rev
	case nil:
		// Released while we wrote it: the delete must be of what we wrote.
		n.deletes[key] = rev
		n.dirty[key] = true
		n.poke()
	}
	return nil
}

// startWatch replaces the view of other nodes' members with what the
// bucket holds now, and follows it. It returns once the view holds what
// the bucket held (or ctx ends), so that presence is whole again by the
// time members are told the link is back.
func (n *names) startWatch(ctx context.Context, kv jetstream.KeyValue) error {
	n.stopWatch()
	wctx, cancel := context.WithCancel(n.r.ctx)
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("watch bucket %s: %w", n.r.bucketName(), err)
	}
	n.forgetRemote()
	n.mu.Lock()
	n.lastKnown = nil // the bucket answers again
	n.mu.Unlock()
	done, loaded := make(chan struct{}), make(chan struct{})
	n.watchMu.Lock()
	n.watchCancel, n.watchDone = cancel, done
	n.watchMu.Unlock()
	go func(loaded chan struct{}) { // owned by startWatch/stopWatch
		defer close(done)
		defer w.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the initial values are in
					if loaded != nil {
						close(loaded)
						loaded = nil
					}
					continue
				}
				n.apply(e)
			}
		}
	}(loaded)
	select {
	case <-loaded:
	case <-ctx.Done():
		n.stopWatch()
		return fmt.Errorf("watch bucket %s: %w", n.r.bucketName(), ctx.Err())
	}
	return nil
}

// forgetRemote empties the view of other nodes' members.
func (n *names) forgetRemote() {
	n.mu.Lock()
	n.lastKnown = make(map[string]string, len(n.remote))
	for key, m := range n.remote {
		n.lastKnown[key] = m.Node
	}
	clear(n.remote)
	clear(n.byRoom)
	clear(n.perNode)
	n.mu.Unlock()
}

// stopWatch ends the watch, if there is one, and waits for it.
func (n *names) stopWatch() {
	n.watchMu.Lock()
	cancel, done := n.watchCancel, n.watchDone
	n.watchCancel, n.watchDone = nil, nil
	n.watchMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// apply takes one change of the bucket into the view.
func (n *names) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	var entry nameEntry
	valid := false
	if e.Operation() == jetstream.KeyValuePut {
		var why ignored
		var err error
		if entry, why, err = n.r.readEntry(key, e.Value(), time.Now()); err != nil {
			n.r.ignore(why, "bucket key "+key, err)
		} else {
			valid = true
		}
	}
	self := n.r.cfg.NodeID
	n.mu.Lock()
	n.forgetLocked(key)
	if o, ok := n.owned[key]; ok {
		// One of ours. Deleted, overwritten with what we cannot
		// verify, or not what we last wrote: put ours back now. (A
		// valid entry of another node is a claim made while the link
		// was down; the writer sorts that out on its next round.)
		if !valid || entry.Node == self && !entry.sameAs(nameEntry{Node: self, Name: o.name, Room: o.room}) {
			n.dirty[key] = true
			n.poke()
		}
		if !valid || entry.Node == self {
			n.mu.Unlock()
			return
		}
	} else if valid && entry.Node == self {
		// In our name, but not ours: released a moment ago (the delete
		// is on its way), being claimed right now, or a replay. Delete
		// a replay.
		if _, deleting := n.deletes[key]; !deleting && n.claiming[key] == 0 {
			n.deletes[key] = e.Revision()
			n.dirty[key] = true
			n.poke()
		}
		n.mu.Unlock()
		return
	}
	if !valid {
		n.mu.Unlock()
		return
	}
	if n.perNode[entry.Node] >= n.r.cfg.MaxMembers {
		n.mu.Unlock()
		n.r.ignore(ignoredBad, "bucket key "+key, fmt.Errorf("node %s has more than %d members", entry.Node, n.r.cfg.MaxMembers))
		return
	}
	defer n.mu.Unlock()
	seen := e.Created()
	if now := time.Now(); seen.After(now) {
		seen = now
	}
	n.remote[key] = remoteName{nameEntry: entry, seen: seen}
	n.perNode[entry.Node]++
	if entry.Room != "" {
		room := n.byRoom[entry.Room]
		if room == nil {
			room = make(map[string]string)
			n.byRoom[entry.Room] = room
		}
		room[key] = entry.Name
	}
}

func (n *names) forgetLocked(key string) {
	old, ok := n.remote[key]
	if !ok {
		return
	}
	delete(n.remote, key)
	if n.perNode[old.Node]--; n.perNode[old.Node] <= 0 {
		delete(n.perNode, old.Node)
	}
	if room := n.byRoom[old.Room]; room != nil {
		delete(room, key)
		if len(room) == 0 {
			delete(n.byRoom, old.Room)
		}
	}
}

// sweep forgets the members of other nodes whose entries were not
// refreshed for PresenceTTL (their node is gone; the bucket has dropped
// them too, silently), and tells the rooms they were in that they left.
func (n *names) sweep(now time.Time) {
	var gone []nameEntry
	n.mu.Lock()
	for key, m := range n.remote {
		if now.Sub(m.seen) > n.r.cfg.PresenceTTL {
			gone = append(gone, m.nameEntry)
			n.forgetLocked(key)
		}
	}
	n.mu.Unlock()
	for _, e := range gone {
		n.r.log.Info("member of a lost node forgotten", "name", e.Name, "other", e.Node)
		if e.Room != "" {
			n.r.hub.Deliver(&tcpserver.Event{Kind: tcpserver.KindLeave, Time: now, Room: e.Room, From: e.Name, Text: "node lost", Node: e.Node})
		}
	}
}

// RemoteMembers implements [tcpserver.Cluster].
func (r *Relay) RemoteMembers(room string, limit int) ([]string, int) {
	n := &r.names
	n.mu.Lock()
	defer n.mu.Unlock()
	members := n.byRoom[room]
	out := make([]string, 0, min(limit, len(members)))
	for _, name := range members {
		if len(out) >= limit {
			break
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, len(members)
}

// RemoteRooms implements [tcpserver.Cluster].
func (r *Relay) RemoteRooms() map[string]int {
	n := &r.names
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]int, len(n.byRoom))
	for room, members := range n.byRoom {
		out[room] = len(members)
	}
	return out
}

// nodeOf returns the node and spelling of the member called name on
// another node.
func (n *names) nodeOf(name string) (nameEntry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.remote[strings.ToLower(name)]
	return m.nameEntry, ok
}
