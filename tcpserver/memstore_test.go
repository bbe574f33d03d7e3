package tcpserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// line makes a finished line of room, as the hub would have said it.
func line(h *Hub, room, text string) *Event {
	return h.stampLine(&Event{Kind: KindMessage, Room: room, From: "ada", Text: text})
}

// textsOf returns the texts of lines, space-separated.
func textsOf(lines []*Event) string {
	out := make([]string, len(lines))
	for i, ev := range lines {
		out[i] = ev.Text
	}
	return strings.Join(out, " ")
}

// The memory store as a Store: each room's last perRoom lines, pages of
// them before a line, oldest first, with whether there are earlier ones;
// a line it does not keep in that room is ErrUnknownLine.
func TestMemStoreLines(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	s := newMemStore(5, 0, true)
	var a []*Event
	for i := range 8 {
		ev := line(h, "a", fmt.Sprintf("a%d", i))
		a = append(a, ev)
		s.Append(ev)
	}
	b := line(h, "b", "b0")
	s.Append(b)
	forgotten := a[2] // a keeps a3..a7

	tests := []struct {
		name   string
		room   string
		before LineKey
		limit  int
		want   string
		more   bool
		err    error
	}{
		{"the newest, all of them", "a", LineKey{}, 10, "a3 a4 a5 a6 a7", false, nil},
		{"the newest, a page", "a", LineKey{}, 2, "a6 a7", true, nil},
		{"a page before a line", "a", a[6].Key(), 2, "a4 a5", true, nil},
		{"the first page", "a", a[5].Key(), 2, "a3 a4", false, nil},
		{"a short first page", "a", a[4].Key(), 5, "a3", false, nil},
		{"before the oldest", "a", a[3].Key(), 5, "", false, nil},
		{"before a line forgotten", "a", forgotten.Key(), 5, "", false, ErrUnknownLine},
		{"before a line never said", "a", LineKey{ID: 1}, 5, "", false, ErrUnknownLine},
		{"before another room's line", "a", b.Key(), 5, "", false, ErrUnknownLine},
		{"before a line of a room it has not", "c", a[6].Key(), 5, "", false, ErrUnknownLine},
		{"a room it has not", "c", LineKey{}, 5, "", false, nil},
		{"another room", "b", LineKey{}, 5, "b0", false, nil},
		{"no lines asked for", "a", LineKey{}, 0, "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, more, err := s.Lines(context.Background(), tt.room, tt.before, tt.limit)
			if !errors.Is(err, tt.err) || textsOf(got) != tt.want || more != tt.more {
				t.Fatalf("Lines = %q, more %v, %v; want %q, more %v, %v", textsOf(got), more, err, tt.want, tt.more, tt.err)
			}
			for _, ev := range got {
				if ev.Room != tt.room {
					t.Fatalf("a line of %s in the lines of %s", ev.Room, tt.room)
				}
			}
		})
	}

	// Paging back from the newest gives every line once, in order.
	var all []string
	before := LineKey{}
	for {
		page, more, err := s.Lines(context.Background(), "a", before, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append([]string{textsOf(page)}, all...)
		if !more {
			break
		}
		before = page[0].Key()
	}
	if got := strings.Join(all, " "); got != "a3 a4 a5 a6 a7" {
		t.Fatalf("paging back gave %q", got)
	}
}

// The memory store stays within its bytes, the oldest lines of the rooms
// least recently said anything in going first; what it counts is what
// its lines cost; a room's lines are found by key once others are gone.
func TestMemStoreMemoryBound(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	one := lineCost(line(h, "ra", "x-00"))
	s := newMemStore(100, 20*one, true)
	for i := range 10 {
		s.Append(line(h, "ra", fmt.Sprintf("a-%02d", i)))
	}
	for i := range 10 {
		s.Append(line(h, "rb", fmt.Sprintf("b-%02d", i)))
	}
	if got := s.usedBytes(); got != 20*one {
		t.Fatalf("20 lines count %d, want %d", got, 20*one)
	}
	last := line(h, "rb", "b-10")
	s.Append(last) // 21: down to 7/8 of 20 (17), from ra, the idlest
	ra, moreA, _ := s.Lines(context.Background(), "ra", LineKey{}, 100)
	rb, moreB, _ := s.Lines(context.Background(), "rb", LineKey{}, 100)
	if textsOf(ra) != "a-04 a-05 a-06 a-07 a-08 a-09" || moreA || len(rb) != 11 || moreB {
		t.Fatalf("after the trim ra keeps %q (more %v), rb %d lines (more %v)", textsOf(ra), moreA, len(rb), moreB)
	}
	if got := s.usedBytes(); got != 17*one {
		t.Fatalf("17 lines count %d, want %d", got, 17*one)
	}
	page, _, err := s.Lines(context.Background(), "rb", last.Key(), 2)
	if err != nil || textsOf(page) != "b-08 b-09" {
		t.Fatalf("before rb's newest: %q, %v", textsOf(page), err)
	}
	if _, _, err := s.Lines(context.Background(), "ra", ra[0].Key(), 2); err != nil {
		t.Fatalf("before ra's oldest kept: %v", err)
	}
}

// A cache of a store's lines (the hub's, for a Store of its own) says
// there are earlier lines once it has dropped any: the store has them.
func TestCacheSaysTheStoreHasEarlierLines(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	s := newMemStore(3, 0, false)
	r := s.open("a")
	for i := range 3 {
		r.add(line(h, "a", fmt.Sprintf("a%d", i)))
	}
	if _, more := r.last(3); more {
		t.Fatal("3 lines of 3: more")
	}
	r.add(line(h, "a", "a3"))
	if got, more := r.last(3); !more || textsOf(got) != "a1 a2 a3" {
		t.Fatalf("after one dropped: %q, more %v", textsOf(got), more)
	}
}

// indexEntryCost covers a line's share of its room's index, however
// many lines the room keeps, as they come and go; and the index finds
// every line kept, and none that is not, after many came and went (and
// as many lines of another node with the same IDs).
func TestIndexEntryCost(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	for _, perRoom := range []int{1, 2, 3, 5, 20, 1000, 10000} {
		s := newMemStore(perRoom, 0, true)
		r := s.open("a")
		var keys []LineKey
		for i := range 3*perRoom + 7 {
			ev := line(h, "a", "x")
			if i%3 == 2 { // another node's line, with the ID of the last
				ev = &Event{Kind: KindMessage, Room: "a", From: "zed", Text: "y", Node: "n2", NodeID: keys[len(keys)-1].ID, ID: ev.ID}
				ev.finish()
			}
			r.add(ev)
			keys = append(keys, ev.Key())
			if n := r.n; len(r.index)*8 > indexEntryCost*n {
				t.Fatalf("%d lines kept of %d: an index of %d slots, %d bytes a line", n, perRoom, len(r.index), len(r.index)*8/n)
			}
		}
		check := func(keys []LineKey, kept int) {
			t.Helper()
			for i, k := range keys {
				seq, ok := r.findLocked(k)
				if want := i >= len(keys)-kept; ok != want || ok && r.keyAtLocked(seq) != k {
					t.Fatalf("perRoom %d: line %d of %d (%v) found %v as %d", perRoom, i, len(keys), k, ok, seq)
				}
			}
		}
		r.mu.Lock()
		check(keys, perRoom)
		// The newest lines replaced (a merge with the store's, Room.seed).
		drop := min(3, perRoom)
		var lines []*Event
		for range drop + 1 {
			lines = append(lines, line(h, "a", "z"))
		}
		r.replaceTailLocked(drop, lines, false)
		gone := slices.Clone(keys[len(keys)-drop:])
		keys = keys[:len(keys)-drop]
		for _, ev := range lines {
			keys = append(keys, ev.Key())
		}
		check(keys, perRoom)
		for _, k := range gone {
			if _, ok := r.findLocked(k); ok {
				t.Fatalf("perRoom %d: a line replaced (%v) is still found; gone %v keys %v", perRoom, k, gone, keys)
			}
		}
		r.mu.Unlock()
	}
}

// testStore is a Store of the hub's but not its own: a memory store
// that counts its reads, and whose reads wait for block to close, if
// it is set, or for their context.
type testStore struct {
	*memStore
	mu    sync.Mutex
	reads int
	block chan struct{}
}

func newTestStore() *testStore { return &testStore{memStore: newMemStore(100000, 0, true)} }

func (s *testStore) Lines(ctx context.Context, room string, before LineKey, limit int) ([]*Event, bool, error) {
	s.mu.Lock()
	s.reads++
	block := s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return s.memStore.Lines(ctx, room, before, limit)
}

func (s *testStore) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// A hub with a Store appends every line to it, this node's and those
// relayed; it reads a room's last lines from it once, to replay them on
// join; and a hub started again over the same store replays them, and
// gives IDs past theirs.
func TestHubOverAStore(t *testing.T) {
	s := newTestStore()
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 3, Store: s}, nil)
	c, _ := connect(t, h, "ada")
	say(c, "l", 1, 4)
	h.Deliver(&Event{Kind: KindMessage, Room: "lobby", From: "zed", Text: "relayed", Node: "n2", NodeID: 9, Time: time.Now()})
	kept, _, err := s.memStore.Lines(context.Background(), "lobby", LineKey{}, 10)
	if err != nil || textsOf(kept) != "l-01 l-02 l-03 l-04 relayed" {
		t.Fatalf("the store has %q, %v", textsOf(kept), err)
	}
	newest := kept[len(kept)-2].ID // ada's last
	if got := len(keptLines(h, "lobby")); got != 3 {
		t.Fatalf("the hub keeps %d lines in memory, want History (3)", got)
	}
	reads := s.readCount()
	_, m := connect(t, h, "bob")
	if got := m.lines(); !slicesContains(got, "<ada> l-03") || !slicesContains(got, "<zed> relayed") || slicesContains(got, "<ada> l-02") {
		t.Fatalf("bob's replay: %q", got)
	}
	if s.readCount() != reads {
		t.Fatalf("the store was read again for a room already filled")
	}

	// Started again over the same store, with a clock behind the IDs it
	// gave: the store's lines are replayed, and new IDs are past them.
	for _, ev := range kept {
		if ev.Node == "" {
			ev.ID += uint64(time.Hour / time.Microsecond) // as if said an hour ahead
		}
	}
	newest += uint64(time.Hour / time.Microsecond)
	again := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 3, Store: s}, nil)
	d, dm := connect(t, again, "cy")
	got := dm.lines()
	if !slicesContains(got, "<ada> l-03") || !slicesContains(got, "<ada> l-04") || !slicesContains(got, "<zed> relayed") {
		t.Fatalf("after the restart cy got %q, not the store's lines", got)
	}
	d.Handle([]byte("back"))
	kept, _, _ = s.memStore.Lines(context.Background(), "lobby", LineKey{}, 1)
	if len(kept) != 1 || kept[0].Text != "back" || kept[0].ID <= newest {
		t.Fatalf("after the restart a line's ID is %d, not past the store's %d", kept[0].ID, newest)
	}
}

// slicesContains reports whether a line of got ends with want (a
// replayed line starts with its time).
func slicesContains(got []string, want string) bool {
	for _, g := range got {
		if strings.HasSuffix(g, want) {
			return true
		}
	}
	return false
}

// copyStore gives back lines as a store on disk or across the network
// does (natsrelay's): new events, not yet encoded, this node's own with
// no Node.
type copyStore struct{ *memStore }

func (s copyStore) Lines(ctx context.Context, room string, before LineKey, limit int) ([]*Event, bool, error) {
	if before.Node != "" {
		before = LineKey{ID: before.ID}
	}
	lines, more, err := s.memStore.Lines(ctx, room, before, limit)
	out := make([]*Event, len(lines))
	for i, ev := range lines {
		out[i] = &Event{ID: ev.ID, Kind: ev.Kind, Time: ev.Time, Room: ev.Room, From: ev.From, Text: ev.Text}
	}
	return out, more, err
}

func (s copyStore) Append(ev *Event) {
	// As the stream keeps this node's lines: no Node, their ID there.
	s.memStore.Append(&Event{ID: ev.NodeID, Kind: ev.Kind, Time: ev.Time, Room: ev.Room, From: ev.From, Text: ev.Text})
}

// /history over a store of another kind shows its lines' text and names
// them as the hub named them live (its node and ID), not as the store
// does: before, it showed "[12:24] " and nothing after.
func TestHistoryFromAStoreOfItsOwnMaking(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 3, AnnounceDelay: -1,
		Store: copyStore{newMemStore(1000, 0, true)}, Relay: namedRelay("n1")}, nil)
	c, _ := connect(t, h, "ada")
	bob, m := connect(t, h, "bob")
	say(c, "l", 1, 8)
	live := m.sent()
	bob.Handle([]byte("/history 3"))
	var hist *Event
	for _, ev := range m.sent() {
		if ev.Kind == KindHistory {
			hist = ev
		}
	}
	if hist == nil || len(hist.Events) != 3 {
		t.Fatalf("/history 3 gave %+v", hist)
	}
	for i, ev := range hist.Events {
		want := fmt.Sprintf("<ada> l-%02d", i+6) // the newest: bob came to an empty room
		if !strings.Contains(string(ev.Line()), want) {
			t.Errorf("line %d is %q, want %q", i, ev.Line(), want)
		}
		var key string
		for _, l := range live {
			if l.Text == ev.Text {
				key = l.Key().String()
			}
		}
		if got := ev.Key().String(); got != key || !strings.HasPrefix(got, "n1-") {
			t.Errorf("line %d is named %q, live %q", i, got, key)
		}
	}
}

// namedRelay is a relay that only names its node.
type namedRelay string

func (namedRelay) Publish(*Event)   {}
func (r namedRelay) NodeID() string { return string(r) }

// sent returns the events sent so far, and forgets them.
func (m *fakeMember) sent() []*Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.events
	m.events = nil
	return out
}
