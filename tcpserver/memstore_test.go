package tcpserver

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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

// indexEntryCost covers what a line's entry in its room's index takes,
// as lines come and go through a full room. (The heap is measured around
// it: other tests' goroutines may free memory meanwhile, so the least of
// a few tries that grew it is taken.)
func TestIndexEntryCost(t *testing.T) {
	for _, n := range []int{10000, 100000} {
		best := -1.0
		for range 3 {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			index := make(map[LineKey]uint64)
			for i := range 5 * n {
				index[LineKey{Node: "n1", ID: uint64(i)}] = uint64(i)
				if i >= n {
					delete(index, LineKey{Node: "n1", ID: uint64(i - n)})
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(index)
			if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 0 && (best < 0 || float64(grew)/float64(n) < best) {
				best = float64(grew) / float64(n)
			}
		}
		if best < 0 || best > indexEntryCost {
			t.Errorf("an index of %d lines takes %.0f bytes a line; indexEntryCost is %d", n, best, indexEntryCost)
		}
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
