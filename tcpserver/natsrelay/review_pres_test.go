package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"chatbridge/tcpserver"
)

// failingDeletes is a bucket whose deletes fail, as they do when the
// server does not answer in time.
type failingDeletes struct{ jetstream.KeyValue }

func (failingDeletes) Delete(context.Context, string, ...jetstream.KVDeleteOpt) error {
	return errors.New("timed out")
}

// TestAFailedDeleteIsTriedAgain: the entry of a member who left is
// deleted on the writer's next round when the first delete failed. (The
// writer forgot the delete once it had tried it, so the entry stayed in
// the bucket and the member in every other node's presence for NameAge,
// half an hour, while its node beat.)
func TestAFailedDeleteIsTriedAgain(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 2*time.Second)
	if err := a.relay.ClaimName(context.Background(), "bob", "lobby"); err != nil {
		t.Fatal(err)
	}
	s, err := a.relay.current()
	if err != nil {
		t.Fatal(err)
	}
	n := &a.relay.names
	// bob leaves; the test plays the writer's rounds.
	n.mu.Lock()
	n.deletes["bob"] = n.owned["bob"].rev
	delete(n.owned, "bob")
	n.mu.Unlock()
	if err := n.write(context.Background(), failingDeletes{s.kv}, "bob"); err == nil {
		t.Fatal("a failed delete reported as done")
	}
	if err := n.write(context.Background(), s.kv, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.kv.Get(context.Background(), "bob"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("bob's entry is still in the bucket after the retry: %v", err)
	}
}

// beatSeen is a heartbeat as the watch hands it over.
type beatSeen struct {
	jetstream.KeyValueEntry // nil: only the methods below are called
	key                     string
	value                   []byte
	created                 time.Time
}

func (e beatSeen) Key() string                     { return e.key }
func (e beatSeen) Value() []byte                   { return e.value }
func (e beatSeen) Created() time.Time              { return e.created }
func (e beatSeen) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
func (e beatSeen) Revision() uint64                { return 1 }

// TestALaggingWatchJudgesNobody: when the watch hands over heartbeats
// late, this node's own among them, no other node is taken for dead for
// a silence that is only the watch's lag. (This node's own heartbeat
// counted as seen when it arrived, not when it was written, so a watch
// 14 s behind took every other node for dead a second later.)
func TestALaggingWatchJudgesNobody(t *testing.T) {
	const ttl = 15 * time.Second
	r, err := New(Config{URL: "nats://127.0.0.1:1", NodeID: "a", PresenceTTL: ttl, Secret: []byte(testSecret)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	beat := func(node string, at time.Time) beatSeen {
		key := beatKey(node)
		return beatSeen{key: key, created: at,
			value: r.seal.seal(nil, purposeBeat, key, beatEntry{Node: node, Time: at.UnixNano()}.encode())}
	}
	now := time.Now()
	written := now.Add(-14 * time.Second) // a's and b's, handed over now
	r.names.apply(beat("a", written))
	r.names.apply(beat("b", written))
	if !r.names.isLive("b") {
		t.Fatal("b's heartbeat of 14 s ago, within the TTL, did not make it live")
	}
	r.names.sweep(now.Add(2 * time.Second))
	if !r.names.isLive("b") {
		t.Fatal("b taken for dead for a silence a's own heartbeat shows too")
	}
	// Once a's own heartbeat comes back on time, b's silence counts.
	r.names.apply(beat("a", now.Add(2*time.Second)))
	r.names.sweep(now.Add(2 * time.Second))
	if r.names.isLive("b") {
		t.Fatal("b, silent for 16 s while a's own heartbeat came back, still live")
	}
}

// TestAReplayedEntryOfAGoneNodeIsPutRight: a rogue without the secret
// that puts back the sealed entry a node now gone wrote for a name, over
// the entry of the live node that holds the name now, neither hides that
// member from the cluster nor frees the name: its node writes its entry
// back at once. (It left the replay there until its next refresh,
// NameAge/3 later; meanwhile the member showed nowhere else and a member
// of another node could take the name, since a gone node's entry holds
// nothing. Entries are believed for NameAge, half an hour, so any entry
// of that time will do.)
func TestAReplayedEntryOfAGoneNodeIsPutRight(t *testing.T) {
	ns := startNATS(t)
	const ttl = 2 * time.Second
	a := startNode(t, ns.url(), "a", ttl)
	b := startNode(t, ns.url(), "b", ttl)
	g := newGhost(t, ns.url(), "gone") // it never beats
	g.member("bob", "lobby")
	captured, err := g.kv.Get(context.Background(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.relay.ClaimName(context.Background(), "bob", "lobby"); err != nil {
		t.Fatalf("bob, held by a node that never beat, not free: %v", err)
	}
	waitFor(t, "b to show a's bob", func() bool { _, n := b.relay.RemoteMembers("lobby", 1); return n == 1 })

	if _, err := g.kv.Put(context.Background(), "bob", captured.Value()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to put its entry for bob back", func() bool {
		e, err := g.kv.Get(context.Background(), "bob")
		if err != nil {
			return false
		}
		entry, _, err := a.relay.readEntry("bob", e.Value(), time.Now())
		return err == nil && entry.Node == "a"
	})
	waitFor(t, "b to show a's bob again", func() bool { _, n := b.relay.RemoteMembers("lobby", 1); return n == 1 })
	if err := b.relay.ClaimName(context.Background(), "bob", "lobby"); !errors.Is(err, tcpserver.ErrNameTaken) {
		t.Fatalf("b took bob, a's member's name, after a replay: %v", err)
	}
}

// TestARestartedNodeGivesItsMembersTheirNames: members who come back at
// once to a node restarted under the same ID get their own names, though
// the bucket still holds the entries the node wrote before, which it is
// deleting as strays meanwhile. (A claim that read such an entry and
// found it deleted before it could overwrite it was refused: about one
// member in ten got a guest name.)
func TestARestartedNodeGivesItsMembersTheirNames(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 2*time.Second)
	const members = 300
	for i := range members {
		if err := a.relay.ClaimName(context.Background(), fmt.Sprintf("m%d", i), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	a.relay.Close()
	again := startNode(t, ns.url(), "a", 2*time.Second)
	var refused atomic.Int64
	var wg sync.WaitGroup
	for i := range members {
		wg.Go(func() {
			if err := again.relay.ClaimName(context.Background(), fmt.Sprintf("m%d", i), "lobby"); err != nil {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if k := refused.Load(); k != 0 {
		t.Fatalf("%d of %d members refused their own names on the restarted node", k, members)
	}
}

// TestAClaimWhileTheViewReloadsTakesNoLiveNodesName: between the link
// coming back and the watch handing over what the bucket holds, this
// node knows no other node's heartbeat; a claim then of a name a live
// node holds is refused, not taken as if that node were gone.
// (Every other node counted as dead in that window, which at 95,000
// members lasts a while, so a member could take a name another node's
// member had.)
func TestAClaimWhileTheViewReloadsTakesNoLiveNodesName(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 2*time.Second)
	b := startNode(t, ns.url(), "b", 2*time.Second)
	if err := b.relay.ClaimName(context.Background(), "bob", "lobby"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to show b's bob", func() bool { _, n := a.relay.RemoteMembers("lobby", 1); return n == 1 })

	// a as startWatch leaves it until the initial values are in.
	n := &a.relay.names
	n.stopWatch()
	n.forgetRemote()
	n.mu.Lock()
	n.lastKnown = nil
	n.mu.Unlock()
	if err := a.relay.ClaimName(context.Background(), "bob", "lobby"); !errors.Is(err, tcpserver.ErrNameTaken) {
		t.Fatalf("a took bob, held by live b, before it knew who was live: %v", err)
	}
}
