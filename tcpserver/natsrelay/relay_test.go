package natsrelay

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"chatbridge/tcpserver"
)

func TestTwoNodesExchangeEveryEventType(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)

	bob := b.join(t, "bob", "")
	alice := a.join(t, "alice", "")
	bob.expect("*** alice (192.0.2.1:1000) joined")

	alice.say("hello from a", "/me waves")
	bob.expect("<alice> hello from a")
	bob.expect("* alice waves")
	bob.say("hi from b")
	alice.expect("<bob> hi from b")

	alice.say("/nick ally")
	bob.expect("*** alice is now known as ally")
	alice.expect("*** alice is now known as ally")

	alice.client.Leave("")
	bob.expect("*** ally (192.0.2.1:1000) left")
	bob.quiet("ally")
}

func TestPerSenderOrderWithoutDuplicates(t *testing.T) {
	ns := startNATS(t)
	nodes := []*node{startNode(t, ns.url(), "a", 0), startNode(t, ns.url(), "b", 0), startNode(t, ns.url(), "c", 0)}
	carol := nodes[2].join(t, "carol", "")
	alice := nodes[0].join(t, "alice", "")
	bob := nodes[1].join(t, "bob", "")
	carol.expectAll("*** alice (192.0.2.1:1000) joined", "*** bob (192.0.2.1:1000) joined")

	// alice and bob talk at once, each from its own goroutine as a
	// transport would; carol must see each one's lines in order, once.
	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			bob.say(fmt.Sprintf("b%d", i))
		}
	}()
	for i := range n {
		alice.say(fmt.Sprintf("a%d", i))
	}
	<-done
	waitFor(t, "every line at carol", func() bool {
		return len(carol.matching("<alice> ")) >= n && len(carol.matching("<bob> ")) >= n
	})
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
	for _, who := range []string{"alice", "bob"} {
		got := carol.matching("<" + who + "> ")
		if len(got) != n {
			t.Fatalf("carol got %d lines from %s, want %d", len(got), who, n)
		}
		for i, l := range got {
			if want := fmt.Sprintf("<%s> %c%d", who, who[0], i); l != want {
				t.Fatalf("carol's line %d from %s = %q, want %q", i, who, l, want)
			}
		}
	}
}

func TestThreeNodes(t *testing.T) {
	ns := startNATS(t)
	nodes := []*node{startNode(t, ns.url(), "a", 0), startNode(t, ns.url(), "b", 0), startNode(t, ns.url(), "c", 0)}
	var users []*user
	for i, n := range nodes {
		u := n.join(t, fmt.Sprintf("user%d", i), "")
		for _, earlier := range users {
			earlier.expect(u.name + " (192.0.2.1:1000) joined")
		}
		users = append(users, u)
	}
	for i, u := range users {
		u.say(fmt.Sprintf("hello from node %d", i))
	}
	for i, u := range users {
		var want []string
		for j, other := range users {
			if i != j {
				want = append(want, fmt.Sprintf("<%s> hello from node %d", other.name, j))
			}
		}
		u.expectAll(want...)
	}
	users[1].say("/me waves")
	users[0].expect("* user1 waves")
	users[2].expect("* user1 waves")
	users[2].say("/nick third")
	users[0].expect("*** user2 is now known as third")
	users[1].expect("*** user2 is now known as third")
	users[2].ask("/who", " in lobby: ", "3 in lobby: third, user0, user1")
	users[0].say("/join dev")
	users[1].expect("*** user0 (192.0.2.1:1000) left")
	users[2].expect("*** user0 (192.0.2.1:1000) left")
	users[1].ask("/rooms", "*** rooms: ", "rooms: lobby (2), dev (1)")
	users[1].client.Leave("")
	users[2].expect("*** user1 (192.0.2.1:1000) left")
}

func TestNamesAreUniqueAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	a.join(t, "alice", "")

	tests := []struct {
		name string
		nick string // asked for on connect
		cmd  string // then typed
		want string
	}{
		{"connect with a name taken on another node", "ALICE", "", `*** nick "ALICE" is taken; you are a guest for now`},
		{"nick to a name taken on another node", "", "/nick Alice", `! nick "Alice" is taken`},
		{"a free name", "", "/nick carol", "*** guest-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &user{t: t, signal: make(chan struct{}, 1)}
			c, err := b.hub.Connect(u, tcpserver.ConnectInfo{Addr: "192.0.2.2:1", Nick: tt.nick})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Leave("")
			u.client = c
			if tt.cmd != "" {
				u.say(tt.cmd)
			}
			u.expect(tt.want)
		})
	}
	// carol left: the name is free again, on every node.
	waitFor(t, "carol released", func() bool {
		err := a.relay.ClaimName(context.Background(), "carol", "lobby")
		if err == nil {
			a.relay.ReleaseName("carol")
		}
		return err == nil
	})
}

func TestClaimRaceHasOneWinner(t *testing.T) {
	ns := startNATS(t)
	nodes := []*node{startNode(t, ns.url(), "a", 0), startNode(t, ns.url(), "b", 0), startNode(t, ns.url(), "c", 0)}
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- n.relay.ClaimName(context.Background(), "zoe", "lobby") }()
	}
	won := 0
	for range nodes {
		if err := <-errs; err == nil {
			won++
		} else if err != tcpserver.ErrNameTaken {
			t.Fatalf("claim: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d nodes won the name", won)
	}
}

func TestWhoRoomsAndPrivateAcrossNodes(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	alice := a.join(t, "alice", "")
	bob := b.join(t, "bob", "")
	b.join(t, "carol", "dev")

	bob.ask("/who", " in lobby: ", "*** 2 in lobby: alice, bob")
	alice.ask("/who", " in lobby: ", "*** 2 in lobby: alice, bob")
	alice.ask("/rooms", "*** rooms: ", "*** rooms: lobby (2), dev (1)")

	alice.say("/msg BOB psst")
	bob.expect("*alice* psst")
	alice.expect("-> *bob* psst")
	alice.say("/msg carol hi")
	alice.expect("-> *carol* hi")
	alice.say("/msg nobody hi")
	alice.expect("! no one called nobody is here")
}

func TestHistoryComesFromTheCluster(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	alice := a.join(t, "alice", "")
	for i := range 25 {
		alice.say(fmt.Sprintf("line %d", i))
	}
	alice.say("/me is done")

	// b starts after the lines were said: only the stream has them.
	b := startNode(t, ns.url(), "b", 0)
	u := &user{t: t, signal: make(chan struct{}, 1)}
	c, err := b.hub.Connect(u, tcpserver.ConnectInfo{Addr: "192.0.2.3:1", Nick: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Leave("")
	got := u.take()
	want := []string{}
	for i := 6; i < 25; i++ {
		want = append(want, fmt.Sprintf("<alice> line %d", i))
	}
	want = append(want, "* alice is done")
	if len(got) < len(want)+2 || strings.Join(unstamped(got[1:len(want)+1]), "\n") != strings.Join(want, "\n") ||
		got[len(want)+1] != "*** end of history: 20 earlier lines, times in UTC" {
		t.Fatalf("carol's welcome on node b:\n%s", strings.Join(got, "\n"))
	}
}

// historyStamp is the time a replayed line of history starts with.
var historyStamp = regexp.MustCompile(`^\[(\d{4}-\d\d-\d\d )?\d\d:\d\d\] `)

// unstamped returns lines of history without their times ("no time: " and
// the line for one without).
func unstamped(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if loc := historyStamp.FindStringIndex(l); loc != nil {
			out[i] = l[loc[1]:]
		} else {
			out[i] = "no time: " + l
		}
	}
	return out
}

func TestNATSRestartMidChat(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	alice := a.join(t, "alice", "")
	alan := a.join(t, "alan", "")
	bob := b.join(t, "bob", "")
	alice.expect("bob (192.0.2.1:1000) joined")

	ns.stop()
	for _, u := range []*user{alice, alan, bob} {
		u.expect("*** " + NoticeLost)
	}
	alice.say("still here")
	alan.expect("<alice> still here") // local chat goes on
	bob.ask("/who", " in lobby: ", "*** 1 in lobby: bob")
	bob.quiet("still here")
	dave := a.join(t, "dave", "") // names still work, on this node only
	alan.expect("dave (192.0.2.1:1000) joined")

	ns.start(t)
	for _, u := range []*user{alice, alan, bob} {
		u.expect("*** " + NoticeRestored)
	}
	alice.say("back again")
	bob.expect("<alice> back again")
	if got := bob.matching("<alice> still here"); len(got) != 0 {
		t.Fatalf("a line said while the link was down reached node b late: %q", got)
	}
	bob.say("welcome back")
	dave.expect("<bob> welcome back")
	bob.ask("/who", " in lobby: ", "*** 4 in lobby: alan, alice, bob, dave")
}

func TestStartsWithoutNATSAndJoinsLater(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	required, err := New(Config{URL: url, Secret: []byte(testSecret), Required: true, ConnectTimeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := required.Start(context.Background(), tcpserver.NewHub(tcpserver.HubConfig{Relay: required}, nil)); err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Start with Required and no NATS = %v", err)
	}
	required.Close()

	r, err := New(Config{URL: url, NodeID: "a", Secret: []byte(testSecret), ReconnectWait: 50 * time.Millisecond, Queue: 16}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hub := tcpserver.NewHub(tcpserver.HubConfig{Relay: r, MaxPerIP: -1, Rate: -1}, nil)
	if err := r.Start(context.Background(), hub); err != nil {
		t.Fatalf("Start without NATS: %v", err)
	}
	defer r.Close()
	n := &node{hub: hub, relay: r}
	alice, alan := n.join(t, "alice", ""), n.join(t, "alan", "")
	start := time.Now()
	for i := range 10000 {
		alice.say(fmt.Sprintf("line %d", i))
	}
	alan.expect("<alice> line 9999")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("10000 lines took %v without NATS", d)
	}

	ns := &testNATS{port: port, dir: t.TempDir()}
	ns.start(t)
	defer ns.stop()
	n.waitUp(t)
	b := startNode(t, ns.url(), "b", 0)
	bob := b.join(t, "bob", "")
	alice.expect("bob (192.0.2.1:1000) joined")
	bob.ask("/who", " in lobby: ", "*** 3 in lobby: alan, alice, bob")
}

func TestDeadNodeLeavesPresence(t *testing.T) {
	ns := startNATS(t)
	const ttl = 2 * time.Second
	a := startNode(t, ns.url(), "a", ttl)
	b := startNode(t, ns.url(), "b", ttl)
	a.join(t, "alice", "")
	bob := b.join(t, "bob", "")
	bob.ask("/who", " in lobby: ", "*** 2 in lobby: alice, bob")

	// Node a dies: its relay stops without anyone leaving.
	a.relay.Close()
	start := time.Now()
	bob.expect("*** alice left (node lost)")
	if d := time.Since(start); d > ttl+2*time.Second {
		t.Fatalf("alice left presence after %v, want within %v", d, ttl+2*time.Second)
	}
	bob.ask("/who", " in lobby: ", "*** 1 in lobby: bob")
	bob.say("/nick alice") // the name is free again
	bob.expect("*** bob is now known as alice")
}

func TestQuickRenamesLeaveNoGhosts(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	alice := a.join(t, "alice", "")
	for i := range 20 {
		alice.say(fmt.Sprintf("/nick x%d", i))
	}
	alice.expect("is now known as x19")
	waitFor(t, "only x19 in b's view", func() bool {
		names, n := b.relay.RemoteMembers("lobby", 100)
		return n == 1 && names[0] == "x19"
	})
	time.Sleep(300 * time.Millisecond)
	if names, n := b.relay.RemoteMembers("lobby", 100); n != 1 {
		t.Fatalf("b sees %d in lobby: %q", n, names)
	}
}

func TestPublishDropsWhenTheQueueIsFull(t *testing.T) {
	r, err := New(Config{URL: "nats://127.0.0.1:1", Secret: []byte(testSecret), Queue: 2}, nil) // never started: nothing drains
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ev := &tcpserver.Event{ID: 1, Kind: tcpserver.KindMessage, Room: "lobby", From: "alice", Text: "hi"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			r.Publish(ev)
		}
		r.Publish(&tcpserver.Event{Kind: tcpserver.KindSystem, Text: "not relayed"})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked")
	}
	if got := r.Dropped(); got != 8 {
		t.Fatalf("Dropped() = %d, want 8", got)
	}
}

func TestHistoryMergesWithoutDuplicates(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	bob := b.join(t, "bob", "")
	alice := a.join(t, "alice", "dev")
	alice.say("from a 1", "from a 2")
	bob.say("/join dev") // b takes dev's history from the cluster now
	bob.expect("<alice> from a 2")
	alice.say("from a 3") // b keeps it in dev's history, live
	bob.expect("<alice> from a 3")

	// After the link comes back, the next join in dev merges the stream
	// with what b kept: each line once, in order.
	ns.stop()
	bob.expect(NoticeLost)
	ns.start(t)
	bob.expect(NoticeRestored)
	u := &user{t: t, signal: make(chan struct{}, 1)}
	c, err := b.hub.Connect(u, tcpserver.ConnectInfo{Addr: "192.0.2.3:1", Nick: "carol", Room: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Leave("")
	got := u.take()
	want := []string{"<alice> from a 1", "<alice> from a 2", "<alice> from a 3"}
	if len(got) < 5 || got[4] != "*** end of history: 3 earlier lines, times in UTC" || strings.Join(unstamped(got[1:4]), "\n") != strings.Join(want, "\n") {
		t.Fatalf("carol's welcome on node b:\n%s", strings.Join(got, "\n"))
	}
}

// A node publishes no address it would not show: a web visitor's join and
// leave reach NATS, and so the other nodes, without it.
func TestWebVisitorsAddressStaysOnItsNode(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNode(t, ns.url(), "b", 0)
	bob := b.join(t, "bob", "")

	nc, err := nats.Connect(ns.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("chatbridge.room.lobby.event")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// published waits for the event a node sent about name.
	published := func(name, kind string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			m, err := sub.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("no %s of %s on NATS: %v", kind, name, err)
			}
			if s := string(m.Data); strings.Contains(s, `"from":"`+name+`"`) && strings.Contains(s, `"kind":"`+kind+`"`) {
				return s
			}
		}
	}

	// A telnet member's address goes out, as before: the check can see one.
	a.join(t, "telly", "")
	if got := published("telly", "join"); !strings.Contains(got, `"addr":"192.0.2.1:1000"`) {
		t.Fatalf("telnet member's join on NATS = %s, want its addr", got)
	}
	bob.expect("telly (192.0.2.1:1000) joined")

	web := &user{t: t, signal: make(chan struct{}, 1)}
	c, err := a.hub.Connect(web, tcpserver.ConnectInfo{Addr: "192.0.2.5:443", Transport: "ws", Nick: "webby"})
	if err != nil {
		t.Fatal(err)
	}
	if got := published("webby", "join"); strings.Contains(got, "192.0.2.5") || strings.Contains(got, `"addr"`) {
		t.Errorf("web visitor's join on NATS = %s", got)
	}
	if got := bob.expect("webby"); !strings.Contains(got, "joined") || strings.Contains(got, "192.0.2.5") {
		t.Errorf("bob on node b saw %q", got)
	}
	c.Leave("")
	if got := published("webby", "leave"); strings.Contains(got, "192.0.2.5") || strings.Contains(got, `"addr"`) {
		t.Errorf("web visitor's leave on NATS = %s", got)
	}
	if got := bob.expect("webby"); !strings.Contains(got, "left") || strings.Contains(got, "192.0.2.5") {
		t.Errorf("bob on node b saw %q", got)
	}
}
