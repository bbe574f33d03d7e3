package tcpserver

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// startPair starts two hubs sharing state, each one of a cluster (so
// that a name nobody has here may be on the other), their moderation
// started, as two nodes with --nats are.
func startPair(t *testing.T) (a, b *testServer, state *MemState) {
	t.Helper()
	state = NewMemState()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, _ = startModServer(t, HubConfig{State: state, Relay: &fakeCluster{}})
	b, _ = startModServer(t, HubConfig{State: state, Relay: &fakeCluster{}})
	for _, ts := range []*testServer{a, b} {
		if err := ts.hub.Moderation().Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return a, b, state
}

// TestKickAndBanAcrossNodes: an operator on node a kicks, then bans, by
// name a member on node b: b carries the orders out (the member is
// disconnected with the reason; its address is then refused on both
// nodes), and removes them; the operator is told the order went out.
func TestKickAndBanAcrossNodes(t *testing.T) {
	a, b, state := startPair(t)
	op := a.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := b.dialFrom(t, "127.0.0.2").named("bob")

	op.send("/kick bob off topic")
	op.expect("bob is not on this node: the others are asked to kick bob")
	if lines := bob.closed(); !strings.Contains(strings.Join(lines, "\n"), "kicked by alice: off topic") {
		t.Fatalf("bob, kicked from node a, got %q", lines)
	}

	b.waitGone(t, "bob") // its connection closes before its name is free
	bob = b.dialFrom(t, "127.0.0.2").named("bob")
	op.send("/ban bob 2h spam")
	op.expect("bob is not on this node: the others are asked to ban bob")
	if lines := bob.closed(); !strings.Contains(strings.Join(lines, "\n"), "banned by alice: spam") {
		t.Fatalf("bob, banned from node a, got %q", lines)
	}
	for _, ts := range []*testServer{a, b} {
		if got := ts.dialRefused(t, "127.0.0.2"); !strings.Contains(got, "you are banned from this server (spam); 1h59m left") && !strings.Contains(got, "2h left") {
			t.Errorf("bob's address on %s: %q", ts.addr, got)
		}
	}
	op.send("/bans")
	op.expect("127.0.0.2/32 (bob) by alice")

	orders, err := state.Load(context.Background(), bucketOrders)
	if err != nil || len(orders) != 0 {
		t.Errorf("orders left in the store: %q, %v", orders, err)
	}
	if st := a.hub.Stats(); st.Moderation["kick"] != 1 || st.Moderation["ban"] != 1 {
		t.Errorf("node a counted %v", st.Moderation)
	}
}

// TestOrdersThatNobodyCarriesOut: an order for a name nobody has, on any
// node, changes nothing and stays only until it is stale; one past its
// time is ignored even by the node that has the member (a restart that
// loads old orders kicks nobody); a ban order that would cover the
// operator's own address is refused there; a malformed one is ignored.
// A single node, not of a cluster, says at once that nobody has the name.
func TestOrdersThatNobodyCarriesOut(t *testing.T) {
	a, b, state := startPair(t)
	op := a.dialFrom(t, "127.0.0.1").named("alice").opped()
	bob := b.dialFrom(t, "127.0.0.1").named("bob") // the operator's address
	carol := b.dialFrom(t, "127.0.0.3").named("carol")

	op.send("/kick nobody")
	op.expect("nobody is not on this node")
	op.send("/ban bob")
	op.expect("bob is not on this node")
	ctx := context.Background()
	state.Put(ctx, bucketOrders, "carol.old", []byte(`{"action":"kick","name":"carol","by":"alice","until":"2020-01-01T00:00:00Z"}`))
	state.Put(ctx, bucketOrders, "carol.bad", []byte(`{"action":"explode","name":"carol","by":"alice","until":"2999-01-01T00:00:00Z"}`))
	state.Put(ctx, bucketOrders, "carol.junk", []byte(`{not json`))
	bob.send("still here")
	carol.expect("<bob> still here")
	carol.send("me too")
	bob.expect("<carol> me too")

	// The next order removes the stale one from the store, not the
	// others: they are not stale yet, or not orders.
	op.send("/kick nobody")
	op.expect("nobody is not on this node")
	if keys := state.keys(bucketOrders); slices.Contains(keys, "carol.old") || !slices.Contains(keys, "carol.bad") || !slices.Contains(keys, "carol.junk") {
		t.Errorf("orders in the store: %q", keys)
	}

	single, _ := startModServer(t, HubConfig{})
	op2 := single.dialFrom(t, "127.0.0.1").named("alice").opped()
	op2.send("/kick nobody")
	op2.expect("! no one called nobody is here")
	op2.send("/ban nobody")
	op2.expect("! no one called nobody is here")
}

// TestModeChangesAreToldOnEveryNode: /moderate, /voice and /slow on one
// node are told to the room on the other, and apply there.
func TestModeChangesAreToldOnEveryNode(t *testing.T) {
	a, b, _ := startPair(t)
	op := a.dialFrom(t, "127.0.0.1").named("alice").opped()
	onA := a.dialFrom(t, "127.0.0.2").named("dave")
	onB := b.dialFrom(t, "127.0.0.3").named("bob")

	op.send("/moderate on")
	onA.expect("alice made lobby moderated")
	onB.expect("alice made lobby moderated")
	onB.send("hello?")
	onB.expect("! lobby is moderated")
	op.send("/voice bob")
	onB.expect("alice gave bob voice in lobby")
	op.send("/slow 30")
	onB.expect("alice put lobby in slow mode: one line every 30 s")
	op.send("/moderate off")
	onB.expect("alice made lobby open to everyone again")
	onB.send("first")
	onB.send("second")
	onB.expect("! lobby is in slow mode")
	// Told once: the next line bob sees after the notices is the next one.
	op.send("/slow off")
	onB.expect("alice turned slow mode off in lobby")
	op.send("/moderate on")
	if got := onB.expect("alice"); !strings.Contains(got, "alice made lobby moderated") {
		t.Errorf("after the notice of /slow off bob got %q", got)
	}
}

// waitGone waits, a few seconds at most, until nobody on ts is called
// name.
func (ts *testServer) waitGone(t *testing.T, name string) {
	t.Helper()
	for end := time.Now().Add(3 * time.Second); ts.hub.lookup(name) != nil; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s is still on %s", name, ts.addr)
		}
	}
}
