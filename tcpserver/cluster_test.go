package tcpserver

import (
	"strings"
	"testing"
)

func TestDeliverFromAnotherNode(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1}, nil)
	_, bm := connect(t, h, "bob")
	bm.lines()

	tests := []struct {
		name string
		ev   *Event
		want []string
	}{
		{"a line", &Event{ID: 1, Kind: KindMessage, Room: "lobby", From: "alice", Text: "hi", Node: "a"},
			[]string{"<alice> hi"}},
		{"a batch, as one queue entry", &Event{Kind: KindBatch, Room: "lobby", From: "alice", Node: "a", Events: []*Event{
			{ID: 2, Kind: KindMessage, Room: "lobby", From: "alice", Text: "one", Node: "a"},
			{ID: 3, Kind: KindAction, Room: "lobby", From: "alice", Text: "waves", Node: "a"},
		}}, []string{"<alice> one", "* alice waves"}},
		{"a join", &Event{ID: 4, Kind: KindJoin, Room: "lobby", From: "carol", Addr: "192.0.2.9:1", Node: "a"},
			[]string{"*** carol (192.0.2.9:1) joined"}},
		{"a join for a room nobody here is in", &Event{ID: 5, Kind: KindJoin, Room: "dev", From: "dave", Node: "a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bm.mu.Lock()
			before := len(bm.events)
			bm.mu.Unlock()
			h.Deliver(tt.ev)
			bm.mu.Lock()
			entries := len(bm.events) - before
			bm.mu.Unlock()
			if got := bm.lines(); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("bob got %q, want %q", got, tt.want)
			}
			if tt.want != nil && entries != 1 {
				t.Fatalf("%d queue entries, want 1", entries)
			}
		})
	}
	for _, r := range h.Rooms() {
		if r.Name == "dev" {
			t.Fatal("a relayed join made room dev")
		}
	}
	// History kept the relayed lines, batch or not.
	_, cm := connect(t, h, "carol")
	if got := cm.lines(); len(got) < 4 || got[1] != "<alice> hi" || got[2] != "<alice> one" || got[3] != "* alice waves" {
		t.Fatalf("carol's welcome = %q", got)
	}
}

func TestNoticeAndDeliverPrivate(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1}, nil)
	alice, am := connect(t, h, "alice")
	alice.Handle([]byte("/join dev"))
	_, bm := connect(t, h, "bob")
	am.lines()
	bm.lines()

	h.Notice("link to other nodes lost")
	for _, m := range []*fakeMember{am, bm} {
		if got := m.lines(); len(got) != 1 || got[0] != "*** link to other nodes lost" {
			t.Fatalf("notice: got %q", got)
		}
	}
	if name, ok := h.DeliverPrivate("zed", "ALICE", "psst"); !ok || name != "alice" {
		t.Fatalf("DeliverPrivate = %q, %v", name, ok)
	}
	if got := am.lines(); len(got) != 1 || got[0] != "*zed* psst" {
		t.Fatalf("alice got %q", got)
	}
	if _, ok := h.DeliverPrivate("zed", "nobody", "psst"); ok {
		t.Fatal("delivered to nobody")
	}
}
