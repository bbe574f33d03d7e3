package tcpserver

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeMember records what the hub sends it.
type fakeMember struct {
	mu     sync.Mutex
	events []*Event
	closed string
}

func (m *fakeMember) Send(ev *Event) {
	m.mu.Lock()
	m.events = append(m.events, ev)
	m.mu.Unlock()
}

func (m *fakeMember) Close(reason string) {
	m.mu.Lock()
	m.closed = reason
	m.mu.Unlock()
}

// lines returns the text lines sent so far, without CRLF, and forgets them.
func (m *fakeMember) lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, ev := range m.events {
		out = append(out, strings.Split(strings.TrimSuffix(string(ev.Line()), "\r\n"), "\r\n")...)
	}
	m.events = nil
	return out
}

func connect(t *testing.T, h *Hub, nick string) (*Client, *fakeMember) {
	t.Helper()
	m := &fakeMember{}
	// A telnet member, as far as the hub knows: its address is shown.
	c, err := h.Connect(m, ConnectInfo{Addr: "192.0.2.1:1000", Transport: "tcp", Nick: nick})
	if err != nil {
		t.Fatal(err)
	}
	return c, m
}

func TestConnectWithNickAndRoom(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1}, nil)
	_, _ = connect(t, h, "alice")
	m := &fakeMember{}
	c, err := h.Connect(m, ConnectInfo{Addr: "192.0.2.2:1", Nick: "ALICE", Room: "#Docs"})
	if err != nil {
		t.Fatal(err)
	}
	got := m.lines()
	if !strings.HasPrefix(got[0], "*** Welcome to chatbridge, guest-") || !strings.Contains(got[0], "You are in docs.") {
		t.Fatalf("welcome = %q", got[0])
	}
	if got[1] != `*** nick "ALICE" is taken; you are a guest for now` {
		t.Fatalf("notice = %q", got[1])
	}
	if c.Room() != "docs" {
		t.Fatalf("room = %q", c.Room())
	}
	c.Leave("")
}

// linkedRelay hands every event published on one hub to the others, as
// the NATS relay will between nodes.
type linkedRelay struct{ peers []*Hub }

func (r *linkedRelay) Publish(ev *Event) {
	for _, h := range r.peers {
		h.Deliver(ev)
	}
}

func TestRelaySeamJoinsTwoHubs(t *testing.T) {
	ra, rb := &linkedRelay{}, &linkedRelay{}
	a := NewHub(HubConfig{AnnounceDelay: -1, Relay: ra}, nil)
	b := NewHub(HubConfig{AnnounceDelay: -1, Relay: rb}, nil)
	ra.peers, rb.peers = []*Hub{b}, []*Hub{a}

	alice, am := connect(t, a, "alice")
	_, bm := connect(t, b, "bob")
	am.lines()
	bm.lines()

	alice.Handle([]byte("hello from node a"))
	alice.Handle([]byte("/me waves"))
	if got := bm.lines(); len(got) != 2 || got[0] != "<alice> hello from node a" || got[1] != "* alice waves" {
		t.Fatalf("bob on node b got %q", got)
	}
	// History on b holds node a's lines.
	_, cm := connect(t, b, "carol")
	got := cm.lines()
	if len(got) < 3 || unstamped(got[1]) != "<alice> hello from node a" || unstamped(got[2]) != "* alice waves" {
		t.Fatalf("carol's welcome on node b = %q", got)
	}
	alice.Leave("")
	if got := bm.lines(); len(got) != 2 || got[1] != "*** alice (192.0.2.1:1000) left" {
		t.Fatalf("bob saw %q", got)
	}
}

func TestBigRoomsDoNotAnnounceJoinsAndLeaves(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, AnnounceLimit: 3}, nil)
	_, first := connect(t, h, "")
	for range 2 {
		connect(t, h, "")
	}
	if got := first.lines(); len(got) != 4 { // welcome, presence, two joins
		t.Fatalf("first saw %q", got)
	}
	c4, _ := connect(t, h, "")
	c4.Leave("")
	if got := first.lines(); len(got) != 0 {
		t.Fatalf("in a room of 4 with limit 3, first saw %q", got)
	}
}

func TestMaxRoomsForgetsIdleEmptyRooms(t *testing.T) {
	// Two rooms besides the lobby, which is not counted.
	h := NewHub(HubConfig{MaxRooms: 2, MaxPerIP: -1}, nil)
	c, m := connect(t, h, "")
	for _, r := range []string{"a", "b"} {
		c.Handle([]byte("/join " + r))
		c.Handle([]byte("said in " + r)) // history keeps the room
	}
	m.lines()
	// lobby, a, b exist; c is in b. Room c must evict a, the idle one.
	c.Handle([]byte("/join c"))
	var names []string
	for _, r := range h.Rooms() {
		names = append(names, fmt.Sprintf("%s(%d)", r.Name, r.Members))
	}
	if got := strings.Join(names, " "); got != "c(1) b(0) lobby(0)" {
		t.Fatalf("rooms = %s", got)
	}
	// Now every room but the lobby is in use or... b is empty and can go.
	d, _ := connect(t, h, "")
	d.Handle([]byte("/join d"))
	if got := len(h.Rooms()); got != 3 {
		t.Fatalf("%d rooms, want 3", got)
	}
}

func TestEventJSON(t *testing.T) {
	h := NewHub(HubConfig{}, nil)
	msg := h.stamp(&Event{Kind: KindMessage, Room: "lobby", From: "alice", Text: "<b>hi</b> & \"quotes\""})
	var got map[string]any
	if err := json.Unmarshal(msg.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"type": "message", "room": "lobby", "from": "alice", "text": "<b>hi</b> & \"quotes\""} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if got["id"] == "" || got["time"] == "" {
		t.Errorf("id or time missing: %s", msg.JSON())
	}
	hist := h.stamp(&Event{Kind: KindHistory, Room: "lobby", Events: []*Event{msg}})
	var hv struct {
		Type   string
		Events []struct{ Type, Text string }
	}
	if err := json.Unmarshal(hist.JSON(), &hv); err != nil || hv.Type != "history" || len(hv.Events) != 1 || hv.Events[0].Text != msg.Text {
		t.Fatalf("history JSON %s: %v", hist.JSON(), err)
	}
	if first, again := msg.JSON(), msg.JSON(); &first[0] != &again[0] {
		t.Fatal("JSON is encoded again on each call")
	}
}

// TestBroadcastAllocationsDoNotGrowWithMembers proves that fan-out costs
// no allocation per delivery: a line to 1,000 members allocates as much
// as a line to 10.
func TestBroadcastAllocationsDoNotGrowWithMembers(t *testing.T) {
	allocs := func(n int) float64 {
		// A room budget that is checked but never spent.
		h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 20, RoomRate: 1e15, RoomBytes: 1e18}, nil)
		var sender *Client
		for i := range n {
			c, err := h.Connect(discardMember{}, ConnectInfo{Addr: fmt.Sprintf("192.0.2.1:%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			sender = c
		}
		line := []byte("hello, everybody")
		return testing.AllocsPerRun(200, func() { sender.Handle(line) })
	}
	small, big := allocs(10), allocs(1000)
	if big > small {
		t.Fatalf("allocations per line: %v with 10 members, %v with 1000", small, big)
	}
}

type discardMember struct{}

func (discardMember) Send(*Event)  {}
func (discardMember) Close(string) {}

func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			// A room budget that is checked but never spent.
			h := NewHub(HubConfig{MaxPerIP: -1, MaxClients: -1, Rate: -1, RoomRate: 1e15, RoomBytes: 1e18}, nil)
			var sender *Client
			for i := range n {
				c, err := h.Connect(discardMember{}, ConnectInfo{Addr: fmt.Sprintf("192.0.2.1:%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				sender = c
			}
			line := []byte("hello, everybody: a line of typical length")
			b.ReportAllocs()
			for b.Loop() {
				sender.Handle(line)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(n-1)), "ns/delivery")
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	h := NewHub(HubConfig{}, nil)
	b.Run("line", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.stamp(&Event{Kind: KindMessage, Room: "lobby", From: "alice", Text: "hello, everybody: a line of typical length"})
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.stamp(&Event{Kind: KindMessage, Room: "lobby", From: "alice", Text: "hello, everybody: a line of typical length"}).JSON()
		}
	})
}

func BenchmarkLineReader(b *testing.B) {
	chunk := []byte(strings.Repeat("a typical chat line of some length\r\n", 100))
	buf := make([]byte, len(chunk))
	r := &LineReader{Max: 4096}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, chunk)
		r.Feed(buf, func([]byte, bool) {})
	}
}

type recordingRelay struct {
	mu     sync.Mutex
	events []*Event
}

func (r *recordingRelay) Publish(ev *Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func TestHeldLinesGoAsOneBatchInOrder(t *testing.T) {
	relay := &recordingRelay{}
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, Relay: relay}, nil)
	alice, _ := connect(t, h, "alice")
	_, bm := connect(t, h, "bob")
	bm.lines()
	relay.events = nil

	alice.Hold()
	for _, l := range []string{"one", "two", "/me three", "/nick ally", "four", "five"} {
		alice.Handle([]byte(l))
	}
	alice.Flush()

	bm.mu.Lock()
	var kinds []string
	for _, ev := range bm.events {
		kinds = append(kinds, ev.Kind.String())
	}
	bm.mu.Unlock()
	// A command says what was held before it acts: one and two go as a
	// batch, the action alone (the /nick flushes it), the nick, then four
	// and five as another batch.
	if got := strings.Join(kinds, " "); got != "batch action nick batch" {
		t.Fatalf("bob got events %s", got)
	}
	want := []string{"<alice> one", "<alice> two", "* alice three", "*** alice is now known as ally", "<ally> four", "<ally> five"}
	if got := bm.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("bob got %q, want %q", got, want)
	}
	// The relay and the history see lines one by one.
	var relayed []string
	for _, ev := range relay.events {
		relayed = append(relayed, ev.Kind.String())
	}
	if got := strings.Join(relayed, " "); got != "message message action nick message message" {
		t.Fatalf("relay got %s", got)
	}
	_, cm := connect(t, h, "carol")
	if got := cm.lines(); len(got) < 6 || unstamped(got[1]) != "<alice> one" || unstamped(got[5]) != "<ally> five" {
		t.Fatalf("carol's history = %q", got)
	}
}

func TestCompareFoldOrdersAsLowerCase(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"alice", "Bob", -1},
		{"Bob", "alice", 1},
		{"ADA", "ada", 0},
		{"ada", "ada-2", -1},
		{"guest-10", "guest-9", -1},
		{"Zed", "zeb", 1},
		{"", "a", -1},
	}
	for _, tt := range tests {
		got := compareFold(tt.a, tt.b)
		if (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("compareFold(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// The presence list (the first presenceNames members, sorted) is kept
// between joins; it must follow every join into it, leave from it and
// rename in it.
func TestPresenceFollowsJoinsLeavesAndRenames(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1}, nil)
	names := func() ([]string, int) {
		t.Helper()
		_, m := connect(t, h, "")
		var ev *Event
		for _, e := range m.events {
			if e.Kind == KindPresence {
				ev = e
			}
		}
		if ev == nil {
			t.Fatal("no presence event")
		}
		return ev.Names, ev.Count
	}
	clients := map[string]*Client{}
	for i := range presenceNames + 5 {
		name := fmt.Sprintf("u%03d", i)
		c, _ := connect(t, h, name)
		clients[name] = c
	}
	got, count := names() // the probe, a guest, is the 106th: not listed
	if len(got) != presenceNames || got[0] != "u000" || got[presenceNames-1] != "u099" || count != presenceNames+6 {
		t.Fatalf("first: %d names %q ... %q, count %d", len(got), got[0], got[len(got)-1], count)
	}

	clients["u000"].Leave("")
	got, _ = names()
	if slices.Contains(got, "u000") || len(got) != presenceNames {
		t.Fatalf("after u000 left: %q", got)
	}

	clients["u050"].Handle([]byte("/nick Zed"))
	got, _ = names()
	if slices.Contains(got, "u050") || got[len(got)-1] != "Zed" {
		t.Fatalf("after u050 became Zed: %q", got)
	}
	clients["u001"].Handle([]byte("/nick aaa"))
	got, _ = names()
	if got[0] != "aaa" {
		t.Fatalf("after u001 became aaa: %q", got)
	}
}

// What a member says reaches the others cleaned, whatever the command:
// invisible characters are gone and marks do not pile up.
func TestSaidTextIsCleaned(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1}, nil)
	mallory, _ := connect(t, h, "mallory")
	_, am := connect(t, h, "alice")
	am.lines()
	for _, l := range []string{
		"hi\u200b there\u2060",
		"/me wa\u200dves z\u0300\u0301\u0302\u0303\u0304",
		"/msg alice ps\ufeffst \u3164",
		"\u200b",
	} {
		mallory.Handle([]byte(l))
	}
	want := []string{"<mallory> hi there", "* mallory waves z\u0300\u0301\u0302", "*mallory* psst"}
	if got := am.lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("alice got %q, want %q", got, want)
	}
}
