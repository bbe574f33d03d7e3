package tcpserver

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// takeEvents returns the events sent to m so far, and forgets them.
func (m *fakeMember) takeEvents() []*Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.events
	m.events = nil
	return evs
}

// deleteEvent returns the one delete event among evs, as its JSON.
func deleteEvent(t *testing.T, evs []*Event) (id string, ids []string, text string) {
	t.Helper()
	var found []*Event
	for _, ev := range evs {
		if ev.Kind == KindDelete {
			found = append(found, ev)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d delete events among %d", len(found), len(evs))
	}
	var w struct {
		Type, ID, Room, From, Text string
		IDs                        []string
	}
	if err := json.Unmarshal(found[0].JSON(), &w); err != nil || w.Type != "delete" || w.Room != "lobby" {
		t.Fatalf("delete event %s: %v", found[0].JSON(), err)
	}
	return w.ID, w.IDs, strings.TrimSuffix(string(found[0].Line()), "\r\n")
}

// keysOf returns the keys of lines, as JSON ids.
func keysOf(lines []*Event) []string {
	var out []string
	for _, ev := range lines {
		out = append(out, ev.Key().String())
	}
	return out
}

// said returns the texts of the room's lines the store keeps, oldest
// first.
func said(t *testing.T, s Store, room string) []string {
	t.Helper()
	lines, _, err := s.Lines(context.Background(), room, LineKey{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range lines {
		out = append(out, ev.From+": "+ev.Text)
	}
	return out
}

// TestDeleteAndPurge: /delete last NAME and /delete ID take one line out
// of the room's history, /purge NAME all of NAME's; the room is told (a
// delete event with the line's id, or ids; "*** a message by NAME was
// removed" as text); a newcomer's history has them no more; each is
// counted. Members may not; malformed and missing targets are refused
// with why.
func TestDeleteAndPurge(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, ChangeBurst: -1, OpPassword: "operator-password"}, nil)
	op, om := connect(t, h, "alice")
	op.Handle([]byte("/op operator-password"))
	spam, _ := connect(t, h, "spammer")
	bob, bm := connect(t, h, "bob")
	spam.Handle([]byte("buy pills"))
	bob.Handle([]byte("hello all"))
	spam.Handle([]byte("/me sells pills"))
	spam.Handle([]byte("cheap pills"))
	om.lines()
	bm.takeEvents()

	bob.Handle([]byte("/delete last spammer"))
	bob.Handle([]byte("/purge spammer"))
	if got := bm.lines(); len(got) != 2 || !hasLine(got, "! /delete is for operators") || !hasLine(got, "! /purge is for operators") {
		t.Fatalf("a member deleting: %q", got)
	}
	for _, tt := range []struct{ cmd, want string }{
		{"/delete", "usage: /delete last NAME"},
		{"/delete last", "usage: /delete last NAME"},
		{"/delete last b@d", "is not valid"},
		{"/delete last two words", "usage"},
		{"/delete 0", "usage"},
		{"/delete nonsense", "usage"},
		{"/delete 12 13", "usage"},
		{"/delete last nobody", "no line by nobody among the last 10000 lines of lobby"},
		{"/delete 99999", "no line 99999"},
		{"/delete node-" + strings.Repeat("9", 90), "usage"},
		{"/purge", "usage: /purge NAME"},
		{"/purge a b", "usage: /purge NAME"},
		{"/purge b@d", "is not valid"},
		{"/purge nobody", "no line by nobody"},
	} {
		op.Handle([]byte(tt.cmd))
		if got := om.lines(); len(got) != 1 || !strings.Contains(got[0], tt.want) {
			t.Errorf("%s: %q, want %q", tt.cmd, got, tt.want)
		}
	}
	if got := said(t, h.store, "lobby"); len(got) != 4 {
		t.Fatalf("refused commands removed lines: %q", got)
	}

	lines, _, _ := h.store.Lines(context.Background(), "lobby", LineKey{}, 10)
	op.Handle([]byte("/delete last spammer"))
	id, ids, text := deleteEvent(t, bm.takeEvents())
	if id != lines[3].Key().String() || ids != nil || text != "*** a message by spammer was removed" {
		t.Errorf("delete event: id %q ids %q text %q; want id %s", id, ids, text, lines[3].Key())
	}
	if got := om.lines(); !hasLine(got, "you removed 1 line by spammer from lobby") {
		t.Errorf("the operator was told %q", got)
	}
	if got := said(t, h.store, "lobby"); !slices.Equal(got, []string{"spammer: buy pills", "bob: hello all", "spammer: sells pills"}) {
		t.Errorf("after /delete last: %q", got)
	}

	op.Handle([]byte("/delete " + lines[1].Key().String())) // bob's, as a JSON client sends it
	if id, _, text := deleteEvent(t, bm.takeEvents()); id != lines[1].Key().String() || text != "*** a message by bob was removed" {
		t.Errorf("/delete ID: %q %q", id, text)
	}
	op.Handle([]byte("/purge SPAMMER"))
	_, ids, text = deleteEvent(t, bm.takeEvents())
	if !slices.Equal(ids, []string{lines[2].Key().String(), lines[0].Key().String()}) || text != "*** 2 messages by spammer were removed" {
		t.Errorf("/purge: ids %q, text %q", ids, text)
	}
	if got := said(t, h.store, "lobby"); len(got) != 0 {
		t.Errorf("after /purge: %q", got)
	}
	_, nm := connect(t, h, "newcomer")
	if got := nm.lines(); hasLine(got, "pills") || hasLine(got, "hello all") {
		t.Errorf("a newcomer is shown removed lines: %q", got)
	}
	if st := h.Stats(); st.Moderation["delete"] != 2 || st.Moderation["purge"] != 1 {
		t.Errorf("counted %v", st.Moderation)
	}
}

// plainStore is a Store that cannot forget lines.
type plainStore struct{ Store }

// TestDeleteFromAStore: with a Store of its own, the hub takes the line
// out of it and out of its cache of recent lines; a Store that cannot
// forget lines gets the operator told so, and nothing is removed.
func TestDeleteFromAStore(t *testing.T) {
	for _, forgets := range []bool{true, false} {
		var s Store = newTestStore()
		if !forgets {
			s = plainStore{s}
		}
		h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, History: 5, Store: s, OpPassword: "operator-password"}, nil)
		op, om := connect(t, h, "alice")
		op.Handle([]byte("/op operator-password"))
		spam, _ := connect(t, h, "spammer")
		spam.Handle([]byte("buy pills"))
		op.Handle([]byte("ok"))
		om.lines()
		op.Handle([]byte("/delete last spammer"))
		cached, _ := h.lobby.hist.last(5)
		switch got := om.lines(); {
		case forgets && (len(said(t, s, "lobby")) != 1 || len(cached) != 1 || !hasLine(got, "a message by spammer was removed")):
			t.Errorf("store %q, cache %q, told %q", said(t, s, "lobby"), keysOf(cached), got)
		case !forgets && (len(said(t, s, "lobby")) != 2 || len(cached) != 2 || !hasLine(got, "! this server's store cannot forget lines")):
			t.Errorf("a store that cannot forget: store %q, cache %q, told %q", said(t, s, "lobby"), keysOf(cached), got)
		}
	}
}

// nodeCluster is a fakeCluster with a node ID, so that its hub names its
// lines as a node of a cluster does.
type nodeCluster struct {
	fakeCluster
	id string
}

func (c *nodeCluster) NodeID() string { return c.id }

// TestDeleteAcrossNodes: a line said on node a, and relayed to node b,
// deleted by an operator on a, leaves b's history too, and b's members
// are told; applied twice (a restart that loads the record while it is
// fresh, say) it tells them once; a stale record is ignored.
func TestDeleteAcrossNodes(t *testing.T) {
	state := NewMemState()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ha := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, State: state, Relay: &nodeCluster{id: "a"}, OpPassword: "operator-password"}, nil)
	hb := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, State: state, Relay: &nodeCluster{id: "b"}}, nil)
	for _, h := range []*Hub{ha, hb} {
		if err := h.Moderation().Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	op, om := connect(t, ha, "alice")
	op.Handle([]byte("/op operator-password"))
	spam, _ := connect(t, ha, "spammer")
	_, bm := connect(t, hb, "bob")
	spam.Handle([]byte("buy pills"))
	lines, _, _ := ha.store.Lines(ctx, "lobby", LineKey{}, 1)
	l := lines[0]
	hb.Deliver(&Event{Kind: l.Kind, Room: l.Room, From: l.From, Text: l.Text, Time: l.Time, Node: l.Node, NodeID: l.NodeID})
	if got := said(t, hb.store, "lobby"); len(got) != 1 {
		t.Fatalf("node b keeps %q", got)
	}
	bm.takeEvents()
	om.lines()

	op.Handle([]byte("/delete last spammer"))
	if id, _, _ := deleteEvent(t, bm.takeEvents()); id != lines[0].Key().String() || !strings.HasPrefix(id, "a-") {
		t.Errorf("node b's delete event names %q, want %s", id, lines[0].Key())
	}
	if got := said(t, hb.store, "lobby"); len(got) != 0 {
		t.Errorf("node b still keeps %q", got)
	}
	recs, _ := state.Load(ctx, bucketDeletions)
	for k, v := range recs {
		hb.mod.apply(bucketDeletions, k, v) // again
	}
	if evs := bm.takeEvents(); len(evs) != 0 {
		t.Errorf("a record applied twice told bob %d more times", len(evs))
	}
	state.Put(ctx, bucketDeletions, "lobby.old", []byte(`{"room":"lobby","from":"bob","keys":["1"],"by":"alice","until":"2020-01-01T00:00:00Z"}`))
	state.Put(ctx, bucketDeletions, "lobby.bad", []byte(`{"room":"lobby","from":"bob","keys":["x-"],"by":"alice","until":"2999-01-01T00:00:00Z"}`))
	if evs := bm.takeEvents(); len(evs) != 0 {
		t.Errorf("stale or bad records told bob %d things", len(evs))
	}
}

// TestDeleteOverTCP: from a terminal, as from anywhere: the room sees the
// notice, and a newcomer's history no longer has the line.
func TestDeleteOverTCP(t *testing.T) {
	ts, logs := startModServer(t, HubConfig{})
	op := ts.dialFrom(t, "127.0.0.1").named("alice").opped()
	spam := ts.dialFrom(t, "127.0.0.2").named("spammer")
	reader := ts.dialFrom(t, "127.0.0.3").named("reader")
	spam.send("buy pills")
	reader.expect("<spammer> buy pills")
	op.send("/delete last spammer")
	reader.expect("*** a message by spammer was removed")
	op.expect("you removed 1 line by spammer from lobby")
	newcomer := ts.dialRaw(t)
	for {
		line := newcomer.readLine()
		if strings.Contains(line, "pills") {
			t.Errorf("the newcomer was shown %q", line)
		}
		if strings.Contains(line, " in lobby: ") {
			break
		}
	}
	if !strings.Contains(logs.String(), "action=delete by=alice") || !strings.Contains(logs.String(), "target=spammer lines=1") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}

// relayStore is a store as the relay is one: it gives this node's own
// lines back without their node (Node empty, ID the node's), as a node
// alone names them.
type relayStore struct {
	*testStore
	node string
}

func (s relayStore) Lines(ctx context.Context, room string, before LineKey, limit int) ([]*Event, bool, error) {
	if before.Node == s.node {
		before.Node = ""
	}
	lines, more, err := s.testStore.Lines(ctx, room, before, limit)
	out := make([]*Event, len(lines))
	for i, ev := range lines {
		cp := &Event{ID: ev.ID, Node: ev.Node, NodeID: ev.NodeID, Kind: ev.Kind, Time: ev.Time, Room: ev.Room, From: ev.From, Text: ev.Text}
		if cp.Node == s.node {
			cp.Node, cp.ID, cp.NodeID = "", ev.NodeID, 0
		}
		out[i] = cp.finish()
	}
	return out, more, err
}

// TestDeleteOwnLineInACluster: on a node of a cluster whose store gives
// its own lines back without their node, /delete ID takes the id members
// saw ("a-ID"), and /delete last NAME names the line as every node does,
// so that the node's cache of recent lines (and every other node's)
// loses it.
func TestDeleteOwnLineInACluster(t *testing.T) {
	for _, how := range []string{"last", "id"} {
		s := relayStore{newTestStore(), "a"}
		h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, History: 5, Store: s, Relay: &nodeCluster{id: "a"}, OpPassword: "operator-password"}, nil)
		op, om := connect(t, h, "alice")
		op.Handle([]byte("/op operator-password"))
		spam, _ := connect(t, h, "spammer")
		spam.Handle([]byte("buy pills"))
		op.Handle([]byte("ok"))
		cached, _ := h.lobby.hist.last(5)
		if len(cached) != 2 || cached[0].Key().String() != "a-"+strconv.FormatUint(cached[0].ID, 10) {
			t.Fatalf("cache %q, want two lines of node a", keysOf(cached))
		}
		om.lines()
		if how == "last" {
			op.Handle([]byte("/delete last spammer"))
		} else {
			op.Handle([]byte("/delete " + cached[0].Key().String()))
		}
		got := om.lines()
		cached, _ = h.lobby.hist.last(5)
		if !hasLine(got, "you removed 1 line by spammer") || len(said(t, s, "lobby")) != 1 || len(cached) != 1 {
			t.Errorf("/delete %s: told %q, store %q, cache %q", how, got, said(t, s, "lobby"), keysOf(cached))
		}
	}
}
