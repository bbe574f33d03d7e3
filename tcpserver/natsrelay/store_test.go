package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// A line the room never had: nothing, after looking at all of it.
	if page, more, err = r.Lines(ctx, "lobby", tcpserver.LineKey{ID: lines + 5}, 50); len(page) != 0 || more || err != nil {
		t.Fatalf("before an unknown line: %d lines, more %v, err %v", len(page), more, err)
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
