package tcpserver

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

// Event and client IDs are the microseconds since the epoch when they
// were given, or one more than the last if that is not less: they share
// one counter, only grow, and a hub started later starts past every ID of
// one started before it.
func TestIDsAreTimeBasedAndGrow(t *testing.T) {
	start := uint64(time.Now().UnixMicro())
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	c, m := connect(t, h, "ada")
	c.Handle([]byte("one"))
	d, _ := connect(t, h, "bob")
	c.Handle([]byte("two"))
	ids := []uint64{c.ID()}
	for _, ev := range m.events {
		if ev.ID != 0 {
			ids = append(ids, ev.ID)
		}
	}
	ids = append(ids, d.ID())
	for i, id := range ids {
		if id < start {
			t.Fatalf("ID %d is %d, before the hub started (%d µs)", i, id, start)
		}
	}
	if c.ID() >= d.ID() {
		t.Fatalf("client IDs %d then %d do not grow", c.ID(), d.ID())
	}

	// Many at once, in the same microsecond: all different.
	var mu sync.Mutex
	seen := make(map[uint64]bool)
	var wg sync.WaitGroup
	now := time.Now()
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				id := h.newID(now)
				mu.Lock()
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 8000 {
		t.Fatalf("8000 IDs given at the same instant, %d different", len(seen))
	}

	// 8000 IDs in one microsecond ran ahead of the clock; a restart takes
	// longer than they are ahead.
	last := h.newID(time.Now())
	for uint64(time.Now().UnixMicro()) <= last {
		time.Sleep(time.Millisecond)
	}
	later := NewHub(HubConfig{}, nil) // a restart: the clock went on
	if id := later.newID(time.Now()); id <= last {
		t.Fatalf("a hub made later gave ID %d, not past the earlier hub's %d", id, last)
	}
	// An ID read back from a store, given by a clock that was ahead:
	// the next is past it.
	ahead := uint64(time.Now().Add(time.Hour).UnixMicro())
	later.sawID(ahead)
	if id := later.newID(time.Now()); id <= ahead {
		t.Fatalf("after seeing ID %d the hub gave %d", ahead, id)
	}
}

// nodeRelay is a Relay that names its node, as natsrelay's does.
type nodeRelay struct{ node string }

func (nodeRelay) Publish(*Event)   {}
func (r nodeRelay) NodeID() string { return r.node }

// A line's JSON id is its key: its ID on a node alone; in a cluster the
// node it was said on and its ID there, so that every node and the store
// name it alike. Other events keep this hub's ID.
func TestLineIDIsItsKey(t *testing.T) {
	jsonID := func(t *testing.T, ev *Event) string {
		t.Helper()
		var w struct{ ID string }
		if err := json.Unmarshal(ev.JSON(), &w); err != nil {
			t.Fatal(err)
		}
		return w.ID
	}
	lineOf := func(m *fakeMember) *Event {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, ev := range m.events {
			if ev.Kind == KindMessage {
				return ev
			}
		}
		return nil
	}

	alone := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	c, _ := connect(t, alone, "ada")
	_, m := connect(t, alone, "bob")
	c.Handle([]byte("hi"))
	ev := lineOf(m)
	if ev == nil || ev.Key() != (LineKey{ID: ev.ID}) || jsonID(t, ev) != (LineKey{ID: ev.ID}).String() {
		t.Fatalf("alone: line %+v, key %v", ev, ev.Key())
	}

	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, Relay: nodeRelay{"n1"}}, nil)
	c, _ = connect(t, h, "ada")
	_, m = connect(t, h, "bob")
	c.Handle([]byte("hi"))
	ev = lineOf(m)
	want := LineKey{Node: "n1", ID: ev.ID}
	if ev.Key() != want || jsonID(t, ev) != "n1-"+(LineKey{ID: ev.ID}).String() {
		t.Fatalf("a line said here: key %v, JSON id %q; want %v", ev.Key(), jsonID(t, ev), want)
	}
	if k, err := ParseLineKey(jsonID(t, ev)); err != nil || k != want {
		t.Fatalf("the JSON id reads back as %v, %v", k, err)
	}

	m.lines()
	h.Deliver(&Event{Kind: KindMessage, Room: "lobby", From: "zed", Text: "from afar", Node: "n2", NodeID: 7, Time: time.Now()})
	ev = lineOf(m)
	if ev == nil || ev.ID == 0 || ev.ID == 7 || jsonID(t, ev) != "n2-7" {
		t.Fatalf("a relayed line: %+v, JSON id %q; want n2-7", ev, jsonID(t, ev))
	}
	join := h.stamp(&Event{Kind: KindJoin, Room: "lobby", From: "ada"})
	if got := jsonID(t, join); got != (LineKey{ID: join.ID}).String() {
		t.Fatalf("a join's JSON id is %q, want its ID %d", got, join.ID)
	}
}
