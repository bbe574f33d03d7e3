package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeNode stands for a chatbridge node to a load process, on TCP and
// WebSocket: it answers every connection as its kind says, as a node
// does. "cut" takes the member and cuts it off 100 ms later (the node that
// dies); "welcome" welcomes it and then says one line of the run; "full"
// refuses it as a node at --max-clients does (TCP: the line; WebSocket:
// 503 before the upgrade); "banned" refuses it for another reason.
type fakeNode struct {
	t    *testing.T
	kind string
	ln   net.Listener
	web  *httptest.Server
	wg   sync.WaitGroup
	stop chan struct{}
}

func startFakeNode(t *testing.T, kind string) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{t: t, kind: kind, ln: ln, stop: make(chan struct{})}
	n.web = httptest.NewServer(http.HandlerFunc(n.serveWS))
	n.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.wg.Go(func() { n.serveTCP(c) })
		}
	})
	t.Cleanup(func() {
		close(n.stop)
		ln.Close()
		n.web.CloseClientConnections()
		n.web.Close()
		n.wg.Wait()
	})
	return n
}

func (n *fakeNode) addr() nodeAddr {
	return nodeAddr{TCP: n.ln.Addr().String(), WS: "ws" + strings.TrimPrefix(n.web.URL, "http") + "/ws"}
}

// hold keeps a connection until the node stops, or d.
func (n *fakeNode) hold(d time.Duration) {
	select {
	case <-n.stop:
	case <-time.After(d):
	}
}

func (n *fakeNode) serveTCP(c net.Conn) {
	defer c.Close()
	switch n.kind {
	case "cut":
		io.WriteString(c, "*** Welcome to chatbridge, guest-1! You are in lobby.\r\n")
		n.hold(100 * time.Millisecond)
	case "welcome":
		io.WriteString(c, "*** Welcome to chatbridge, guest-2! You are in lobby.\r\n")
		n.hold(50 * time.Millisecond)
		c.Write(append(appendTag(nil, tag{sender: 0, seq: 0, sentNs: time.Now().UnixNano()}), "\r\n"...))
		n.hold(time.Minute)
	case "full":
		io.WriteString(c, "*** server full, try again later\r\n")
	case "banned":
		io.WriteString(c, "*** you are banned from this server\r\n")
	}
}

func (n *fakeNode) serveWS(w http.ResponseWriter, r *http.Request) {
	if n.kind == "full" {
		http.Error(w, "server full, try again later", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	switch n.kind {
	case "cut":
		c.Write(ctx, websocket.MessageText, []byte("*** Welcome to chatbridge, guest-3! You are in lobby."))
		n.hold(100 * time.Millisecond)
	case "welcome":
		c.Write(ctx, websocket.MessageText, []byte("*** Welcome to chatbridge, guest-4! You are in lobby."))
		n.hold(50 * time.Millisecond)
		c.Write(ctx, websocket.MessageText, appendTag(nil, tag{sender: 0, seq: 0, sentNs: time.Now().UnixNano()}))
		n.hold(time.Minute)
	case "banned":
		c.Close(websocket.StatusPolicyViolation, "you are banned from this server")
	}
}

// startLoadOn starts a load process in-process with one member, on
// WebSocket or TCP, on the first of nodes, which is about to die (the
// others are spares); it returns the process, closed at the test's end.
func startLoadOn(t *testing.T, ws bool, nodes ...*fakeNode) *loadProc {
	t.Helper()
	spec := loadSpec{Holders: 1, N: 1, Senders: 1, StartNs: time.Now().UnixNano(), Parallel: 1, ConnectTimeout: 5 * time.Second}
	if ws {
		spec.First = 1 // see placeOf
	}
	for _, n := range nodes {
		spec.Nodes = append(spec.Nodes, n.addr())
	}
	l, err := newLoadProc(context.Background(), spec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	if l.members[0].ws != ws {
		t.Fatalf("member on WebSocket %v, want %v", l.members[0].ws, ws)
	}
	l.dead.Store(1) // node 0
	l.lastSent.Store(&[]int64{0})
	if res := l.connect(); res.ok != 1 {
		t.Fatalf("the member did not connect: %v", res.firstErr)
	}
	return l
}

// waitReport asks l for reports until done says one is what the test
// waits for, or 15 s pass.
func waitReport(t *testing.T, l *loadProc, done func(loadReport) bool) loadReport {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := l.report([]int64{1}, false, 0)
		if done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 15 s: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A member cut off from a dead node comes back as behind a load
// balancer: the spare it is sent to first is full (and says so, on each
// transport), so it goes on to the next, which takes it. That is a
// refusal for capacity, counted apart from failures, of which there are
// none; the member is in again and chatting, having missed nothing.
func TestComingBackGoesOnFromAFullNode(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("WebSocket %v", ws), func(t *testing.T) {
			dead, full, room := startFakeNode(t, "cut"), startFakeNode(t, "full"), startFakeNode(t, "welcome")
			l := startLoadOn(t, ws, dead, full, room)
			r := waitReport(t, l, func(r loadReport) bool { return r.Back == 1 })
			if r.Cut != 1 || r.Rejoined != 1 || r.RefusedFull != 1 || r.RetryErrors != 0 || r.RejoinLost != 0 {
				t.Errorf("cut %d, in again %d, refused as full %d, other failures %d (%s), lost once back %d; want 1, 1, 1, 0, 0",
					r.Cut, r.Rejoined, r.RefusedFull, r.RetryErrors, r.FirstRetryErr, r.RejoinLost)
			}
			m := l.members[0]
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.node != 2 {
				t.Errorf("the member is on node %d, want 2", m.node)
			}
		})
	}
}

// A node that refuses a member coming back for another reason than being
// full is a failure, counted and told, and the member is not in.
func TestComingBackRefusedOtherwiseIsAFailure(t *testing.T) {
	for _, ws := range []bool{false, true} {
		t.Run(fmt.Sprintf("WebSocket %v", ws), func(t *testing.T) {
			dead, banned := startFakeNode(t, "cut"), startFakeNode(t, "banned")
			l := startLoadOn(t, ws, dead, banned)
			r := waitReport(t, l, func(r loadReport) bool { return r.Cut == 1 && r.RetryErrors >= 1 })
			if r.Rejoined != 0 || r.RefusedFull != 0 || !strings.Contains(r.FirstRetryErr, "banned") {
				t.Errorf("in again %d, refused as full %d, first failure %q; want 0, 0, and the node's words", r.Rejoined, r.RefusedFull, r.FirstRetryErr)
			}
		})
	}
}

// pick sends a member to the node alive with the fewest of the process's
// members, passing over those that said they are full until every node
// alive has.
func TestPickLeastLoaded(t *testing.T) {
	l := &loadProc{onNode: []int{5, 3, 4, 0}, fullUntil: make([]int64, 4)}
	l.dead.Store(4) // node 3
	if got := l.pick(0); got != 1 {
		t.Errorf("picked %d, want 1, the least loaded alive", got)
	}
	// 5 4 4: a tie goes round by member.
	if a, b := l.pick(2), l.pick(1); a != 2 || b != 1 {
		t.Errorf("picked %d then %d of nodes with 5 4 4, want 2 then 1", a, b)
	}
	l.onNode = []int{5, 1, 9, 0}
	if all := l.markFull(1); all {
		t.Error("one node full of three alive: every node said to be full")
	}
	if got := l.pick(0); got != 0 {
		t.Errorf("picked %d with node 1 full, want 0", got)
	}
	l.markFull(0)
	if all := l.markFull(2); !all {
		t.Error("every node alive full: not said")
	}
	if got := l.pick(0); got != 1 {
		t.Errorf("picked %d with every node full, want 1, the least loaded of them", got)
	}
	l.fullUntil[1] = time.Now().Add(-time.Millisecond).UnixNano()
	if got := l.pick(0); got != 1 {
		t.Errorf("picked %d once node 1's pass expired, want 1", got)
	}
	if got := fmt.Sprint(l.onNode); got != "[6 3 9 0]" {
		t.Errorf("members counted on the nodes picked: %s", got)
	}
}

// A WebSocket dial refused at accept is a full node: a 503, or that same
// answer before the request, which Go's client fails in its own words.
func TestDialRefusedFull(t *testing.T) {
	for _, tt := range []struct {
		err  string
		full bool
	}{
		{`dial ws://127.0.0.1:1/ws: failed to WebSocket dial: expected handshake response status code 101 but got 503`, true},
		{`dial ws://127.0.0.1:1/ws: failed to WebSocket dial: failed to send handshake request: Get "http://127.0.0.1:1/ws": readLoopPeekFailLocked: <nil>`, true},
		{`dial ws://127.0.0.1:1/ws: failed to WebSocket dial: expected handshake response status code 101 but got 403`, false},
		{`dial 127.0.0.1:1: connect: connection refused`, false},
	} {
		if got := dialRefusedFull(fmt.Errorf("%s", tt.err)); got != tt.full {
			t.Errorf("%s: full %v, want %v", tt.err, got, tt.full)
		}
	}
}
