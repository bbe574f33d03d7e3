package tcpserver

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultHistoryMemory is the most bytes the history of all rooms
// together may take when [HubConfig.HistoryMemory] is not set.
const DefaultHistoryMemory = 64 << 20

// A memStore keeps the lines of every room in memory: at most perRoom
// lines a room, and at most limit bytes for all rooms together. It is
// the hub's [Store] when HubConfig.Store is nil (perRoom is then
// HistoryKeep), and otherwise the hub's cache of each room's last History
// lines, replayed on join (see Hub.hist).
//
// A line costs what it holds on to: its text, its text-protocol line and
// its JSON, counted whether the JSON has been made yet or not, since the
// first JSON client to see the line makes it and the line then keeps it
// (see lineCost), and its place in the room's index by key. Without the
// limit, 1,000 rooms of 20 lines of 4 KB held 340 MB with nobody
// connected.
//
// When the rooms together pass the limit, the oldest lines of the rooms
// least recently said anything in go first, until they are under 7/8 of
// it: one trim per eighth of the limit said, not one per line. A room's
// newest lines go last. The trim runs in the goroutine of the line that
// passed the limit, once it has let go of its room, and takes one room's
// lock at a time; lines said while it runs may pass the limit for as
// long, and it looks again when it is done.
//
// Each of the hub's rooms holds its lines as a *roomHistory from open to
// close. The hub adds a line under the room's lock, so that the room's
// history and its live lines keep one order, and the roomHistory's own
// lock is taken inside it: the store never takes a room's lock, and Lines,
// for scrollback, never waits for one.
type memStore struct {
	perRoom int   // lines a room keeps; none if 0 or less
	limit   int64 // bytes all rooms' lines may take; no limit if 0 or less
	keyed   bool  // rooms index their lines by key, for Lines
	used    atomic.Int64

	mu    sync.Mutex // guards rooms; never held with a roomHistory's lock
	rooms map[string]*roomHistory

	trimming sync.Mutex // one trim at a time
}

func newMemStore(perRoom int, limit int64, keyed bool) *memStore {
	return &memStore{perRoom: perRoom, limit: limit, keyed: keyed, rooms: make(map[string]*roomHistory)}
}

// open returns the history of the room called room, counted in the store
// until it is closed: an empty one unless lines were appended to it
// (Append) before the hub made the room.
func (s *memStore) open(room string) *roomHistory {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.rooms[room]; h != nil {
		return h
	}
	h := &roomHistory{store: s, room: room}
	s.rooms[room] = h
	return h
}

// Append implements [Store]: it keeps ev in its room's lines.
func (s *memStore) Append(ev *Event) {
	h := s.open(ev.Room)
	h.add(ev)
	s.trim()
}

// Lines implements [Store]. A before that names no line the room keeps
// (never said in it, or forgotten since) is [ErrUnknownLine].
func (s *memStore) Lines(_ context.Context, room string, before LineKey, limit int) ([]*Event, bool, error) {
	s.mu.Lock()
	h := s.rooms[room]
	s.mu.Unlock()
	if h == nil {
		if before.IsZero() {
			return nil, false, nil
		}
		return nil, false, ErrUnknownLine
	}
	return h.lines(before, limit)
}

// Close implements [Store]: there is nothing to write.
func (s *memStore) Close(context.Context) error { return nil }

// usedBytes returns what the kept lines of all rooms cost now.
func (s *memStore) usedBytes() int64 { return s.used.Load() }

// over reports whether the rooms' lines take more than the limit.
func (s *memStore) over() bool { return s.limit > 0 && s.used.Load() > s.limit }

// trim drops lines until the rooms take at most 7/8 of the limit, if they
// take more than the limit, and returns the rooms it left with no lines.
// It is cheap when there is nothing to do: call it after every line, with
// no lock held. If a trim is already running, it leaves the work to it:
// that one looks again once it is done, and so sees any line added while
// it ran, so that once lines stop coming the limit holds.
func (s *memStore) trim() (emptied []string) {
	for s.over() && s.trimming.TryLock() {
		emptied = append(emptied, s.trimLocked()...)
		s.trimming.Unlock()
	}
	return emptied
}

// trimLocked is trim's work, with s.trimming held.
func (s *memStore) trimLocked() (emptied []string) {
	s.mu.Lock()
	all := make([]*roomHistory, 0, len(s.rooms))
	for _, h := range s.rooms {
		all = append(all, h)
	}
	s.mu.Unlock()

	type candidate struct {
		h      *roomHistory
		active uint64
	}
	list := make([]candidate, 0, len(all))
	for _, h := range all {
		h.mu.Lock()
		if h.n > 0 {
			list = append(list, candidate{h, h.active})
		}
		h.mu.Unlock()
	}
	slices.SortFunc(list, func(a, b candidate) int { return cmp.Compare(a.active, b.active) })
	target := s.limit - s.limit/8
	for _, c := range list {
		if s.used.Load() <= target {
			break
		}
		if c.h.dropOldest(target) {
			emptied = append(emptied, c.h.room)
		}
	}
	return emptied
}

// A roomHistory is the lines of one room, a ring of at most
// store.perRoom of them, oldest first. Lines are numbered in the order
// they are kept (first is the number of the oldest kept), and a keyed
// store's rooms find a line's number by its key. Its fields are guarded by
// mu: the methods whose names end in Locked need it held, the others take
// it.
type roomHistory struct {
	store *memStore
	room  string

	mu      sync.Mutex
	ring    []keptLine // grows up to store.perRoom; nil while empty
	start   int        // the oldest line's index in ring
	n       int        // lines kept
	first   uint64     // the number of the oldest line kept
	index   map[LineKey]uint64
	earlier bool   // lines earlier than the oldest kept are kept elsewhere (a cache's store has them)
	active  uint64 // the newest ID added: the trim empties the lowest first
	closed  bool   // the room is gone: nothing more is kept
}

type keptLine struct {
	ev   *Event
	cost int64
}

// add keeps ev, a finished line (KindMessage or KindAction), forgetting
// the oldest line if the room has its fill. It does not trim the store:
// its caller does, once it has let go of the room.
func (h *roomHistory) add(ev *Event) {
	h.mu.Lock()
	h.addLocked(ev)
	h.mu.Unlock()
}

func (h *roomHistory) addLocked(ev *Event) {
	perRoom := h.store.perRoom
	if perRoom <= 0 || h.closed {
		return
	}
	h.active = max(h.active, ev.ID)
	if h.n == perRoom { // full: the oldest goes
		h.dropFirstLocked()
	}
	if h.n == len(h.ring) {
		h.growLocked()
	}
	cost := lineCost(ev)
	h.ring[h.indexLocked(h.n)] = keptLine{ev, cost}
	if h.store.keyed {
		if h.index == nil {
			h.index = make(map[LineKey]uint64)
		}
		h.index[ev.Key()] = h.first + uint64(h.n)
	}
	h.n++
	h.store.used.Add(cost)
}

// indexLocked returns the index in ring of the i-th oldest line.
func (h *roomHistory) indexLocked(i int) int {
	if i += h.start; i >= len(h.ring) {
		i -= len(h.ring)
	}
	return i
}

// growLocked makes room for one more line: rooms that keep a few lines
// do not pay for perRoom.
func (h *roomHistory) growLocked() {
	ring := make([]keptLine, min(h.store.perRoom, max(4, 2*len(h.ring))))
	for i := range h.n {
		ring[i] = h.ring[h.indexLocked(i)]
	}
	h.ring, h.start = ring, 0
}

// dropFirstLocked forgets the oldest line; the ring goes when it is empty.
func (h *roomHistory) dropFirstLocked() {
	first := &h.ring[h.start]
	h.store.used.Add(-first.cost)
	if h.index != nil {
		delete(h.index, first.ev.Key())
	}
	*first = keptLine{}
	h.start = h.indexLocked(1)
	h.first++
	h.earlier = h.earlier || !h.store.keyed // a store's line is gone; a cache's is still in its store
	if h.n--; h.n == 0 {
		h.emptiedLocked()
	}
}

// dropLastLocked forgets the newest line.
func (h *roomHistory) dropLastLocked() {
	last := &h.ring[h.indexLocked(h.n-1)]
	h.store.used.Add(-last.cost)
	if h.index != nil {
		delete(h.index, last.ev.Key())
	}
	*last = keptLine{}
	if h.n--; h.n == 0 {
		h.emptiedLocked()
	}
}

// emptiedLocked gives back the memory of a room left with no line (a map
// keeps its size however many keys are deleted).
func (h *roomHistory) emptiedLocked() {
	h.ring, h.start, h.index = nil, 0, nil
}

// dropOldest forgets lines, oldest first, while the store takes more than
// target, and reports whether that left the room with none.
func (h *roomHistory) dropOldest(target int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return false
	}
	for h.n > 0 && h.store.used.Load() > target {
		h.dropFirstLocked()
	}
	return h.n == 0
}

// linesLocked returns the kept lines, oldest first, in a new slice; nil
// if there are none.
func (h *roomHistory) linesLocked() []*Event {
	lines, _ := h.lastLocked(h.n)
	return lines
}

// last returns the newest n lines kept, oldest first, in a new slice (nil
// if there are none), and whether the room has earlier lines.
func (h *roomHistory) last(n int) ([]*Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastLocked(n)
}

func (h *roomHistory) lastLocked(n int) ([]*Event, bool) {
	n = min(n, h.n)
	if n <= 0 {
		return nil, h.n > 0 || h.earlier
	}
	out := make([]*Event, n)
	for i := range out {
		out[i] = h.ring[h.indexLocked(h.n-n+i)].ev
	}
	return out, h.n > n || h.earlier
}

// lines returns up to limit lines before the line called before (the
// newest if before is zero), oldest first, and whether there are earlier
// ones; [ErrUnknownLine] if before is not one of the lines kept.
func (h *roomHistory) lines(before LineKey, limit int) ([]*Event, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	end := h.n
	if !before.IsZero() {
		seq, ok := h.index[before]
		if !ok {
			return nil, false, ErrUnknownLine
		}
		end = int(seq - h.first)
	}
	start := max(0, end-max(limit, 0))
	out := make([]*Event, end-start)
	for i := range out {
		out[i] = h.ring[h.indexLocked(start+i)].ev
	}
	return out, start > 0 || h.earlier, nil
}

// lenLocked returns how many lines are kept.
func (h *roomHistory) lenLocked() int { return h.n }

// replaceTailLocked keeps lines, oldest first, instead of the newest n
// lines kept, and notes whether the room has lines earlier than them
// elsewhere (more): a room's recent lines as the cluster or the store has
// them, merged with those said here since they were asked for (see
// Room.seed).
func (h *roomHistory) replaceTailLocked(n int, lines []*Event, more bool) {
	for range min(n, h.n) {
		h.dropLastLocked()
	}
	if h.n == 0 {
		h.earlier = more
	}
	for _, ev := range lines {
		h.addLocked(ev)
	}
}

// empty reports whether the room keeps no line.
func (h *roomHistory) empty() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n == 0
}

// close forgets the lines and takes the room out of the store: the room
// is gone. Whatever is added later is not kept.
func (h *roomHistory) close() {
	h.mu.Lock()
	for h.n > 0 {
		h.dropFirstLocked()
	}
	h.closed = true
	h.mu.Unlock()
	h.store.mu.Lock()
	if h.store.rooms[h.room] == h {
		delete(h.store.rooms, h.room)
	}
	h.store.mu.Unlock()
}

// keptLineOverhead is what a kept line costs besides the bytes of its
// strings: its Event (rounded up to the allocator's size class), its slot
// in the ring and its entry in the room's index (a LineKey and a number,
// and the map's share of empty slots and growth). TestKeptLineOverhead
// keeps it honest.
const keptLineOverhead = 288 + 16 + indexEntryCost

// indexEntryCost is what a line's entry in its room's index costs:
// TestIndexEntryCost measures it.
const indexEntryCost = 136

// lineCost is what a kept line holds on to: its Event, its strings, its
// text line and its JSON, made or not, this last at its longest (see
// jsonSizeBound). It costs a few additions, whatever the line's length:
// it is computed for every line said.
func lineCost(ev *Event) int64 {
	return int64(keptLineOverhead + len(ev.Room) + len(ev.From) + len(ev.To) + len(ev.Text) + len(ev.Addr) +
		len(ev.Node) + len(ev.line) + jsonSizeBound(ev))
}

// jsonSizeBound returns at least the length of ev.JSON() for an event
// with no Names or Events (a line): every field counted as present, the
// ID (its key: node, '-' and digits) and time at their longest, and every byte of its strings at 6, the
// most encoding/json makes of one: <, > and & become \u003c, a control
// character \u001b, a byte of invalid UTF-8 \ufffd. Plain text takes a
// sixth of that: a bound that counts each byte once would let 4 KB of "<"
// hold 24 KB of JSON uncounted, and the exact length takes a scan of the
// text (60 ns for a line of 40 bytes, a seventh of a broadcast).
func jsonSizeBound(ev *Event) int {
	const (
		fixed = len(`{"type":"","id":"","time":"","room":"","from":"","to":"","text":"","addr":"","echo":true}`)
		kind  = len("message") // the longest kind a line has
		id    = 20             // digits of the biggest uint64
		when  = 39             // RFC 3339 with nanoseconds in UTC, for a year of up to 13 digits and a sign
	)
	return fixed + kind + len(ev.Node) + 1 + id + when + 6*(len(ev.Room)+len(ev.From)+len(ev.To)+len(ev.Text)+len(ev.Addr))
}
