package natsrelay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

func TestEventRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name string
		ev   *tcpserver.Event
	}{
		{"message", &tcpserver.Event{ID: 7, Kind: tcpserver.KindMessage, Time: at, Room: "lobby", From: "alice", Text: "hello\tthere"}},
		{"action", &tcpserver.Event{ID: 8, Kind: tcpserver.KindAction, Time: at, Room: "dev", From: "bob", Text: "waves"}},
		{"join", &tcpserver.Event{ID: 9, Kind: tcpserver.KindJoin, Time: at, Room: "lobby", From: "carol", Addr: "[::1]:5000"}},
		{"leave with reason", &tcpserver.Event{ID: 10, Kind: tcpserver.KindLeave, Time: at, Room: "lobby", From: "carol", Addr: "192.0.2.1:1", Text: "too slow"}},
		{"nick", &tcpserver.Event{ID: 11, Kind: tcpserver.KindNick, Time: at, Room: "lobby", From: "carol", To: "caro"}},
		{"private", &tcpserver.Event{Kind: tcpserver.KindPrivate, Time: at, From: "alice", To: "bob", Text: "psst"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeEvent("node-1", tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEvent(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			want := tt.ev
			if got.Node != "node-1" || got.NodeID != want.ID || got.ID != 0 {
				t.Fatalf("node, node ID, ID = %q, %d, %d", got.Node, got.NodeID, got.ID)
			}
			if got.Kind != want.Kind || !got.Time.Equal(want.Time) || got.Room != want.Room ||
				got.From != want.From || got.To != want.To || got.Text != want.Text || got.Addr != want.Addr {
				t.Fatalf("round trip of %s:\n got %s\nwant %s", b, got.JSON(), want.JSON())
			}
		})
	}
	if _, err := encodeEvent("n", &tcpserver.Event{Kind: tcpserver.KindSystem, Text: "x"}); err == nil {
		t.Fatal("a system event was encoded")
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	tests := []struct {
		name, msg string
	}{
		{"not JSON", `hello`},
		{"empty", ``},
		{"wrong version", `{"v":2,"node":"a","kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"no node", `{"v":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"node with a dot", `{"v":1,"node":"a.b","kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"unknown kind", `{"v":1,"node":"a","kind":"system","room":"lobby","from":"x","text":"t"}`},
		{"bad from", `{"v":1,"node":"a","kind":"message","room":"lobby","from":"x y","text":"t"}`},
		{"room not folded", `{"v":1,"node":"a","kind":"message","room":"Lobby","from":"x","text":"t"}`},
		{"room with a wildcard", `{"v":1,"node":"a","kind":"message","room":">","from":"x","text":"t"}`},
		{"nick without to", `{"v":1,"node":"a","kind":"nick","room":"lobby","from":"x"}`},
		{"blank message", `{"v":1,"node":"a","kind":"message","room":"lobby","from":"x","text":" \u001b "}`},
		{"text too long", `{"v":1,"node":"a","kind":"message","room":"lobby","from":"x","text":"` + strings.Repeat("x", maxText+1) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, err := decodeEvent([]byte(tt.msg)); !errors.Is(err, errBadMessage) {
				t.Fatalf("decode = %+v, %v; want errBadMessage", ev, err)
			}
		})
	}
}

func TestDecodeCleansText(t *testing.T) {
	ev, err := decodeEvent([]byte(`{"v":1,"node":"a","kind":"message","room":"lobby","from":"x","text":"hi\u001b[2J\u0007 there\u202e"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Text != "hi[2J there" {
		t.Fatalf("text = %q", ev.Text)
	}
}

// FuzzDecodeEvent checks that no message from NATS can crash a node or
// reach members with an invalid name, room or control character.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"v":1,"node":"a","id":1,"kind":"message","room":"lobby","from":"alice","text":"hi","time":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v does not wrap errBadMessage", err)
			}
			return
		}
		if tcpserver.ValidNick(ev.From) != nil || !validNodeID(ev.Node) {
			t.Fatalf("decoded invalid names: %+v", ev)
		}
		if ev.Kind != tcpserver.KindPrivate {
			if room, err := tcpserver.RoomName(ev.Room); err != nil || room != ev.Room {
				t.Fatalf("decoded invalid room: %+v", ev)
			}
		}
		for _, s := range []string{ev.Text, ev.Addr} {
			if tcpserver.CleanLine([]byte(s)) != s {
				t.Fatalf("decoded unclean text %q", s)
			}
		}
		// What decodes encodes again, the same.
		again, err := encodeEvent(ev.Node, ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeEvent(again); err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
	})
}
