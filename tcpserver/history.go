package tcpserver

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultHistoryMemory is the most bytes the history of all rooms
// together may take when [HubConfig.HistoryMemory] is not set.
const DefaultHistoryMemory = 64 << 20

// A historyStore keeps the recent lines of every room, in memory: at most
// perRoom lines a room, and at most limit bytes for all rooms together.
// A line costs what it holds on to: its text, its text-protocol line and
// its JSON, counted whether the JSON has been made yet or not, since the
// first JSON client to see the line makes it and the line then keeps it
// (see lineCost). Without the limit, 1,000 rooms of 20 lines of 4 KB held
// 340 MB with nobody connected.
//
// When the rooms together pass the limit, the oldest lines of the rooms
// least recently said anything in go first, until they are under 7/8 of
// it: one trim per eighth of the limit said, not one per line. A room's
// newest lines go last. The trim runs in the goroutine of the line that
// passed the limit, once it has let go of its room, and takes one room's
// lock at a time; lines said while it runs may pass the limit for as
// long, and it looks again when it is done.
//
// Each room holds its history as a *roomHistory from open, guarded by the
// room's own lock, so that its history and its live lines keep one order
// and keeping a line takes no lock of its own. The store is what a Store
// interface of history kept elsewhere (a JetStream stream, say) would be
// implemented by in memory: add, lines, replace and close are its
// operations on one room.
type historyStore struct {
	perRoom int   // lines a room keeps; none if 0 or less
	limit   int64 // bytes all rooms' lines may take; no limit if 0 or less
	used    atomic.Int64

	mu    sync.Mutex // guards rooms; never held with a room's lock
	rooms map[*roomHistory]struct{}

	trimming sync.Mutex // one trim at a time
}

func newHistoryStore(perRoom int, limit int64) *historyStore {
	return &historyStore{perRoom: perRoom, limit: limit, rooms: make(map[*roomHistory]struct{})}
}

// open returns an empty history for the room called room, whose lock is
// mu, counted in the store until it is closed.
func (s *historyStore) open(room string, mu *sync.Mutex) *roomHistory {
	h := &roomHistory{store: s, room: room, mu: mu}
	s.mu.Lock()
	s.rooms[h] = struct{}{}
	s.mu.Unlock()
	return h
}

// usedBytes returns what the kept lines of all rooms cost now.
func (s *historyStore) usedBytes() int64 { return s.used.Load() }

// over reports whether the rooms' lines take more than the limit.
func (s *historyStore) over() bool { return s.limit > 0 && s.used.Load() > s.limit }

// trim drops lines until the rooms take at most 7/8 of the limit, if they
// take more than the limit, and returns the rooms it left with no lines.
// It is cheap when there is nothing to do: call it after every line, with
// no lock held. If a trim is already running, it leaves the work to it:
// that one looks again once it is done, and so sees any line added while
// it ran, so that once lines stop coming the limit holds.
func (s *historyStore) trim() (emptied []string) {
	for s.over() && s.trimming.TryLock() {
		emptied = append(emptied, s.trimLocked()...)
		s.trimming.Unlock()
	}
	return emptied
}

// trimLocked is trim's work, with s.trimming held.
func (s *historyStore) trimLocked() (emptied []string) {
	s.mu.Lock()
	all := make([]*roomHistory, 0, len(s.rooms))
	for h := range s.rooms {
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

// A roomHistory is the recent lines of one room, a ring of at most
// store.perRoom of them, oldest first. Its fields are guarded by mu, the
// room's lock: the methods whose names end in Locked need it held, the
// others take it.
type roomHistory struct {
	store *historyStore
	room  string
	mu    *sync.Mutex

	ring   []keptLine // grows up to store.perRoom; nil while empty
	start  int        // the oldest line's index in ring
	n      int        // lines kept
	active uint64     // the newest ID added: the trim empties the lowest first
	closed bool       // the room is gone: nothing more is kept
}

type keptLine struct {
	ev   *Event
	cost int64
}

// addLocked keeps ev, a finished line (KindMessage or KindAction),
// forgetting the oldest line if the room has its fill. It does not trim
// the store: its caller does, once it has let go of the room.
func (h *roomHistory) addLocked(ev *Event) {
	perRoom := h.store.perRoom
	if perRoom <= 0 || h.closed {
		return
	}
	h.active = max(h.active, ev.ID)
	cost := lineCost(ev)
	if h.n == perRoom { // full: the new line takes the oldest's place
		slot := &h.ring[h.start]
		h.store.used.Add(cost - slot.cost)
		*slot = keptLine{ev, cost}
		if h.start++; h.start == len(h.ring) {
			h.start = 0
		}
		return
	}
	if h.n == len(h.ring) {
		h.growLocked()
	}
	h.ring[h.indexLocked(h.n)] = keptLine{ev, cost}
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
	*first = keptLine{}
	h.start = h.indexLocked(1)
	if h.n--; h.n == 0 {
		h.ring, h.start = nil, 0
	}
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
	if h.n == 0 {
		return nil
	}
	out := make([]*Event, h.n)
	for i := range out {
		out[i] = h.ring[h.indexLocked(i)].ev
	}
	return out
}

// lenLocked returns how many lines are kept.
func (h *roomHistory) lenLocked() int { return h.n }

// replaceLocked keeps lines, oldest first, instead of what was kept: the
// newest store.perRoom of them.
func (h *roomHistory) replaceLocked(lines []*Event) {
	for h.n > 0 {
		h.dropFirstLocked()
	}
	perRoom := h.store.perRoom
	if perRoom <= 0 || h.closed || len(lines) == 0 {
		return
	}
	lines = lines[max(0, len(lines)-perRoom):]
	h.ring = make([]keptLine, len(lines))
	for i, ev := range lines {
		cost := lineCost(ev)
		h.ring[i] = keptLine{ev, cost}
		h.store.used.Add(cost)
		h.active = max(h.active, ev.ID)
	}
	h.n = len(lines)
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
	delete(h.store.rooms, h)
	h.store.mu.Unlock()
}

// keptLineOverhead is what a kept line costs besides the bytes of its
// strings: its Event (rounded up to the allocator's size class) and its
// slot in the ring. TestKeptLineOverhead keeps it honest.
const keptLineOverhead = 288 + 16

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
