package natsrelay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"chatbridge/tcpserver"
)

// TestPresenceCostsOneWriteANode: a node with many members writes one
// heartbeat each round, not an entry per member. (Each node used to
// rewrite every member's entry every PresenceTTL/3: at 20,000 members a
// node, thousands of writes a second, each read by every other node.)
func TestPresenceCostsOneWriteANode(t *testing.T) {
	ns := startNATS(t)
	const ttl = 1500 * time.Millisecond // a heartbeat every 500 ms
	const members = 300
	a := startNode(t, ns.url(), "a", ttl)
	b := startNode(t, ns.url(), "b", ttl)
	for i := range members {
		if err := a.relay.ClaimName(context.Background(), fmt.Sprintf("m%d", i), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b to show a's members", func() bool { _, n := b.relay.RemoteMembers("lobby", 1); return n == members })

	rg := startRogue(t, ns.url())
	kv, err := rg.js.KeyValue(context.Background(), "chatbridge_names")
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(context.Background(), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var writes, beats atomic.Int64
	done := make(chan struct{})
	go func() { // ends when w stops
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			writes.Add(1)
			if e.Key() == beatKey("a") {
				beats.Add(1)
			}
		}
	}()
	const watch = 3 * ttl
	time.Sleep(watch)
	w.Stop()
	<-done
	// Two nodes beat every ttl/3: 18 in 3 ttl, and a little slack for
	// a round that fell either side.
	if n := writes.Load(); n > 2*int64(watch/(ttl/3))+4 {
		t.Fatalf("%d writes to the names bucket in %v with %d members", n, watch, members)
	}
	if beats.Load() < 3 {
		t.Fatalf("a wrote %d heartbeats in %v", beats.Load(), watch)
	}
	if _, n := b.relay.RemoteMembers("lobby", 1); n != members {
		t.Fatalf("b shows %d of a's %d members", n, members)
	}
}

// ghostNode plays a node with the cluster's secret straight on the
// bucket: its entries and its heartbeat are what the test writes.
type ghostNode struct {
	t    *testing.T
	kv   jetstream.KeyValue
	seal *sealer
	id   string
}

func newGhost(t *testing.T, url, id string) *ghostNode {
	t.Helper()
	seal, err := newSealer([]byte(testSecret), "chatbridge")
	if err != nil {
		t.Fatal(err)
	}
	rg := startRogue(t, url)
	kv, err := rg.js.KeyValue(context.Background(), "chatbridge_names")
	if err != nil {
		t.Fatal(err)
	}
	return &ghostNode{t: t, kv: kv, seal: seal, id: id}
}

func (g *ghostNode) member(name, room string) {
	g.t.Helper()
	e := nameEntry{Node: g.id, Name: name, Room: room, Time: time.Now().UnixNano()}
	if _, err := g.kv.Put(context.Background(), name, g.seal.seal(nil, purposeName, name, e.encode())); err != nil {
		g.t.Fatal(err)
	}
}

// beat writes a heartbeat made at `at`, and returns it.
func (g *ghostNode) beat(at time.Time) []byte {
	g.t.Helper()
	key := beatKey(g.id)
	b := g.seal.seal(nil, purposeBeat, key, beatEntry{Node: g.id, Time: at.UnixNano()}.encode())
	g.put(b)
	return b
}

func (g *ghostNode) put(b []byte) {
	g.t.Helper()
	if _, err := g.kv.Put(context.Background(), beatKey(g.id), b); err != nil {
		g.t.Fatal(err)
	}
}

// known reports whether n has read the entry stored as key, shown or not.
func (n *node) known(key string) bool {
	n.relay.names.mu.Lock()
	defer n.relay.names.mu.Unlock()
	_, ok := n.relay.names.remote[key]
	return ok
}

// TestHeartbeatDecidesPresence: another node's members show while its
// heartbeat is recent, whatever their entries say; a node that falls
// silent is gone (its members leave, its names come free) and one that
// beats again is back whole; a replayed heartbeat raises nobody.
func TestHeartbeatDecidesPresence(t *testing.T) {
	ns := startNATS(t)
	const ttl = 2 * time.Second
	a := startNode(t, ns.url(), "a", ttl)
	bob := a.join(t, "bob", "")
	g := newGhost(t, ns.url(), "ghost")
	shown := func() int { _, n := a.relay.RemoteMembers("lobby", 10); return n }

	g.member("g1", "lobby")
	g.member("g2", "lobby")
	waitFor(t, "a to read the ghost's entries", func() bool { return a.known("g1") && a.known("g2") })
	if n := shown(); n != 0 {
		t.Fatalf("a shows %d members of a node that never beat", n)
	}

	// Heartbeats nobody with the secret wrote raise nobody: unsealed,
	// sealed with another secret, or sealed as a name entry. (A bigger
	// value than an entry the bucket itself refuses.)
	wrong, err := newSealer([]byte("not the cluster secret, though long"), "chatbridge")
	if err != nil {
		t.Fatal(err)
	}
	key := beatKey("ghost")
	payload := beatEntry{Node: "ghost", Time: time.Now().UnixNano()}.encode()
	before := a.relay.unverified.Load()
	for _, b := range [][]byte{payload, wrong.seal(nil, purposeBeat, key, payload), g.seal.seal(nil, purposeName, key, payload)} {
		g.put(b)
	}
	waitFor(t, "a to ignore the rogue heartbeats", func() bool { return a.relay.unverified.Load() >= before+3 })
	if n := shown(); n != 0 {
		t.Fatalf("a rogue heartbeat brought %d members to presence", n)
	}

	first := g.beat(time.Now())
	waitFor(t, "a to show the ghost's members", func() bool { return shown() == 2 })
	bob.ask("/who", " in lobby: ", "*** 3 in lobby: bob, g1, g2")

	// A sweep that does not see a's own heartbeat come back judges
	// nobody: an hour from now, a's own is as old as the ghost's.
	a.relay.names.sweep(time.Now().Add(time.Hour))
	if n := shown(); n != 2 {
		t.Fatalf("a forgot the ghost's members while its own heartbeat was stuck: %d shown", n)
	}

	// The ghost falls silent.
	silent := time.Now()
	bob.expect("g1 left (node lost)")
	if d := time.Since(silent); d > ttl+2*time.Second {
		t.Fatalf("a took %v to forget a silent node, want within %v", d, ttl+2*time.Second)
	}
	waitFor(t, "a to forget the ghost's members", func() bool { return shown() == 0 })

	// Its first heartbeat again, replayed: too old to raise it.
	g.put(first)
	g.member("g3", "lobby")
	waitFor(t, "a to read g3", func() bool { return a.known("g3") })
	if n := shown(); n != 0 {
		t.Fatalf("a replayed heartbeat brought back %d members", n)
	}

	// It beats again: back whole, without writing its entries again.
	g.beat(time.Now())
	waitFor(t, "a to show the ghost's members again", func() bool { return shown() == 3 })

	// Silent for good: its names are free to take.
	waitFor(t, "a to forget the ghost's members again", func() bool { return shown() == 0 })
	bob.say("/nick g1")
	bob.expect("bob is now known as g1")
}

// TestLeftoversOfAnEarlierRunShowNobody: entries and a heartbeat left in
// the bucket by a node that is gone (the bucket keeps entries for
// NameAge) show nobody to a node that starts later, and its names are
// free.
func TestLeftoversOfAnEarlierRunShowNobody(t *testing.T) {
	ns := startNATS(t)
	const ttl = 2 * time.Second
	a := startNode(t, ns.url(), "a", ttl)
	g := newGhost(t, ns.url(), "old")
	g.member("olga", "lobby")
	g.beat(time.Now().Add(-time.Minute))

	b := startNodeWith(t, Config{URL: ns.url(), NodeID: "b", PresenceTTL: ttl}, slog.New(slog.DiscardHandler))
	waitFor(t, "b to read the leftover entry", func() bool { return b.known("olga") })
	for _, n := range []*node{a, b} {
		if names, k := n.relay.RemoteMembers("lobby", 10); k != 0 {
			t.Fatalf("a node shows %q of a node gone a minute ago", names)
		}
	}
	u := b.join(t, "", "")
	u.say("/nick olga")
	u.expect("is now known as olga")
}

// TestACrowdOfGuestsOnThreeNodes: thousands of members coming to three
// nodes at once, 64 connecting at any time, as a load balancer spreads them, each get a name nobody
// else has, and every node shows every one of them. (Guest names were
// drawn from 9,000 whatever the cluster's size, so most draws met a name
// another node held; after five such draws, or a bucket read that timed
// out, a member kept a name the cluster never heard of: missing from the
// other nodes' presence, and sometimes given to a member there too.)
func TestACrowdOfGuestsOnThreeNodes(t *testing.T) {
	ns := startNATS(t)
	var nodes []*node
	for _, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, ns.url(), id, 0))
	}
	const per = 2000
	var wg sync.WaitGroup
	var mu sync.Mutex
	holders := map[string][]string{}    // name -> nodes
	inFlight := make(chan struct{}, 64) // as chatbench dials: 64 at once
	for i := range per {
		for _, n := range nodes {
			inFlight <- struct{}{}
			wg.Go(func() {
				defer func() { <-inFlight }()
				u := &user{t: t, signal: make(chan struct{}, 1)}
				c, err := n.hub.Connect(u, tcpserver.ConnectInfo{Addr: fmt.Sprintf("192.0.2.%d:%d", 1+i%200, 1000+i), Transport: "tcp"})
				if err != nil {
					t.Error(err)
					return
				}
				t.Cleanup(func() { c.Leave("") })
				mu.Lock()
				holders[c.Name()] = append(holders[c.Name()], n.relay.cfg.NodeID)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	dups := 0
	for name, ids := range holders {
		if len(ids) > 1 {
			if dups++; dups <= 3 {
				t.Errorf("%s is on %v", name, ids)
			}
		}
	}
	if dups > 0 {
		t.Fatalf("%d names held twice among %d members", dups, 3*per)
	}
	for _, n := range nodes {
		waitFor(t, "node "+n.relay.cfg.NodeID+" to show the others' members", func() bool {
			_, k := n.relay.RemoteMembers("lobby", 1)
			return k == 2*per
		})
	}
}
