package tcpserver

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var defaultBudget = budgetRates{deliveries: DefaultRoomRate, bytes: DefaultRoomBytes}

// A room of 20 whose members all say the longest lines at the default
// rate, after each has said its whole burst at once, never finds the
// default budget spent: small rooms do not feel it.
func TestSmallRoomsNeverMeetTheDefaultBudget(t *testing.T) {
	const (
		members = 20
		burst   = 20   // HubConfig.Burst's default
		rate    = 10   // lines a second each, HubConfig.Rate's default
		line    = 4230 // --max-line's 4096 as JSON, a name and the envelope
		seconds = 120
	)
	var b roomBudget
	t0 := time.Unix(1e9, 0)
	for m := range members {
		for i := range burst {
			if !b.take(t0, defaultBudget, 1, line, members-1) {
				t.Fatalf("member %d's line %d of its burst refused", m, i)
			}
		}
	}
	// Then every member at its rate, spread over each tenth of a second.
	for tick := 1; tick <= seconds*rate; tick++ {
		for m := range members {
			now := t0.Add(time.Duration(tick)*time.Second/rate + time.Duration(m)*time.Millisecond)
			if !b.take(now, defaultBudget, 1, line, members-1) {
				t.Fatalf("at %s, member %d's line refused", now.Sub(t0), m)
			}
		}
	}
}

// In a room of 10,000, one member saying 4 KB lines at the default rate
// (400 MB a second delivered) is held to the budget: over ten seconds the
// room delivers at most its rate for eleven (one second at once, then
// the rate), however many lines are said.
func TestBigRoomIsHeldToItsBudget(t *testing.T) {
	const members, line = 10_000, 4000
	var b roomBudget
	t0 := time.Unix(1e9, 0)
	said := 0
	for tick := range 100 { // 10 lines a second for 10 s
		if b.take(t0.Add(time.Duration(tick)*100*time.Millisecond), defaultBudget, 1, line, members) {
			said++
		}
	}
	if most := int(11 * DefaultRoomBytes / (line * members)); said > most || said == 0 {
		t.Fatalf("%d of 100 lines said in 10 s, want 1 to %d", said, most)
	}
	// Short lines are held by the deliveries a second instead.
	b = roomBudget{}
	said = 0
	for tick := range 1000 { // 100 lines a second, one each, for 10 s
		if b.take(t0.Add(time.Duration(tick)*10*time.Millisecond), defaultBudget, 1, 40, members) {
			said++
		}
	}
	if most := 11 * DefaultRoomRate / members; said > most || said < most/2 {
		t.Fatalf("%d of 1000 short lines said in 10 s, want %d to %d", said, most/2, most)
	}
}

// A line costing more than a second's budget still goes when the room has
// been quiet (a full bucket), and the room then owes the rest; what other
// nodes relay is charged, never refused, and what is owed is refused to
// this node's own members.
func TestBudgetDebts(t *testing.T) {
	rates := budgetRates{deliveries: 1000, bytes: 1 << 20}
	t0 := time.Unix(1e9, 0)
	var b roomBudget
	if !b.take(t0, rates, 1, 4000, 1000) { // 4 MB: 3.8 seconds' bytes
		t.Fatal("a line over a second's budget refused in a quiet room")
	}
	if b.take(t0.Add(time.Second), rates, 1, 10, 1) {
		t.Fatal("a line said while the room owes 1.8 seconds went")
	}
	if w := b.wait(rates, 1, 10, 1); w != 2*time.Second {
		t.Fatalf("wait = %s, want 2s (what is owed, rounded up)", w)
	}
	if !b.take(t0.Add(4*time.Second), rates, 1, 10, 1) {
		t.Fatal("a line refused once the debt was paid")
	}

	b = roomBudget{}
	b.charge(t0, rates, 5, 500, 1000) // 5,000 deliveries relayed: five seconds
	if b.take(t0.Add(time.Second), rates, 1, 10, 1) {
		t.Fatal("a local line went while the room owes for relayed ones")
	}
	if !b.take(t0.Add(5*time.Second), rates, 1, 10, 1) {
		t.Fatal("a local line refused once the relayed ones were paid for")
	}

	// No budget: anything goes, and nothing is kept.
	var free roomBudget
	if !free.take(t0, budgetRates{}, 1000, 1<<30, 1<<20) || free.last != (time.Time{}) {
		t.Fatal("with no budget a line was refused, or counted")
	}
	// One rate alone bounds.
	if b := (roomBudget{}); !b.take(t0, budgetRates{bytes: 100}, 1, 100, 1) || b.take(t0, budgetRates{bytes: 100}, 1, 1, 1) {
		t.Fatal("a budget in bytes alone did not bound")
	}
}

// A sender in a busy room is refused with a notice that says so; readers
// get what was said and nothing else; a refused line is not kept or
// relayed, and is not a flood strike: the sender, however often refused,
// is not cut off.
func TestBusyRoomRefusesTheSender(t *testing.T) {
	relay := &recordingRelay{}
	// 50 deliveries a second: five lines to ten members at once. Flood
	// control lets every line through (a billion a second), and would
	// cut the sender off after 30 strikes (3*Burst).
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: 1e9, Burst: 10, RoomRate: 50, RoomBytes: -1, Relay: relay}, nil)
	sender, sm := connect(t, h, "loud")
	var readers []*fakeMember
	for i := range 10 {
		_, m := connect(t, h, fmt.Sprintf("r%d", i))
		readers = append(readers, m)
	}
	sm.lines()
	for _, m := range readers {
		m.lines()
	}
	relay.mu.Lock()
	relay.events = nil
	relay.mu.Unlock()

	for i := range 100 {
		sender.Handle(fmt.Appendf(nil, "line %d", i))
	}
	for i, m := range readers {
		got := m.lines()
		if len(got) != 5 || got[0] != "<loud> line 0" || got[4] != "<loud> line 4" {
			t.Fatalf("reader %d got %q, want lines 0 to 4", i, got)
		}
	}
	mine := sm.lines()
	if n := count(mine, "! the room is busy: that line was not sent; try again in 1 s"); n != 95 || len(mine) != 95 {
		t.Fatalf("the sender got %d busy notices in %q", n, mine)
	}
	relay.mu.Lock()
	relayed := len(relay.events)
	relay.mu.Unlock()
	if relayed != 5 {
		t.Fatalf("%d lines relayed, want 5", relayed)
	}
	_, late := connect(t, h, "late")
	if hist := count(late.lines(), "<loud> line "); hist != 5 {
		t.Fatalf("history holds %d lines, want 5", hist)
	}
	sm.mu.Lock()
	closed := sm.closed
	sm.mu.Unlock()
	if st := h.Stats(); closed != "" || sender.strikes != 0 || st.FloodKicks != 0 || st.Refused != 0 || st.RoomBusy != 95 {
		t.Fatalf("sender closed %q; %d flood kicks, %d refused, %d refused as busy (want 95)", closed, st.FloodKicks, st.Refused, st.RoomBusy)
	}
}

// Lines a member's read carried (a batch) go together or not at all, and
// the member is told how many were not sent.
func TestBusyRoomRefusesABatchWhole(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, RoomRate: 3, RoomBytes: -1}, nil)
	sender, sm := connect(t, h, "paste")
	_, rm := connect(t, h, "reader")
	sm.lines()
	rm.lines()
	say := func(lines ...string) {
		sender.Hold()
		for _, l := range lines {
			sender.Handle([]byte(l))
		}
		sender.Flush()
	}
	say("a", "b") // 2 of 3
	say("c", "d") // 2 more: refused whole
	if got := rm.lines(); strings.Join(got, "|") != "<paste> a|<paste> b" {
		t.Fatalf("reader got %q", got)
	}
	if got := sm.lines(); len(got) != 1 || got[0] != "! the room is busy: those 2 lines were not sent; try again in 1 s" {
		t.Fatalf("sender got %q", got)
	}
	if st := h.Stats(); st.RoomBusy != 2 {
		t.Fatalf("RoomBusy = %d, want 2", st.RoomBusy)
	}
}

// Lines relayed from another node are delivered whatever the budget, and
// charged to it: this node's members then find the room busy.
func TestRelayedLinesAreChargedNotRefused(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, RoomRate: 10, RoomBytes: -1}, nil)
	local, lm := connect(t, h, "local")
	_, rm := connect(t, h, "reader")
	lm.lines()
	rm.lines()
	for i := range 20 { // 40 deliveries: four seconds of the room's budget
		h.Deliver(&Event{Kind: KindMessage, Room: "lobby", From: "far", Text: fmt.Sprint(i), Node: "b", NodeID: uint64(i + 1), Time: time.Now()})
	}
	if got := rm.lines(); len(got) != 20 {
		t.Fatalf("reader got %d of 20 relayed lines", len(got))
	}
	local.Handle([]byte("me too"))
	if got := rm.lines(); len(got) != 0 {
		t.Fatalf("reader got %q from the local member of a room in debt", got)
	}
	if got := lm.lines(); count(got, "! the room is busy") != 1 || count(got, "<far> ") != 20 {
		t.Fatalf("local member got %q, want the 20 relayed lines and a busy notice", got)
	}
}

// With the budget off (negative rates), nothing is refused.
func TestNoRoomBudget(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, RoomRate: -1, RoomBytes: -1}, nil)
	sender, _ := connect(t, h, "a")
	_, rm := connect(t, h, "b")
	rm.lines()
	for range 1000 {
		sender.Handle([]byte(strings.Repeat("x", 4000)))
	}
	if got := rm.lines(); len(got) != 1000 {
		t.Fatalf("reader got %d of 1000 lines", len(got))
	}
}

// A line's cost in bytes is the most any member is sent for it: its JSON,
// where '<' takes six bytes, when that is longer than its text line.
// Whatever a member may say, the cost is at least the JSON, and not much
// more.
func TestLineBytesIsWhatTheLongestEncodingTakes(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	texts := []string{"", "hi", strings.Repeat("x", 4000), strings.Repeat("<", 4000), `a "quoted" \ path	tab`,
		"é and 👩‍💻 & <b> bold </b>", strings.Repeat("&>", 100)}
	for i := range 200 { // and whatever CleanLine lets through
		b := make([]byte, 64)
		for j := range b {
			b[j] = byte(i*131 + j*7)
		}
		texts = append(texts, CleanLine(b))
	}
	for _, text := range texts {
		for _, k := range []Kind{KindMessage, KindAction} {
			ev := h.stamp(&Event{Kind: k, Room: "a-long-room-name", From: "somebody-with-a-name", Text: text})
			got, json := lineBytes(ev), len(ev.JSON())
			if got < json || got < len(ev.Line()) || got > max(json, len(ev.Line()))+40 {
				t.Fatalf("%s %.30q: costs %d; JSON %d, line %d", k, text, got, json, len(ev.Line()))
			}
		}
	}
}

// So a room of the page's members finds '<' lines six times dearer than
// lines of letters of the same length.
func TestBusyRoomCountsJSON(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, RoomRate: -1, RoomBytes: 100_000}, nil)
	sender, sm := connect(t, h, "s")
	_, rm := connect(t, h, "r")
	sm.lines()
	rm.lines()
	for range 10 {
		sender.Handle([]byte(strings.Repeat("<", 4000))) // 24 KB each
	}
	if got := len(rm.lines()); got != 4 {
		t.Fatalf("%d lines of 4,000 '<' within 100,000 bytes, want 4", got)
	}
	h2 := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, RoomRate: -1, RoomBytes: 100_000}, nil)
	sender, _ = connect(t, h2, "s")
	_, rm = connect(t, h2, "r")
	rm.lines()
	for range 30 {
		sender.Handle([]byte(strings.Repeat("x", 4000))) // 4 KB each
	}
	if got := len(rm.lines()); got != 24 {
		t.Fatalf("%d lines of 4,000 'x' within 100,000 bytes, want 24", got)
	}
}
