package natsrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"chatbridge/tcpserver"
	"chatbridge/tcpserver/storetest"
)

// startStore starts a relay that is a store alone (no hub) on n, under a
// prefix of its own, so that each has an empty stream.
func startStore(t testing.TB, n *testNATS, cfg Config) *Relay {
	t.Helper()
	cfg.URL = n.url()
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("s%d", storeCount.Add(1))
	}
	if cfg.Secret == nil {
		cfg.Secret = []byte(testSecret)
	}
	cfg.Required = true
	r, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var storeCount atomic.Int64

func TestStoreConformance(t *testing.T) {
	n := startNATS(t)
	storetest.Run(t, func(t *testing.T) tcpserver.Store { return startStore(t, n, Config{}).Store() })
}

// TestJoinsMakeNoConsumers: reading a room's history, as every join
// does, costs NATS no consumer (it used to make one and delete it).
func TestJoinsMakeNoConsumers(t *testing.T) {
	n := startNATS(t)
	nc, err := nats.Connect(n.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var created atomic.Int64
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.>", func(*nats.Msg) { created.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()

	a := startNode(t, n.url(), "a", 0)
	b := startNode(t, n.url(), "b", 0)
	alice := a.join(t, "alice", "lobby")
	alice.say("one", "two")
	waitFor(t, "two lines in the stream", func() bool {
		lines, _ := b.relay.History(context.Background(), "lobby")
		return len(lines) == 2
	})
	for i := range 20 {
		u := &user{t: t, signal: make(chan struct{}, 1)}
		c, err := b.hub.Connect(u, tcpserver.ConnectInfo{Addr: "192.0.2.3:1", Nick: fmt.Sprint("bob", i)})
		if err != nil {
			t.Fatal(err)
		}
		u.expect("<alice> two") // replayed on join
		c.Leave("")
	}
	nc.Flush()
	time.Sleep(100 * time.Millisecond) // advisories are asynchronous
	// The names bucket's watchers are consumers, one per node; a join
	// makes none.
	if got := created.Load(); got > 2 {
		t.Fatalf("%d consumers created for 20 joins and two watches", got)
	}
}

// TestStoreKeepsItsLimit: the stream keeps HistoryKeep lines per room;
// a read after older lines went returns what is left, with more false.
func TestStoreKeepsItsLimit(t *testing.T) {
	n := startNATS(t)
	r := startStore(t, n, Config{History: 2, HistoryKeep: 5})
	s := r.Store()
	say := func(from, to int) {
		for i := from; i <= to; i++ {
			s.Append(&tcpserver.Event{ID: uint64(i), Kind: tcpserver.KindMessage, Time: time.Now(), Room: "lobby", From: "alice", Text: fmt.Sprint("line ", i)})
		}
	}
	lastIs := func(want string) []*tcpserver.Event {
		t.Helper()
		var lines []*tcpserver.Event
		waitFor(t, "last line "+want, func() bool {
			lines, _, _ = s.Lines(context.Background(), "lobby", tcpserver.LineKey{}, 50)
			return len(lines) > 0 && lines[len(lines)-1].Text == want
		})
		return lines
	}
	say(1, 4)
	lines := lastIs("line 4") // the room's index now holds lines 1-4
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4", len(lines))
	}
	say(5, 12)
	lines = lastIs("line 12")
	if len(lines) != 5 || lines[0].Text != "line 8" {
		t.Fatalf("got %q, want lines 8 to 12", texts(lines))
	}
	// Before line 10: 8 and 9, and nothing earlier is left.
	lines, more, err := s.Lines(context.Background(), "lobby", tcpserver.LineKey{ID: 10}, 50)
	if err != nil || len(lines) != 2 || lines[0].Text != "line 8" || more {
		t.Fatalf("before line 10: %q, more %v, err %v", texts(lines), more, err)
	}
}

func texts(evs []*tcpserver.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Text
	}
	return out
}

func TestStateAcrossNodes(t *testing.T) {
	n := startNATS(t)
	a := startStore(t, n, Config{Prefix: "st"})
	b := startStore(t, n, Config{Prefix: "st"})
	ctx := context.Background()

	type change struct {
		key   string
		value string
		gone  bool
	}
	seen := make(chan change, 10)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := b.Watch(wctx, "bans", func(k string, v []byte) { seen <- change{k, string(v), v == nil} }); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "bans", "Mallory the 2nd/x", []byte(`{"until":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "bans", "eve", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "bans", "eve"); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "bans", "never-there"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	want := []change{{"Mallory the 2nd/x", `{"until":1}`, false}, {"eve", "v", false}, {"eve", "", true}}
	for _, w := range want {
		select {
		case got := <-seen:
			if got != w {
				t.Fatalf("watch saw %+v, want %+v", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watch did not see %+v", w)
		}
	}
	got, err := b.Load(ctx, "bans")
	if err != nil || len(got) != 1 || string(got["Mallory the 2nd/x"]) != `{"until":1}` {
		t.Fatalf("Load: %q, %v", got, err)
	}

	// A record put by a client of NATS without the secret is not one.
	nc, err := nats.Connect(n.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("$KV.st_state."+stateKey("bans", "forged"), []byte("x.y"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-seen:
		t.Fatalf("watch passed on a forged record: %+v", c)
	case <-time.After(200 * time.Millisecond):
	}
	if got, _ := b.Load(ctx, "bans"); len(got) != 1 {
		t.Fatalf("Load with a forged record: %q", got)
	}
	if b.unverified.Load() == 0 {
		t.Error("the forged record was not counted")
	}
}

func TestStateRefusesBadInput(t *testing.T) {
	n := startNATS(t)
	r := startStore(t, n, Config{})
	ctx := context.Background()
	for _, c := range []struct {
		bucket, key string
		value       []byte
	}{
		{"bad bucket", "k", nil},
		{"bans.x", "k", nil},
		{"", "k", nil},
		{"bans", "", nil},
		{"bans", string(make([]byte, maxStateKey+1)), nil},
		{"bans", "k", make([]byte, maxStateValue+1)},
	} {
		if err := r.Put(ctx, c.bucket, c.key, c.value); err == nil {
			t.Errorf("Put(%q, %d-byte key, %d bytes) took it", c.bucket, len(c.key), len(c.value))
		}
	}
	if err := r.Put(ctx, "bans", "k", make([]byte, maxStateValue)); err != nil {
		t.Errorf("the largest value: %v", err)
	}
}

// fill publishes n lines of room into r's stream, as r would, waiting
// until the stream has them.
func fill(t testing.TB, r *Relay, room string, n int) {
	t.Helper()
	fillFrom(t, r, room, n, 0)
	waitFor(t, "the stream to hold the lines", func() bool {
		last, err := r.js.Stream(context.Background(), r.streamName())
		if err != nil {
			return false
		}
		info, err := last.Info(context.Background())
		return err == nil && info.State.Msgs >= uint64(n)
	})
}

// fillFrom publishes n lines of room, numbered in the session from seq0+1.
func fillFrom(t testing.TB, r *Relay, room string, n, seq0 int) {
	t.Helper()
	mac := r.seal.newHash()
	subject := r.lineSubject(room)
	now := time.Now()
	for i := 1; i <= n; i++ {
		ev := &tcpserver.Event{ID: uint64(i), Kind: tcpserver.KindMessage, Room: room, From: "alice", Text: fmt.Sprintf("line %d of a room that has said a great many of them", i)}
		b, err := encodeEvent(r.cfg.NodeID, origin{sess: r.sess, seq: uint64(seq0 + i)}, ev, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.nc.Publish(subject, r.seal.seal(mac, purposeEvent, subject, b)); err != nil {
			t.Fatal(err)
		}
		if i%10000 == 0 {
			r.nc.Flush()
		}
	}
	r.nc.Flush()
}

// BenchmarkScrollback: a page of 50 lines before a line, in a room of a
// million lines (the index already built, as after the room's first read).
func BenchmarkScrollback(b *testing.B) {
	n := startNATSWith(b, nil)
	const lines = 1_000_000
	r := startStore(b, n, Config{HistoryKeep: lines, HistoryBytes: 4 << 30})
	fill(b, r, "big", lines)
	start := time.Now()
	first, more, err := r.Lines(context.Background(), "big", tcpserver.LineKey{}, 50)
	if err != nil || len(first) != 50 || !more {
		b.Fatalf("first page: %d lines, more %v, err %v", len(first), more, err)
	}
	b.Logf("the newest page, the room read for the first time: %v", time.Since(start))
	start = time.Now()
	if page, more, err := r.Lines(context.Background(), "big", tcpserver.LineKey{ID: 51}, 50); err != nil || len(page) != 50 || more {
		b.Fatalf("the oldest page: %d lines, more %v, err %v", len(page), more, err)
	}
	b.Logf("the oldest page, which indexes the whole room of %d lines: %v", lines, time.Since(start))
	i := 0
	for b.Loop() {
		i = (i + 7919) % (lines - 100)
		before := tcpserver.LineKey{ID: uint64(lines - i)}
		got, _, err := r.Lines(context.Background(), "big", before, 50)
		if err != nil || len(got) != 50 || got[49].ID != before.ID-1 {
			b.Fatalf("before %v: %d lines, err %v", before, len(got), err)
		}
	}
}

// TestNamesKnownStayTakenWhileTheLinkIsDown: a name another node's member
// held when the link went is refused while the bucket cannot be asked,
// as in a failover of NATS; a name nobody held is checked on this node.
func TestNamesKnownStayTakenWhileTheLinkIsDown(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	a.join(t, "alice", "")
	bob := b.join(t, "bob", "")
	bob.ask("/who", " in lobby: ", "alice")

	ns.stop()
	bob.expect("*** " + NoticeLost)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.relay.ClaimName(ctx, "ALICE", "lobby"); !errors.Is(err, tcpserver.ErrNameTaken) {
		t.Fatalf("claiming alice's name on b while the link is down: %v, want ErrNameTaken", err)
	}
	if err := b.relay.ClaimName(ctx, "carol", "lobby"); errors.Is(err, tcpserver.ErrNameTaken) {
		t.Fatalf("claiming a free name while the link is down: %v", err)
	}
}

// TestAloneKeepsLinesOnly: a node alone on its NATS (--data) keeps its
// lines in the stream, and writes no names and no joins: nobody reads
// them.
func TestAloneKeepsLinesOnly(t *testing.T) {
	ns := startNATS(t)
	n := startNodeWith(t, Config{URL: ns.url(), NodeID: "solo", Alone: true}, slog.New(slog.DiscardHandler))
	var events atomic.Int64
	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.Subscribe("chatbridge.room.*.event", func(*nats.Msg) { events.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	alice := n.join(t, "alice", "")
	n.join(t, "bob", "")
	alice.say("kept")
	waitFor(t, "the line in the stream", func() bool {
		lines, _, _ := n.relay.Lines(context.Background(), "lobby", tcpserver.LineKey{}, 5)
		return len(lines) == 1 && lines[0].Text == "kept"
	})
	s, _ := n.relay.current()
	if keys, err := s.kv.ListKeys(context.Background()); err == nil {
		var got []string
		for k := range keys.Keys() {
			got = append(got, k)
		}
		if len(got) != 0 {
			t.Errorf("names written by a node alone: %q", got)
		}
	}
	if e := events.Load(); e != 0 {
		t.Errorf("%d join or name events published by a node alone", e)
	}
}

// TestScrollbackWalksAWholeRoom: a room's first read indexes only its
// last lines, and reading back page by page, from there or from any
// line, returns every line of the room once, in order.
func TestScrollbackWalksAWholeRoom(t *testing.T) {
	n := startNATS(t)
	r := startStore(t, n, Config{})
	const lines = 3000
	fill(t, r, "lobby", lines)
	fill(t, r, "other", 10) // another room's lines between: none of them
	ctx := context.Background()
	page, more, err := r.Lines(ctx, "lobby", tcpserver.LineKey{}, 20)
	if err != nil || len(page) != 20 || !more || page[19].ID != lines {
		t.Fatalf("the last 20: %d lines, more %v, err %v", len(page), more, err)
	}
	if got := len(r.index.get("lobby").entries); got >= lines/2 {
		t.Errorf("the first read indexed %d lines of %d, want only the last", got, lines)
	}
	var ids []uint64
	for _, ev := range page {
		ids = append(ids, ev.ID)
	}
	for more {
		before := tcpserver.LineKey{ID: ids[0]}
		page, more, err = r.Lines(ctx, "lobby", before, 50)
		if err != nil || len(page) == 0 {
			t.Fatalf("before %v: %d lines, err %v", before, len(page), err)
		}
		var got []uint64
		for _, ev := range page {
			got = append(got, ev.ID)
		}
		ids = append(got, ids...)
	}
	if len(ids) != lines {
		t.Fatalf("%d lines walked, want %d", len(ids), lines)
	}
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("line %d is %d", i, id)
		}
	}

	// From a line far back, in a room read for the first time.
	r.index.drop()
	page, more, err = r.Lines(ctx, "lobby", tcpserver.LineKey{ID: 101}, 50)
	if err != nil || len(page) != 50 || page[0].ID != 51 || page[49].ID != 100 || !more {
		t.Fatalf("before line 101: %d lines, more %v, err %v", len(page), more, err)
	}
	page, more, err = r.Lines(ctx, "lobby", tcpserver.LineKey{ID: 51}, 100)
	if err != nil || len(page) != 50 || page[0].ID != 1 || more {
		t.Fatalf("before line 51: %d lines, more %v, err %v", len(page), more, err)
	}
	// A line the room never had, as any store says.
	if page, more, err = r.Lines(ctx, "lobby", tcpserver.LineKey{ID: lines + 5}, 50); len(page) != 0 || more || !errors.Is(err, tcpserver.ErrUnknownLine) {
		t.Fatalf("before an unknown line: %d lines, more %v, err %v; want ErrUnknownLine", len(page), more, err)
	}
}

func TestIndexIsBounded(t *testing.T) {
	var x lineIndex
	x.max = 100
	for i := range maxIndexedRooms + 50 {
		ri := x.get(fmt.Sprint("room", i))
		x.resized(ri, 0)
	}
	if len(x.rooms) != maxIndexedRooms {
		t.Fatalf("%d rooms indexed, want at most %d", len(x.rooms), maxIndexedRooms)
	}
	a, b := x.get("a"), x.get("b")
	x.resized(a, 60)
	x.resized(b, 60) // 120 lines: a, read least recently, goes
	if x.rooms["a"] != nil || x.rooms["b"] == nil || x.lines > x.max {
		t.Fatalf("after 120 lines of 100: a %v, b %v, %d lines", x.rooms["a"] != nil, x.rooms["b"] != nil, x.lines)
	}
}

// TestReadersWaitingGiveUpInTime: a reader waiting behind a long read of
// a room's index gives up when its ctx ends, rather than waiting it out.
func TestReadersWaitingGiveUpInTime(t *testing.T) {
	n := startNATS(t)
	r := startStore(t, n, Config{})
	fill(t, r, "lobby", 10)
	ri := r.index.get("lobby")
	ri.lock <- struct{}{} // a long read holds the index
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := r.Lines(ctx, "lobby", tcpserver.LineKey{}, 5)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Lines behind a held index: %v after %v", err, time.Since(start))
	}
	<-ri.lock
	if lines, _, err := r.Lines(context.Background(), "lobby", tcpserver.LineKey{}, 5); len(lines) != 5 || err != nil {
		t.Fatalf("then: %d lines, %v", len(lines), err)
	}
}

// startStoreHub starts a node alone whose hub keeps its lines in the
// relay's stream, as chatbridge --data does.
func startStoreHub(t *testing.T, cfg Config) (*Relay, *tcpserver.Hub) {
	t.Helper()
	ns := startNATS(t)
	cfg.URL, cfg.NodeID, cfg.Alone, cfg.Secret = ns.url(), "solo", true, []byte(testSecret)
	r, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hub := tcpserver.NewHub(tcpserver.HubConfig{Relay: r, Store: r.Store(), State: r, MaxPerIP: -1, Rate: -1, ChangeBurst: -1, AnnounceDelay: -1}, nil)
	if err := r.Start(context.Background(), hub); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	(&node{hub: hub, relay: r}).waitUp(t)
	return r, hub
}

// errorOf sends cmd as c and returns the text of the one error event it
// is answered with.
func errorOf(t *testing.T, c *tcpserver.Client, m *eventMember, cmd string) string {
	t.Helper()
	c.Handle([]byte(cmd))
	evs := m.take()
	if len(evs) != 1 || evs[0].Kind != tcpserver.KindError {
		var got []string
		for _, ev := range evs {
			got = append(got, ev.Kind.String()+": "+ev.Text)
		}
		t.Fatalf("%s: %q, want one error", cmd, got)
	}
	return evs[0].Text
}

// TestHistoryFarBackThroughTheHub: a /history before a line further
// back than one lookup reads (a room of 25,000 lines whose index holds
// its last 100) tells the member to ask again, which finds it if it is
// a line of the room, and says there is none if it is not, each ask
// reading at most maxLookBack lines.
func TestHistoryFarBackThroughTheHub(t *testing.T) {
	const lines = 2*maxLookBack + 5000
	r, hub := startStoreHub(t, Config{HistoryKeep: lines})
	fill(t, r, "lobby", lines) // this node's lines 1 to 25,000
	m := &eventMember{}
	c, err := hub.Connect(m, tcpserver.ConnectInfo{Addr: "192.0.2.1:1000", Transport: "tcp", Nick: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Leave("") })
	m.take()
	for _, id := range []string{"nobody-3", "solo-3"} {
		want := "line " + id + " is not among the lines of lobby read back so far; ask again to look further back"
		if got := errorOf(t, c, m, "/history 5 "+id); got != want {
			t.Fatalf("/history 5 %s: %q, want %q", id, got, want)
		}
	}
	c.Handle([]byte("/history 5 solo-3"))
	if evs := m.take(); len(evs) != 1 || evs[0].Kind != tcpserver.KindHistory || len(evs[0].Events) != 2 || evs[0].Events[0].ID != 1 {
		t.Fatalf("/history 5 solo-3 asked again: %v", evs)
	}
	if got := errorOf(t, c, m, "/history 5 nobody-3"); got != "no line nobody-3 in lobby" {
		t.Fatalf("/history 5 nobody-3 asked again: %q", got)
	}
}

// eventMember is a member of a hub that keeps the events sent to it, as
// they are: a terminal reads their Line, a JSON client their JSON.
type eventMember struct {
	mu     sync.Mutex
	events []*tcpserver.Event
}

func (m *eventMember) Send(ev *tcpserver.Event) {
	m.mu.Lock()
	m.events = append(m.events, ev)
	m.mu.Unlock()
}

func (m *eventMember) Close(string) {}

// take returns the events sent so far and forgets them.
func (m *eventMember) take() []*tcpserver.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.events
	m.events = nil
	return out
}

// TestHistoryBeforeAnUnknownLineThroughTheHub: with the JetStream store
// as the hub's, a /history before a line the room does not have (made
// up, another node's, another room's) is answered "no line ID in ROOM",
// to a terminal and as an error event to a JSON client (whose
// {"type":"history","before":ID} the bridge makes this very command), as
// with the memory store (tcpserver's TestHistoryBeforeAnUnknownLine).
// The store once answered with no lines, and the client was told the
// room had nothing before the line it made up.
func TestHistoryBeforeAnUnknownLineThroughTheHub(t *testing.T) {
	r, hub := startStoreHub(t, Config{})
	m := &eventMember{}
	c, err := hub.Connect(m, tcpserver.ConnectInfo{Addr: "192.0.2.1:1000", Transport: "tcp", Nick: "ada", Room: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Leave("") })
	c.Handle([]byte("in another room"))
	c.Handle([]byte("/join lobby"))
	for i := range 3 {
		c.Handle(fmt.Appendf(nil, "line %d", i))
	}
	waitFor(t, "the lines in the stream", func() bool {
		lines, _, _ := r.Lines(context.Background(), "lobby", tcpserver.LineKey{}, 5)
		other, _, _ := r.Lines(context.Background(), "elsewhere", tcpserver.LineKey{}, 5)
		return len(lines) == 3 && len(other) == 1
	})
	other, _, _ := r.Lines(context.Background(), "elsewhere", tcpserver.LineKey{}, 5)
	own, _, _ := r.Lines(context.Background(), "lobby", tcpserver.LineKey{}, 5)
	otherRoom := tcpserver.LineKey{Node: "solo", ID: other[0].ID}
	m.take()
	// Made up, newer than every line of the node and older; of a node
	// the room never heard; of another room.
	for _, id := range []string{"99999999999999999", "5", "elsewhere-2", otherRoom.String()} {
		c.Handle([]byte("/history 5 " + id))
		evs := m.take()
		want := "no line " + id + " in lobby"
		if len(evs) != 1 || evs[0].Kind != tcpserver.KindError || evs[0].Text != want {
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Kind.String()+": "+ev.Text)
			}
			t.Fatalf("/history 5 %s: %q, want one error %q", id, got, want)
		}
		if line := string(evs[0].Line()); !strings.Contains(line, want) {
			t.Errorf("/history 5 %s, as a terminal reads it: %q", id, line)
		}
		var j struct{ Type, Text string }
		if err := json.Unmarshal(evs[0].JSON(), &j); err != nil || j.Type != "error" || j.Text != want {
			t.Errorf("/history 5 %s, as a JSON client reads it: %s (%v)", id, evs[0].JSON(), err)
		}
	}
	// A line of the room still pages back.
	last := tcpserver.LineKey{Node: "solo", ID: own[2].ID}
	c.Handle([]byte("/history 5 " + last.String()))
	evs := m.take()
	if len(evs) != 1 || evs[0].Kind != tcpserver.KindHistory || len(evs[0].Events) != 2 || evs[0].Events[0].Text != "line 0" {
		t.Fatalf("/history 5 %s: %v", last, evs)
	}
}

// TestUnknownLineCostsBoundedReads: a before not in a room's index once
// had the relay read the room's whole stream back (a million lines, as
// long as the reader's timeout let it) for a made-up ID. Now a made-up
// ID newer than the node's oldest indexed line costs no read back, and
// any other a bounded number of direct gets, counted here as NATS sees
// them; a line that is really further back is found by asking again.
func TestUnknownLineCostsBoundedReads(t *testing.T) {
	n := startNATS(t)
	const lines = 8 * maxLookBack
	r := startStore(t, n, Config{HistoryKeep: lines})
	fill(t, r, "lobby", lines)
	nc, err := nats.Connect(n.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var gets atomic.Int64
	sub, err := nc.Subscribe("$JS.API.DIRECT.GET.>", func(*nats.Msg) { gets.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// counted returns the direct gets f asked for, once NATS has passed
	// them all on.
	counted := func(f func()) int64 {
		before := gets.Load()
		f()
		if err := r.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		return gets.Load() - before
	}
	if _, _, err := r.Lines(ctx, "lobby", tcpserver.LineKey{}, 50); err != nil {
		t.Fatal(err)
	}
	// The bound: the counts that find where the lines read back start
	// (by halves over the stream: about log2 of its length, 17 here) and
	// the ten batches of lines read; 31 when written. Reading the room
	// through took 203.
	const bound = 40
	for _, tt := range []struct {
		name   string
		key    tcpserver.LineKey
		most   int64
		wanted error
	}{
		{"newer than the node's oldest line indexed", tcpserver.LineKey{ID: lines + 5}, 1, tcpserver.ErrUnknownLine},
		{"older than any line indexed", tcpserver.LineKey{ID: 3}, bound, tcpserver.ErrLineFurtherBack},
		{"of a node the room never heard", tcpserver.LineKey{Node: "nobody", ID: 3}, bound, tcpserver.ErrLineFurtherBack},
	} {
		size := len(r.index.get("lobby").entries)
		var err error
		got := counted(func() { _, _, err = r.Lines(ctx, "lobby", tt.key, 50) })
		if !errors.Is(err, tt.wanted) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.wanted)
		}
		if got > tt.most {
			t.Errorf("%s: %d direct gets, want at most %d", tt.name, got, tt.most)
		}
		if grown := len(r.index.get("lobby").entries) - size; grown > maxLookBack {
			t.Errorf("%s: the index grew by %d lines, want at most %d", tt.name, grown, maxLookBack)
		}
		t.Logf("%s: %d direct gets", tt.name, got)
	}
	// Line 3 is in the room: a reader asking again gets there, each ask
	// as bounded.
	for asks := 1; ; asks++ {
		var page []*tcpserver.Event
		var err error
		size := len(r.index.get("lobby").entries)
		got := counted(func() { page, _, err = r.Lines(ctx, "lobby", tcpserver.LineKey{ID: 3}, 50) })
		if grown := len(r.index.get("lobby").entries) - size; got > bound || grown > maxLookBack {
			t.Fatalf("ask %d: %d direct gets, the index grew by %d lines", asks, got, grown)
		}
		if err == nil {
			if len(page) != 2 || page[0].ID != 1 {
				t.Fatalf("before line 3: %d lines", len(page))
			}
			break
		}
		if !errors.Is(err, tcpserver.ErrLineFurtherBack) || asks > lines/maxLookBack+1 {
			t.Fatalf("ask %d: %v", asks, err)
		}
	}
	// And a made-up line of a node the room never heard, now that the
	// index holds the whole room, costs nothing but the look for new lines.
	var err2 error
	if got := counted(func() { _, _, err2 = r.Lines(ctx, "lobby", tcpserver.LineKey{Node: "nobody", ID: 3}, 50) }); got > 1 || !errors.Is(err2, tcpserver.ErrUnknownLine) {
		t.Errorf("with the whole room indexed: %d direct gets, err %v", got, err2)
	}
}
