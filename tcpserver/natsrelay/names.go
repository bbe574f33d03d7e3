package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"chatbridge/tcpserver"
)

// names keeps this node's names in the names bucket and watches the bucket
// for everybody else's.
//
// A name is claimed with a create-only write of its folded form, which
// JetStream refuses if the key holds a value: of two nodes claiming one
// name at once, exactly one wins.
//
// Whether a node is there is told once for all its members: each node
// writes a heartbeat (key node.ID) every PresenceTTL/3, and a node whose
// heartbeat is older than PresenceTTL is taken for dead. Its members drop
// out of presence and its names come free for claims, while its entries
// stay in the bucket until their node beats again (a node that was only
// cut off comes back whole) or the bucket forgets them. A member's entry is
// written when it comes, moves or goes, and again, spread out, every
// NameAge/3, so that the bucket, which forgets entries after NameAge,
// keeps those of live nodes and sheds the rest. (Each node rewriting each
// of its entries every few seconds, as before, was thousands of writes a
// second at 20,000 members a node, and every other node read them all.)
//
// Entries and heartbeats are sealed (see sealer) with their key and the
// time they were written. An entry that is not, or is older than NameAge
// and the window, is as good as absent: it shows nobody, routes no private
// message and may be overwritten by a claim. A heartbeat cannot make a
// node live for longer than PresenceTTL after the time sealed in it, so a
// replayed one cannot raise the dead. A node puts back at once its own
// entries that someone else deleted or overwrote, and deletes entries in
// its name that it did not write (a replay), so that what the bucket says
// of its members is what it wrote.
type names struct {
	r *Relay

	mu       sync.Mutex
	owned    map[string]*ownedName // by folded name: this node's members
	claiming map[string]int        // folded names being claimed now, not yet owned
	deletes  map[string]uint64     // released names still to delete, at their last revision
	dirty    map[string]bool       // folded names the writer must write or delete
	remote   map[string]nameEntry  // by folded name: other nodes' members, live or not
	// lastKnown is remote as it was when the link was last lost: while
	// the bucket cannot be asked, a name another node held then is still
	// refused, so that a failover of NATS does not let two members take
	// one name. Cleared when the watch starts again.
	lastKnown map[string]string            // folded name -> node
	byRoom    map[string]map[string]string // room -> folded name -> name: live nodes' members
	perNode   map[string]int               // how many of remote each node has
	nodes     map[string]*otherNode        // other nodes known by a heartbeat or an entry
	// selfSeen is when the latest of this node's own heartbeats to come
	// back through the watch was written. While it is older than
	// PresenceTTL, the bucket or the watch is stuck or behind, and no
	// other node's silence means it is gone.
	selfSeen  time.Time
	watchedAt time.Time // when the watch started
	// loaded is whether the watch has handed over what the bucket held
	// when it started. Until it has, no other node's heartbeat is
	// known, and an entry of any of them may be a live node's.
	loaded bool

	wake     chan struct{} // the writer has work
	writeLog rateLimit     // "names not written", at most every few seconds

	watchMu     sync.Mutex
	watchCancel context.CancelFunc
	watchDone   chan struct{}
}

type ownedName struct {
	name    string
	room    string
	rev     uint64    // the entry's revision as last written; 0: not in the bucket
	written time.Time // when it was last written
}

// otherNode is what this node knows of another.
type otherNode struct {
	beat time.Time // its latest heartbeat (when the watch started, if none yet)
	live bool      // its heartbeat is recent: its members are in byRoom
}

func (n *names) init(r *Relay) {
	n.r = r
	n.owned = make(map[string]*ownedName)
	n.claiming = make(map[string]int)
	n.perNode = make(map[string]int)
	n.deletes = make(map[string]uint64)
	n.dirty = make(map[string]bool)
	n.remote = make(map[string]nameEntry)
	n.byRoom = make(map[string]map[string]string)
	n.nodes = make(map[string]*otherNode)
	n.wake = make(chan struct{}, 1)
	n.writeLog = rateLimit{every: logEvery}
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

// openEntry checks the seal of the names bucket's value b under key, for
// purpose, and returns what it seals.
func (r *Relay) openEntry(purpose, key string, b []byte) ([]byte, error) {
	if len(b) > maxEntry {
		return nil, fmt.Errorf("%d bytes, more than an entry", len(b))
	}
	return r.seal.open(nil, purpose, key, b)
}

// readEntry opens and decodes the entry stored under key.
func (r *Relay) readEntry(key string, b []byte, now time.Time) (nameEntry, ignored, error) {
	payload, err := r.openEntry(purposeName, key, b)
	if err != nil {
		return nameEntry{}, ignoredUnverified, err
	}
	e, err := decodeEntry(key, payload)
	if err != nil {
		return e, ignoredBad, err
	}
	if !inWindow(e.Time, now, r.cfg.NameAge+r.cfg.Window) { // rewritten every NameAge/3
		return e, ignoredReplayed, fmt.Errorf("entry of %s on %s written at %v", e.Name, e.Node, timeOf(e.Time))
	}
	return e, 0, nil
}

// holder returns the node that holds the name stored as key, by what the
// bucket says in b: "" if nobody does, for all this node can verify, or
// if the node that wrote it is gone. While the view is not loaded, any
// other node counts as live.
func (r *Relay) holder(key string, b []byte) string {
	e, why, err := r.readEntry(key, b, time.Now())
	if err != nil {
		r.ignore(why, "bucket key "+key, err)
		return ""
	}
	if e.Node != r.cfg.NodeID && !r.names.mayHold(e.Node) {
		return ""
	}
	return e.Node
}

// mayHold reports whether the other node called node may hold names: it
// beats, or this node cannot tell yet.
func (n *names) mayHold(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.loaded || n.liveLocked(node)
}

// errNotLoaded puts off a write until the view is loaded: whether the
// node of an entry in the way is gone cannot be told before.
var errNotLoaded = errors.New("other nodes' heartbeats not read yet")

// readBeat opens and decodes the heartbeat stored under key. An old one is
// not an error: it is the last of a node that is gone.
func (r *Relay) readBeat(key string, b []byte, now time.Time) (beatEntry, ignored, error) {
	payload, err := r.openEntry(purposeBeat, key, b)
	if err != nil {
		return beatEntry{}, ignoredUnverified, err
	}
	e, err := decodeBeat(key, payload)
	if err != nil {
		return e, ignoredBad, err
	}
	if timeOf(e.Time).After(now.Add(r.cfg.Window)) {
		return e, ignoredBad, fmt.Errorf("heartbeat of %s from %v, ahead of this node's clock", e.Node, timeOf(e.Time))
	}
	return e, 0, nil
}

// beat writes this node's heartbeat.
func (n *names) beat(ctx context.Context, kv jetstream.KeyValue) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	key := beatKey(n.r.cfg.NodeID)
	b := beatEntry{Node: n.r.cfg.NodeID, Time: time.Now().UnixNano()}
	if _, err := kv.Put(ctx, key, n.r.seal.seal(nil, purposeBeat, key, b.encode())); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// beatLoop writes this node's heartbeat every PresenceTTL/3 and has due
// entries written again, in its own goroutine: a long round of the
// writer never holds up the heartbeat.
func (n *names) beatLoop() {
	ctx := n.r.ctx
	every := n.r.cfg.PresenceTTL / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := n.r.current()
		if err != nil {
			continue // setup beats when the link is back
		}
		if err := n.beat(ctx, s.kv); err != nil {
			if !failing && ctx.Err() == nil {
				n.r.log.Warn("heartbeat not written; will retry", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		n.refreshDue(time.Now(), every)
	}
}

// isLive reports whether the other node called node beats.
func (n *names) isLive(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.liveLocked(node)
}

func (n *names) liveLocked(node string) bool {
	o := n.nodes[node]
	return o != nil && o.live
}

// ClaimName implements [tcpserver.Cluster]. A name this node knows
// another node holds is refused without a round trip. A name the bucket
// holds for someone this node cannot tell (it did not answer in time) is
// refused too: a member given a name the cluster never heard of is
// missing from every other node's presence, and free for their members
// to take.
func (r *Relay) ClaimName(ctx context.Context, name, room string) error {
	if r.cfg.Alone {
		return nil // nobody else to ask: the hub checks its own members
	}
	n := &r.names
	key := strings.ToLower(name)
	if n.heldElsewhere(key) {
		return tcpserver.ErrNameTaken
	}
	s, err := r.current()
	if err != nil {
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
		// Ours, released a moment ago and not yet deleted? An entry
		// nobody can vouch for, or of a node that is gone? Then take it.
		e, gerr := s.kv.Get(ctx, key)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			rev, err = s.kv.Create(ctx, key, val) // let go of in between
		case gerr != nil:
			r.log.Debug("name in the bucket not read: taken for taken", "name", name, "err", gerr)
			return tcpserver.ErrNameTaken
		default:
			if node := r.holder(key, e.Value()); node != "" && node != r.cfg.NodeID {
				return tcpserver.ErrNameTaken
			}
			rev, err = s.kv.Update(ctx, key, val, e.Revision())
			if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				// Deleted in between, as this node deletes the entries
				// it wrote before a restart: a new claim decides.
				rev, err = s.kv.Create(ctx, key, val)
			}
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return tcpserver.ErrNameTaken // someone else wrote it in between
		}
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
	if m, ok := n.remote[key]; ok && m.Node != n.r.cfg.NodeID && n.liveLocked(m.Node) {
		return true
	}
	node, ok := n.lastKnown[key]
	return ok && node != n.r.cfg.NodeID
}

// keep records name as this node's. rev 0 means it is not in the bucket
// yet: the writer will claim it.
func (n *names) keep(key, name, room string, rev uint64) {
	n.mu.Lock()
	o := &ownedName{name: name, room: room, rev: rev}
	if rev != 0 {
		o.written = time.Now()
	}
	n.owned[key] = o
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

// refreshDue marks to be written again the entries of this node last
// written NameAge/3 ago or more, so that the bucket, which forgets an
// entry after NameAge, keeps them. It is called every `every`, and marks
// at most twice its share each time: entries written at once (members
// who came together) are written again spread out.
func (n *names) refreshDue(now time.Time, every time.Duration) {
	period := n.r.cfg.NameAge / 3
	n.mu.Lock()
	budget := 16 + int(2*int64(len(n.owned))*int64(every)/int64(period))
	marked := 0
	for key, o := range n.owned {
		if marked >= budget {
			break
		}
		if o.rev != 0 && now.Sub(o.written) >= period && !n.dirty[key] {
			n.dirty[key] = true
			marked++
		}
	}
	n.mu.Unlock()
	if marked > 0 {
		n.poke()
	}
}

// nameWriters is how many entries the writer has in flight at once: a
// node that comes back to NATS with 20,000 members writes them all again,
// and one at a time, a round trip each, that takes too long.
const nameWriters = 32

// writeLoop writes what is dirty to the bucket, nameWriters entries at a
// time, in its own goroutine: claims are the only bucket writes anyone
// waits for.
func (n *names) writeLoop() {
	ctx := n.r.ctx
	var retry <-chan time.Time // after a round with failures
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-retry:
		}
		retry = nil
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
		sem := make(chan struct{}, nameWriters)
		var wg sync.WaitGroup
		var failed atomic.Int64
		var lastErr atomic.Value
		for _, key := range keys {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() { // owned by this round: waited for below
				defer func() { <-sem }()
				if err := n.write(ctx, s.kv, key); err != nil {
					failed.Add(1)
					lastErr.Store(err)
					n.mu.Lock()
					n.dirty[key] = true
					n.mu.Unlock()
				}
			})
		}
		wg.Wait()
		if k := failed.Load(); k > 0 && ctx.Err() == nil {
			// Nothing else may wake the writer for a long time: the
			// entries are otherwise written again every NameAge/3.
			retry = time.After(nameRetry)
			if held, ok := n.writeLog.allow(time.Now()); ok {
				n.r.log.Warn("names not written; will retry", "failed", k, "of", len(keys), "err", lastErr.Load(), "held_back", held)
			}
		}
	}
}

// nameRetry is how long the writer waits to write again what it could not.
const nameRetry = 500 * time.Millisecond

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
				// To be tried again: the bucket keeps the entry for
				// NameAge, and its member shows while this node beats.
				n.mu.Lock()
				if _, kept := n.owned[key]; !kept {
					if _, newer := n.deletes[key]; !newer {
						n.deletes[key] = delRev
					}
				}
				n.mu.Unlock()
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
			n.mu.Lock()
			loaded := n.loaded
			n.mu.Unlock()
			if !loaded { // not to give up a name for a node that may be gone
				return fmt.Errorf("write %q: %w", key, errNotLoaded)
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
		o.rev, o.written = rev, time.Now()
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
	n.watchedAt = time.Now()
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
					n.mu.Lock()
					n.loaded = true
					n.mu.Unlock()
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
		if n.liveLocked(m.Node) {
			n.lastKnown[key] = m.Node
		}
	}
	clear(n.remote)
	clear(n.byRoom)
	clear(n.perNode)
	clear(n.nodes)
	n.loaded = false
	n.selfSeen = time.Time{}
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
	if strings.HasPrefix(key, beatPrefix) {
		n.applyBeat(e)
		return
	}
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
		// verify or with the entry of a node that is gone (a replay:
		// it holds nothing, and would leave our member out of
		// everyone's presence and its name free), or not what we last
		// wrote: put ours back now. (A valid entry of a live node is a
		// claim made while the link was down; the writer sorts that
		// out on its next round.)
		if !valid || entry.Node == self && !entry.sameAs(nameEntry{Node: self, Name: o.name, Room: o.room}) ||
			entry.Node != self && !n.liveLocked(entry.Node) {
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
	n.remote[key] = entry
	n.perNode[entry.Node]++
	if n.nodeLocked(entry.Node).live {
		n.showLocked(key, entry)
	}
}

// applyBeat takes a heartbeat into the view: a node whose heartbeat is
// recent is live, and its members show.
func (n *names) applyBeat(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return // a heartbeat deleted: its node writes the next one anyway
	}
	now := time.Now()
	key := e.Key()
	b, why, err := n.r.readBeat(key, e.Value(), now)
	if err != nil {
		n.r.ignore(why, "bucket key "+key, err)
		return
	}
	// As recent as both its node's clock and the server say, so that
	// neither a replay nor a node's clock running fast makes it newer.
	at := timeOf(b.Time)
	for _, t := range []time.Time{e.Created(), now} {
		if t.Before(at) {
			at = t
		}
	}
	recent := now.Sub(at) <= n.r.cfg.PresenceTTL
	n.mu.Lock()
	defer n.mu.Unlock()
	if b.Node == n.r.cfg.NodeID {
		// When it was written, not when it came: a watch running
		// behind hands over every heartbeat late, this node's own too,
		// and no other node's silence may count for more than its own.
		if at.After(n.selfSeen) {
			n.selfSeen = at
		}
		return
	}
	o := n.nodeLocked(b.Node)
	if at.After(o.beat) {
		o.beat = at
	}
	if o.live || !recent {
		return
	}
	o.live = true
	for key, m := range n.remote {
		if m.Node == b.Node {
			n.showLocked(key, m)
		}
	}
}

// nodeLocked returns what this node knows of another, made if new.
func (n *names) nodeLocked(id string) *otherNode {
	o := n.nodes[id]
	if o == nil {
		o = &otherNode{beat: n.watchedAt}
		n.nodes[id] = o
	}
	return o
}

// showLocked puts the member of a live node stored as key in its room.
func (n *names) showLocked(key string, e nameEntry) {
	if e.Room == "" {
		return
	}
	room := n.byRoom[e.Room]
	if room == nil {
		room = make(map[string]string)
		n.byRoom[e.Room] = room
	}
	room[key] = e.Name
}

// hideLocked takes the member stored as key out of its room.
func (n *names) hideLocked(key string, e nameEntry) {
	if room := n.byRoom[e.Room]; room != nil {
		delete(room, key)
		if len(room) == 0 {
			delete(n.byRoom, e.Room)
		}
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
	n.hideLocked(key, old)
}

// sweep takes for dead the other nodes whose heartbeat is older than
// PresenceTTL, and tells the rooms their members were in that they left;
// and forgets the entries of nodes dead for NameAge (the bucket has
// dropped them by now, silently). It judges nobody while this node's own
// heartbeat does not come back: then the bucket or the watch is stuck,
// and every node looks silent.
func (n *names) sweep(now time.Time) {
	var gone []nameEntry
	n.mu.Lock()
	if now.Sub(n.selfSeen) > n.r.cfg.PresenceTTL {
		n.mu.Unlock()
		return
	}
	for id, o := range n.nodes {
		silent := now.Sub(o.beat)
		switch {
		case o.live && silent > n.r.cfg.PresenceTTL:
			o.live = false
			before := len(gone)
			for key, m := range n.remote {
				if m.Node == id {
					gone = append(gone, m)
					n.hideLocked(key, m)
				}
			}
			n.r.log.Info("node lost: its members forgotten", "other", id, "members", len(gone)-before,
				"silent", silent.Round(time.Millisecond))
		case !o.live && silent > n.r.cfg.NameAge:
			for key, m := range n.remote {
				if m.Node == id {
					n.forgetLocked(key)
				}
			}
			delete(n.nodes, id)
		}
	}
	n.mu.Unlock()
	for _, e := range gone {
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
	if !ok || !n.liveLocked(m.Node) {
		return nameEntry{}, false
	}
	return m, true
}
