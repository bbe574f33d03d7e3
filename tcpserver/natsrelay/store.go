package natsrelay

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"

	"chatbridge/tcpserver"
)

// The relay is the hub's [tcpserver.Store] too: a room's lines are the
// messages of its line subject in the history stream, which keeps up to
// Config.HistoryKeep of them per room (a per-subject limit), none older
// than Config.HistoryAge. The relay writes lines to the stream by
// publishing them, as it publishes them to the other nodes: the stream
// captures the subject, so a line is written once, by the node it was
// said on, and every node reads it back.
//
// Scrollback asks for the lines before a line, by its key, and the
// stream knows its messages by sequence number: so the relay keeps, per
// room it was asked about, an index of the room's lines, their sequence
// numbers and keys in order (28 bytes a line). It begins with the room's
// last lines (tailStart finds where they start by halves), grows back as
// scrollback asks (extendBack, doubling) and forward at each read with the
// lines added since. A page is then one look in the index and one batched
// direct get of the page's lines: about 2 ms with a million lines in the
// room (BenchmarkScrollback). The indexes of all rooms together keep at
// most Config.IndexLines lines and maxIndexedRooms rooms; the rooms read
// least recently go first.

// An indexEntry is one line of a room: its stream sequence and its key.
type indexEntry struct {
	seq  uint64
	id   uint64
	node int32 // in roomIndex.nodes; -1: this node
}

// A roomIndex is the lines of one room in the stream, oldest first.
type roomIndex struct {
	room string
	// lock is held (a value in it) while the index is read or grown: a
	// channel, so that a reader waiting behind a long read gives up when
	// its ctx ends.
	lock    chan struct{}
	entries []indexEntry
	nodes   []string       // node IDs the entries name
	nodeIdx map[string]int // and their index in nodes
	// byNode is, for each node (key -1: this node), the positions of its
	// entries. A node's IDs grow line after line, so find looks for a
	// key by halves among its node's lines.
	byNode map[int32][]int32
	next   uint64 // the stream sequence to look from for new lines
	first  uint64 // the stream sequence the index starts at: it holds every line from there
	// started says the index was begun; complete, that it holds the
	// room's lines from its first (none are before first).
	started, complete bool
	elem              *list.Element // in lineIndex.lru
	size              int           // len(entries) as counted in lineIndex.lines
}

// take waits for ri's lock until ctx ends; what is the error's context.
// The caller releases it with release.
func (ri *roomIndex) take(ctx context.Context, what string) error {
	select {
	case ri.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

func (ri *roomIndex) release() { <-ri.lock }

// lineIndex is the indexes of the rooms the relay was asked about.
type lineIndex struct {
	max int // lines kept in all indexes together

	mu    sync.Mutex
	rooms map[string]*roomIndex
	lru   list.List // of *roomIndex, the most recently read first
	lines int
}

// get returns room's index, made empty if it has none, as the most
// recently read.
func (x *lineIndex) get(room string) *roomIndex {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rooms == nil {
		x.rooms = make(map[string]*roomIndex)
	}
	ri := x.rooms[room]
	if ri == nil {
		ri = &roomIndex{room: room, lock: make(chan struct{}, 1), nodeIdx: make(map[string]int), byNode: make(map[int32][]int32)}
		ri.elem = x.lru.PushFront(ri)
		x.rooms[room] = ri
		return ri
	}
	x.lru.MoveToFront(ri.elem)
	return ri
}

// resized notes that ri now holds n entries, and forgets the indexes of
// the rooms read least recently while all hold more than max.
func (x *lineIndex) resized(ri *roomIndex, n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rooms[ri.room] != ri {
		return // forgotten meanwhile
	}
	x.lines += n - ri.size
	ri.size = n
	for (x.lines > x.max || len(x.rooms) > maxIndexedRooms) && x.lru.Len() > 1 {
		old := x.lru.Back().Value.(*roomIndex)
		if old == ri {
			break
		}
		x.lru.Remove(old.elem)
		delete(x.rooms, old.room)
		x.lines -= old.size
	}
}

// drop forgets every index: after the link comes back the stream may
// have been lost, or rebuilt from another replica.
func (x *lineIndex) drop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rooms = nil
	x.lru.Init()
	x.lines = 0
}

// maxIndexedRooms bounds the rooms indexed at once, whatever their lines:
// an index is made for any room asked about, lines or none.
const maxIndexedRooms = 10000

// maxExtend is the most lines extendBack adds at once, unless a page
// needs more: about a second of reading.
const maxExtend = 50000

// indexBatch is how many lines one direct get reads while an index is
// built or brought up to date.
const indexBatch = 1000

// update brings ri up to date with the stream: it reads the lines added
// since it last looked. An index begun now holds only the room's last
// lines, at least want (see extendBack for the ones before). Called with
// ri.lock held.
func (r *Relay) update(ctx context.Context, ri *roomIndex, want int, mac hash.Hash) error {
	if !ri.started {
		ri.started = true
		ri.first, ri.next, ri.complete = 1, 1, true
		start, earlier, err := r.tailStart(ctx, r.lineSubject(ri.room), 1, uint64(want), uint64(want))
		if err != nil && !errors.Is(err, errNoCounts) {
			ri.started = false
			return fmt.Errorf("history of %s: %w", ri.room, err)
		}
		if err == nil {
			ri.first, ri.next, ri.complete = start, start, !earlier
		}
	}
	entries, next, err := r.scan(ctx, ri, ri.next, 0, mac)
	if err != nil {
		return err
	}
	ri.next = next
	for _, e := range entries {
		ri.byNode[e.node] = append(ri.byNode[e.node], int32(len(ri.entries)))
		ri.entries = append(ri.entries, e)
	}
	return nil
}

// tailStart returns the sequence from which the stream holds at least
// want lines of subject (and not many more), looking from from on, and
// whether it holds lines of subject between from and it; from itself if
// that is at most slack lines more than want. It halves its way there:
// each step asks how many lines follow a sequence.
func (r *Relay) tailStart(ctx context.Context, subject string, from, want, slack uint64) (uint64, bool, error) {
	total, err := r.countFrom(ctx, subject, from)
	if err != nil {
		return 0, false, err
	}
	if total <= want+slack {
		return from, false, nil // as cheap to read it all
	}
	hi, err := r.lastSeq(ctx, subject)
	if err != nil {
		return 0, false, err
	}
	lo := from // count(lo) >= want; the answer is the last such
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		n, err := r.countFrom(ctx, subject, mid)
		if err != nil {
			return 0, false, err
		}
		if n >= want {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo, lo > from, nil
}

// extendBack adds to the front of ri at least need of the room's lines
// before its first, or all there are, and returns how many it added. It
// reads at most most lines (no bound if 0). Called with ri.lock held.
func (r *Relay) extendBack(ctx context.Context, ri *roomIndex, need, most int, mac hash.Hash) (int, error) {
	if ri.complete {
		return 0, nil
	}
	subject := r.lineSubject(ri.room)
	have, err := r.countFrom(ctx, subject, ri.first)
	if err != nil {
		return 0, fmt.Errorf("history of %s: %w", ri.room, err)
	}
	// Doubling, so that a reader going back page by page costs each line
	// once, but at most maxExtend at a time, so that each step ends
	// within a reader's timeout and what it read is kept.
	more := min(max(need, len(ri.entries), indexBatch), max(need, maxExtend))
	// Reading the whole room is as cheap as finding where the lines
	// wanted start if it is not twice as long, unless the read is
	// bounded: then the lines before the index are all it may read.
	slack := have + uint64(more)
	if most > 0 {
		more = min(more, most)
		slack = 0
	}
	start, earlier, err := r.tailStart(ctx, subject, 1, have+uint64(more), slack)
	if err != nil {
		return 0, fmt.Errorf("history of %s: %w", ri.room, err)
	}
	entries, _, err := r.scan(ctx, ri, start, ri.first, mac)
	if err != nil {
		return 0, err
	}
	ri.entries = append(entries, ri.entries...)
	ri.first, ri.complete = start, !earlier
	ri.reindex()
	return len(entries), nil
}

// reindex rebuilds byNode from entries.
func (ri *roomIndex) reindex() {
	clear(ri.byNode)
	for p, e := range ri.entries {
		ri.byNode[e.node] = append(ri.byNode[e.node], int32(p))
	}
}

// scan reads the room's lines from sequence from on, up to until (0: to
// the end), checking each as any line from NATS is checked (a line not
// sealed by a node of the cluster is not a line of the room), and
// returns them as index entries and the sequence after the last read.
// Called with ri.lock held.
func (r *Relay) scan(ctx context.Context, ri *roomIndex, from, until uint64, mac hash.Hash) ([]indexEntry, uint64, error) {
	subject := r.lineSubject(ri.room)
	var out []indexEntry
	next := from
	for {
		got, more, err := r.directGet(ctx, subject, next, indexBatch)
		if err != nil {
			return nil, next, fmt.Errorf("history of %s: %w", ri.room, err)
		}
		for _, m := range got {
			if until != 0 && m.seq >= until {
				return out, next, nil
			}
			next = m.seq + 1
			ev, ok := r.storedLine(m, ri.room, mac)
			if !ok {
				continue
			}
			node := int32(-1)
			if ev.Node != "" {
				i, ok := ri.nodeIdx[ev.Node]
				if !ok {
					i = len(ri.nodes)
					ri.nodes = append(ri.nodes, ev.Node)
					ri.nodeIdx[ev.Node] = i
				}
				node = int32(i)
			}
			out = append(out, indexEntry{seq: m.seq, id: ev.ID, node: node})
		}
		if !more || len(got) == 0 {
			return out, next, nil
		}
	}
}

// storedLine reads a line of room from the stream, as the hub knows it:
// this node's own with ID (Node empty), the others' with Node and ID their
// node's. A message that is not a line of the room is counted and false.
func (r *Relay) storedLine(m storedLine, room string, mac hash.Hash) (*tcpserver.Event, bool) {
	// Lines are old by nature: the window does not apply, and the hub
	// tells a line replayed into the stream from the original by its
	// node and ID.
	ev, _, why, err := r.readRoomEvent(m.subject, m.data, mac)
	if err == nil && (ev.Room != room || ev.Kind != tcpserver.KindMessage && ev.Kind != tcpserver.KindAction) {
		why, err = ignoredBad, fmt.Errorf("%w: %s event of %s in the history of %s", errBadMessage, ev.Kind, ev.Room, room)
	}
	if err != nil {
		r.ignore(why, m.subject, err)
		return nil, false
	}
	if ev.Node == r.cfg.NodeID {
		ev.Node, ev.ID, ev.NodeID = "", ev.NodeID, 0
	} else {
		ev.ID = ev.NodeID
	}
	return ev, true
}

// find returns the position in ri of the line called key, or -1.
func (ri *roomIndex) find(key tcpserver.LineKey) int {
	node := int32(-1)
	if key.Node != "" {
		i, ok := ri.nodeIdx[key.Node]
		if !ok {
			return -1
		}
		node = int32(i)
	}
	pos := ri.byNode[node]
	i, _ := slices.BinarySearchFunc(pos, key.ID, func(p int32, id uint64) int { return cmp.Compare(ri.entries[p].id, id) })
	if i < len(pos) && ri.entries[pos[i]].id == key.ID {
		return int(pos[i])
	}
	// IDs out of order (a node restarted without time-based IDs, or
	// two lines stamped in one order and sent in the other): look at
	// every line, from the newest.
	for i := len(ri.entries) - 1; i >= 0; i-- {
		if e := ri.entries[i]; e.id == key.ID && e.node == node {
			return i
		}
	}
	return -1
}

// Lines implements [tcpserver.Store]. A before that names no line of
// room in the stream (never said in it, or trimmed since) is
// [tcpserver.ErrUnknownLine], as in any store; one further back than a
// lookup reads (see lookBack) is [tcpserver.ErrLineFurtherBack]. Lines
// of this node come back with Node empty and their ID, other nodes'
// with their Node and their ID there in both ID and NodeID, so that
// [tcpserver.LineKey] names each the same way everywhere.
func (r *Relay) Lines(ctx context.Context, room string, before tcpserver.LineKey, limit int) ([]*tcpserver.Event, bool, error) {
	if limit <= 0 {
		return nil, false, nil
	}
	if _, err := r.current(); err != nil {
		return nil, false, err
	}
	if before.Node == r.cfg.NodeID {
		before.Node = ""
	}
	mac := r.seal.newHash()
	ri := r.index.get(room)
	if err := ri.take(ctx, "history of "+room); err != nil {
		return nil, false, err
	}
	defer ri.release()
	// Lines gone from the stream meanwhile (trimmed, or removed by
	// another node) are forgotten and the page read again: each pass
	// forgets some, so passes end; maxPasses bounds them for a reader
	// behind a long run of removed lines (the next read goes on from
	// where this one stopped).
	for range maxPasses {
		if err := r.update(ctx, ri, max(4*limit, 100), mac); err != nil {
			return nil, false, err
		}
		end := len(ri.entries)
		if !before.IsZero() {
			var err error
			if end, err = r.lookBack(ctx, ri, before, mac); err != nil {
				r.index.resized(ri, len(ri.entries))
				return nil, false, err
			}
		}
		for end < limit && !ri.complete {
			added, err := r.extendBack(ctx, ri, limit-end, 0, mac)
			if err != nil {
				return nil, false, err
			}
			end += added
		}
		r.index.resized(ri, len(ri.entries))
		start := max(0, end-limit)
		more := start > 0 || !ri.complete
		if start == end {
			return nil, more, nil
		}
		want := ri.entries[start:end]
		got, _, err := r.directGet(ctx, r.lineSubject(room), want[0].seq, len(want))
		if err != nil {
			return nil, false, err
		}
		lines := make([]*tcpserver.Event, 0, len(want))
		w := 0
		var missing []uint64
		for _, m := range got {
			for w < len(want) && want[w].seq < m.seq {
				missing = append(missing, want[w].seq) // gone from the stream
				w++
			}
			if w == len(want) {
				break
			}
			if want[w].seq != m.seq {
				continue
			}
			w++
			if ev, ok := r.storedLine(m, room, mac); ok {
				lines = append(lines, ev)
			}
		}
		for _, e := range want[w:] {
			missing = append(missing, e.seq)
		}
		if len(missing) == 0 {
			return lines, more, nil
		}
		if err := r.forgetMissing(ctx, ri, missing, got); err != nil {
			return nil, false, err
		}
	}
	return nil, false, fmt.Errorf("history of %s: the stream changes faster than it can be read", room)
}

// maxPasses bounds the reads of one page (see Lines).
const maxPasses = 64

// lookBack returns the position in ri of before, a line of its room,
// reading the room's earlier lines into ri if it is further back than ri
// holds; [tcpserver.ErrUnknownLine] if the room has no such line.
// Called with ri.lock held.
//
// before comes from a client, who may make one up: the room's whole
// stream, a million lines, was once read back for a made-up ID, for as
// long as the reader's timeout let it, at every /history. So a line of a
// node newer than that node's oldest indexed line, and not in the index,
// is no line of the room, without a read (a node's IDs grow line after
// line, and the index holds every line from its first on); and a lookup
// reads at most maxLookBack lines back, in one step: past them it gives
// up with [tcpserver.ErrLineFurtherBack]. The index keeps what it read,
// so that a reader whose line really is further back (its room's index
// was forgotten meanwhile) finds it by asking again, maxLookBack lines
// further each time.
func (r *Relay) lookBack(ctx context.Context, ri *roomIndex, before tcpserver.LineKey, mac hash.Hash) (int, error) {
	if end := ri.find(before); end >= 0 {
		return end, nil
	}
	if ri.complete || ri.newerThanIndexed(before) {
		return -1, tcpserver.ErrUnknownLine
	}
	if _, err := r.extendBack(ctx, ri, maxLookBack, maxLookBack, mac); err != nil {
		return -1, err
	}
	if end := ri.find(before); end >= 0 {
		return end, nil
	}
	if ri.complete {
		return -1, tcpserver.ErrUnknownLine
	}
	return -1, fmt.Errorf("history of %s: line %s: %w", ri.room, before, tcpserver.ErrLineFurtherBack)
}

// maxLookBack is the most lines one lookup of a line not in a room's
// index reads back (see lookBack): ten batched direct gets, and the
// counts that find where they start, about 30 requests in all.
const maxLookBack = 10 * indexBatch

// newerThanIndexed reports whether key is a line of a node ri holds lines
// of, newer than the oldest of them: if the room had it, ri would hold it.
// Two lines may be stamped in one order and sent in the other (see find),
// so the oldest is the newest of the node's first orderSlack lines in ri:
// a line just before ri's first, stamped after it, is looked for.
func (ri *roomIndex) newerThanIndexed(key tcpserver.LineKey) bool {
	node := int32(-1)
	if key.Node != "" {
		i, ok := ri.nodeIdx[key.Node]
		if !ok {
			return false
		}
		node = int32(i)
	}
	pos := ri.byNode[node]
	if len(pos) == 0 {
		return false
	}
	var oldest uint64
	for _, p := range pos[:min(len(pos), orderSlack)] {
		oldest = max(oldest, ri.entries[p].id)
	}
	return key.ID > oldest
}

// orderSlack is how many lines of a node newerThanIndexed allows to be
// out of order: lines stamped at once by a node's readers, a few.
const orderSlack = 64

// forgetMissing forgets lines of ri that a read did not find in the
// stream: missing, and any other line of ri between the first and the
// last line the read got (got is every line of the room in the stream
// between them). Lines go from a room's stream two ways: its oldest, past
// the stream's limits (and then every line before them is gone too), or
// any line, removed (/delete, /purge: a hole, with lines before it kept).
// The room's oldest line left in the stream tells which. Called with
// ri.lock held.
func (r *Relay) forgetMissing(ctx context.Context, ri *roomIndex, missing []uint64, got []storedLine) error {
	oldest := ri.next // no line left: none before next either
	got, _, err := r.directGet(ctx, r.lineSubject(ri.room), 1, 1)
	if err != nil {
		return err
	}
	if len(got) > 0 {
		oldest = got[0].seq
	}
	gone := make(map[uint64]bool, len(missing))
	for _, s := range missing {
		gone[s] = true
	}
	var lo, hi uint64 // the span got covers
	kept := make(map[uint64]bool, len(got))
	if len(got) > 0 {
		lo, hi = got[0].seq, got[len(got)-1].seq
		for _, m := range got {
			kept[m.seq] = true
		}
	}
	ri.forget(func(e indexEntry) bool {
		return e.seq < oldest || gone[e.seq] || e.seq > lo && e.seq < hi && !kept[e.seq]
	})
	if oldest > ri.first {
		// Trimmed: the index holds every line from first on, so now
		// every line the stream has left.
		ri.first, ri.complete = oldest, true
	}
	return nil
}

// Append implements [tcpserver.Store]. A relay that publishes the hub's
// events (Start) has put a local line in the stream already, and another
// node's line is in it from its own node: only a relay that is the hub's
// store alone (StartStore) publishes the line here, queued in order with
// whatever it publishes, sealed as any.
func (r *Relay) Append(ev *tcpserver.Event) {
	if ev.Node != "" || r.relaying || ev.Kind != tcpserver.KindMessage && ev.Kind != tcpserver.KindAction {
		return
	}
	select {
	case r.queue <- ev:
	default:
		r.drop("queue full")
	}
}

// Store returns the relay as the hub's [tcpserver.Store]: the room lines
// of the history stream.
func (r *Relay) Store() tcpserver.Store { return lineStore{r} }

// lineStore is a relay as a [tcpserver.Store], whose Close takes a ctx.
type lineStore struct{ *Relay }

// Close implements [tcpserver.Store]: the relay's [Relay.Close], which
// publishes what is queued, bounded by ctx.
func (s lineStore) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.Relay.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close the relay: %w", ctx.Err())
	}
}
