package tcpserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// jsonMember is a member whose transport speaks JSON: it makes the JSON
// of everything it is sent, the history's lines included, as the bridge's
// writer does for a JSON client.
type jsonMember struct{}

func (jsonMember) Send(ev *Event) { ev.JSON() }
func (jsonMember) Close(string)   {}

// keptLines returns the lines room name keeps, oldest first.
func keptLines(h *Hub, name string) []*Event {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hist.linesLocked()
}

// historyHeld sums what the lines every room keeps hold on to, as lineCost
// counts it, and as it really is: the text, the text line and the JSON if
// it has been made.
func historyHeld(h *Hub) (counted, real int64) {
	h.mu.Lock()
	var names []string
	for name := range h.rooms {
		names = append(names, name)
	}
	h.mu.Unlock()
	for _, name := range names {
		for _, ev := range keptLines(h, name) {
			counted += lineCost(ev)
			real += int64(len(ev.Text) + len(ev.line))
			ev.jsonOnce.Do(func() {}) // never make it here: only look
			real += int64(len(ev.json))
		}
	}
	return counted, real
}

// checkHistoryBytes checks that the hub counts exactly what its rooms
// keep: a room forgotten, or a line dropped, without being counted out
// would leave the budget short for good.
func checkHistoryBytes(t *testing.T, h *Hub) int64 {
	t.Helper()
	counted, _ := historyHeld(h)
	if got := h.Stats().HistoryBytes; got != counted {
		t.Fatalf("HistoryBytes = %d, but the rooms keep lines of %d", got, counted)
	}
	return counted
}

// The history of all rooms together stays within HistoryMemory however
// many rooms fill up with the biggest lines, and whether or not a JSON
// client has made the lines' JSON (6 bytes for each "<" of the text). The
// JSON of a line is counted before it is made.
func TestHistoryMemoryIsBounded(t *testing.T) {
	const limit = 1 << 20
	text := strings.Repeat("<&>", 1365) // 4,095 bytes; 24,570 in JSON
	for _, visited := range []bool{false, true} {
		t.Run(fmt.Sprintf("JSON made %v", visited), func(t *testing.T) {
			h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, MaxRooms: 500, HistoryMemory: limit}, nil)
			peak := int64(0)
			for i := range 60 {
				room := fmt.Sprintf("r%d", i)
				c, _ := connectTo(t, h, room)
				for range 20 {
					c.Handle([]byte(text))
					peak = max(peak, h.Stats().HistoryBytes)
				}
				c.Leave("")
				if visited {
					if _, err := h.Connect(jsonMember{}, ConnectInfo{Addr: "192.0.2.3:1", Room: room}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if peak > limit {
				t.Fatalf("history took %d bytes at its peak; the limit is %d", peak, limit)
			}
			counted := checkHistoryBytes(t, h)
			if counted < limit/2 {
				t.Fatalf("history keeps %d bytes: trimmed far below the limit of %d", counted, limit)
			}
			_, real := historyHeld(h)
			if real > counted {
				t.Fatalf("the kept lines hold %d bytes, more than the %d counted", real, counted)
			}
			if visited && real < counted/2 {
				t.Fatalf("the kept lines hold %d bytes with their JSON made: is it? (%d counted)", real, counted)
			}
		})
	}
}

// lineCost counts at least what a line holds, for the lines that make the
// most JSON of their text.
func TestLineCostCoversBothEncodings(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	for _, text := range []string{
		"hi",
		strings.Repeat("<", 4096),
		strings.Repeat("&>\"\\", 1024),
		strings.Repeat("\t", 100),
		"\u2028\u2029 bidi and friends",
		"\xff\xfe invalid UTF-8 from another node",
		strings.Repeat("é", 2000),
	} {
		for _, k := range []Kind{KindMessage, KindAction} {
			// Said here, and on a node of a cluster whose name is as
			// long as a node's may be: the JSON id is then its name and
			// the ID.
			for _, node := range []string{"", strings.Repeat("n", 64)} {
				ev := h.stamp(&Event{Kind: k, Room: "a-room-with-a-long-name", From: "someone", Text: text})
				if node != "" {
					ev = &Event{Kind: k, Room: ev.Room, From: ev.From, Text: text, ID: ev.ID, Time: ev.Time, Node: node, NodeID: ^uint64(0)}
					ev.finish()
				}
				held := int64(len(ev.Text) + len(ev.Line()) + len(ev.JSON()) + int(unsafe.Sizeof(*ev)))
				if cost := lineCost(ev); cost < held {
					t.Errorf("%v %.20q (node %q): cost %d, but it holds %d", k, text, node, cost, held)
				}
			}
		}
	}
}

// keptLineOverhead covers an Event and a ring slot.
func TestKeptLineOverhead(t *testing.T) {
	if need := unsafe.Sizeof(Event{}) + unsafe.Sizeof(keptLine{}); keptLineOverhead < need {
		t.Fatalf("keptLineOverhead = %d; an Event and its slot take %d", keptLineOverhead, need)
	}
}

// say has c say lines "<prefix>-01", "<prefix>-02", ..., all of one length.
func say(c *Client, prefix string, from, to int) {
	for i := from; i <= to; i++ {
		c.Handle(fmt.Appendf(nil, "%s-%02d", prefix, i))
	}
}

// texts returns the text of the lines room keeps.
func texts(h *Hub, room string) string {
	var out []string
	for _, ev := range keptLines(h, room) {
		out = append(out, ev.Text)
	}
	return strings.Join(out, " ")
}

// When the history is full, the oldest lines of the room least recently
// said anything in go first, then the next room's; a room's newest lines
// are the last to go, and a room left with nothing, and nobody in it, is
// forgotten.
func TestHistoryTrimsLeastRecentlyActiveRoomsFirst(t *testing.T) {
	probe := NewHub(HubConfig{}, nil)
	one := lineCost(probe.stamp(&Event{Kind: KindMessage, Room: "ra", From: "aa", Text: "a-01"}))
	// Room for 30 lines; a trim leaves 7/8 of that: 26.
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 100, HistoryMemory: 30 * one}, nil)
	a, _ := connect(t, h, "aa")
	a.Handle([]byte("/join ra"))
	b, _ := connect(t, h, "bb")
	b.Handle([]byte("/join rb"))
	c, _ := connect(t, h, "cc")
	c.Handle([]byte("/join rc"))

	say(a, "a", 1, 10)
	say(b, "b", 1, 10)
	say(c, "c", 1, 10)
	if got := checkHistoryBytes(t, h); got != 30*one {
		t.Fatalf("30 lines cost %d, want %d", got, 30*one)
	}
	say(b, "b", 11, 11) // over: rb is now the most recent, ra the least
	if got := texts(h, "ra"); got != "a-06 a-07 a-08 a-09 a-10" {
		t.Fatalf("ra keeps %q, want its newest 5", got)
	}
	if got := texts(h, "rc"); got != "c-01 c-02 c-03 c-04 c-05 c-06 c-07 c-08 c-09 c-10" {
		t.Fatalf("rc keeps %q, want all of it", got)
	}
	checkHistoryBytes(t, h)

	a.Leave("")         // ra: nobody in it, 5 lines
	say(b, "b", 12, 16) // 31 lines: ra goes
	for _, r := range h.Rooms() {
		if r.Name == "ra" {
			t.Fatal("ra, empty and with no history left, was kept")
		}
	}
	say(b, "b", 17, 21) // 31 lines again: rc is the least recent now
	if got := texts(h, "rc"); got != "c-06 c-07 c-08 c-09 c-10" {
		t.Fatalf("rc keeps %q, want its newest 5", got)
	}
	if got := texts(h, "rb"); !strings.HasPrefix(got, "b-01 ") || !strings.HasSuffix(got, " b-21") || strings.Count(got, " ")+1 != 21 {
		t.Fatalf("rb keeps %q, want all 21", got)
	}
	checkHistoryBytes(t, h)

	// rc, the most recent now, keeps its newest lines; rb, with someone
	// in it, is kept with none.
	say(c, "c", 11, 60)
	if got := texts(h, "rc"); !strings.HasSuffix(got, "c-59 c-60") || strings.Count(got, " ")+1 < 26 {
		t.Fatalf("rc keeps %q, want its newest lines", got)
	}
	if got := texts(h, "rb"); got != "" {
		t.Fatalf("rb keeps %q, want none", got)
	}
	if got := len(h.Rooms()); got != 3 {
		t.Fatalf("%d rooms; lobby, rb and rc, with someone in each, must stay", got)
	}
	if got := h.Stats().HistoryBytes; got > 30*one {
		t.Fatalf("history takes %d, over the limit %d", got, 30*one)
	}
	checkHistoryBytes(t, h)
}

// A room forgotten (evicted, or left empty) gives its history's memory
// back; whatever reaches a forgotten room's history is not counted.
func TestForgottenRoomsGiveTheirHistoryBack(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, MaxRooms: 1}, nil)
	c, _ := connect(t, h, "")
	c.Handle([]byte("/join a"))
	say(c, "a", 1, 5)
	c.Handle([]byte("/join lobby"))
	before := checkHistoryBytes(t, h)
	c.Handle([]byte("/join b")) // a, empty, is evicted with its 5 lines
	if got := checkHistoryBytes(t, h); got != 0 || before == 0 {
		t.Fatalf("history takes %d after a went, %d before", got, before)
	}

	h.mu.Lock()
	r := h.rooms["b"]
	h.mu.Unlock()
	c.Leave("") // b had no history: forgotten
	r.broadcast(h.stamp(&Event{Kind: KindMessage, Room: "b", From: "x", Text: "late"}), nil)
	if got := h.Stats().HistoryBytes; got != 0 {
		t.Fatalf("a line kept by a forgotten room counts %d bytes", got)
	}
}

// A room the hub has lent out (Deliver, hydrate) is not evicted before it
// has been handed its lines.
func TestPinnedRoomIsNotEvicted(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, MaxRooms: 1}, nil)
	h.mu.Lock()
	r, err := h.roomLocked("dev")
	if err != nil {
		t.Fatal(err)
	}
	h.pinLocked(r)
	h.mu.Unlock()
	c, m := connect(t, h, "")
	c.Handle([]byte("/join other"))
	if got := m.lines(); c.Room() != "lobby" || !strings.Contains(strings.Join(got, "\n"), "cannot be made") {
		t.Fatalf("a pinned room was evicted: %s is in %q (%q)", c.Name(), c.Room(), got)
	}
	h.unpin(r)
	c.Handle([]byte("/join other"))
	if c.Room() != "other" {
		t.Fatalf("the unpinned room was not evicted: in %q", c.Room())
	}
}

// historyCluster is a Cluster whose every room has the same lines, and a
// Relay that drops what is published.
type historyCluster struct{ lines func() []*Event }

func (historyCluster) Publish(*Event)                                  {}
func (historyCluster) ClaimName(context.Context, string, string) error { return nil }
func (historyCluster) ReleaseName(string)                              {}
func (historyCluster) RemoteMembers(string, int) ([]string, int)       { return nil, 0 }
func (historyCluster) RemoteRooms() map[string]int                     { return nil }
func (historyCluster) Private(context.Context, string, string, string) (string, error) {
	return "", ErrNoSuchMember
}
func (c historyCluster) History(context.Context, string) ([]*Event, error) { return c.lines(), nil }

// Lines from other nodes count as local ones do: relayed ones (Deliver)
// and the cluster's history of a room (hydrate).
func TestRelayedAndSeededHistoryIsBounded(t *testing.T) {
	const limit = 256 << 10
	text := strings.Repeat("<", 4000)
	remote := func(room string, i int) *Event {
		return &Event{Kind: KindMessage, Room: room, From: "zed", Text: fmt.Sprintf("%s %d", text, i),
			Node: "node-b", NodeID: uint64(i), Time: time.Now()}
	}
	t.Run("relayed", func(t *testing.T) {
		h := NewHub(HubConfig{MaxPerIP: -1, HistoryMemory: limit}, nil)
		for i := range 400 {
			h.Deliver(remote(fmt.Sprintf("r%d", i%40), i))
			if got := h.Stats().HistoryBytes; got > limit {
				t.Fatalf("after %d relayed lines, history takes %d; the limit is %d", i+1, got, limit)
			}
		}
		counted := checkHistoryBytes(t, h)
		if counted < limit/2 || len(h.Rooms()) > 40 {
			t.Fatalf("%d bytes kept in %d rooms", counted, len(h.Rooms()))
		}
		if got := keptLines(h, "r39"); len(got) == 0 || !strings.HasSuffix(got[len(got)-1].Text, " 399") {
			t.Fatal("the newest relayed line is not kept")
		}
	})
	t.Run("seeded", func(t *testing.T) {
		n := 0
		cl := historyCluster{lines: func() []*Event {
			var out []*Event
			for range 20 {
				n++
				out = append(out, remote("", n))
			}
			return out
		}}
		h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: -1, HistoryMemory: limit, Relay: cl}, nil)
		c, m := connect(t, h, "")
		for i := range 30 {
			c.Handle(fmt.Appendf(nil, "/join r%d", i))
			if got := h.Stats().HistoryBytes; got > limit {
				t.Fatalf("after %d rooms seeded, history takes %d; the limit is %d", i+1, got, limit)
			}
		}
		checkHistoryBytes(t, h)
		// The room just joined kept its newest lines.
		if got := keptLines(h, "r29"); len(got) == 0 || !strings.HasSuffix(got[len(got)-1].Text, fmt.Sprintf(" %d", n)) {
			t.Fatalf("r29 keeps %d lines, not its newest", len(got))
		}
		m.lines()
	})
}

// Members saying big lines in many rooms at once, joining, leaving and
// moving, while the history is trimmed: the count stays exact, and once
// they stop the limit holds. (Run with -race: the trim takes each room's
// lock while its members talk.)
func TestHistoryBoundUnderConcurrentTraffic(t *testing.T) {
	const limit = 256 << 10
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, MaxRooms: 16, HistoryMemory: limit}, nil)
	text := []byte(strings.Repeat("<", 2000))
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			c, err := h.Connect(discardMember{}, ConnectInfo{Addr: "192.0.2.4:1", Room: fmt.Sprintf("r%d", w)})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 300 {
				c.Handle(text)
				switch i % 50 {
				case 10:
					c.Handle(fmt.Appendf(nil, "/join r%d", (w+i)%12))
				case 20:
					if v, err := h.Connect(jsonMember{}, ConnectInfo{Addr: "192.0.2.4:1", Room: c.Room()}); err == nil {
						v.Leave("")
					}
				}
			}
			c.Leave("")
		}()
	}
	for range 8 {
		<-done
	}
	if got := checkHistoryBytes(t, h); got > limit || got < limit/2 {
		t.Fatalf("history takes %d once the traffic stopped; the limit is %d", got, limit)
	}
}
