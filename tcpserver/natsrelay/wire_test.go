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
		{"message", &tcpserver.Event{ID: 7, Kind: tcpserver.KindMessage, Time: at, Room: "lobby", From: "alice", Text: "hello\tthere <b>&amp;</b>"}},
		{"action", &tcpserver.Event{ID: 8, Kind: tcpserver.KindAction, Time: at, Room: "dev", From: "bob", Text: "waves"}},
		{"join", &tcpserver.Event{ID: 9, Kind: tcpserver.KindJoin, Time: at, Room: "lobby", From: "carol", Addr: "[::1]:5000"}},
		{"leave with reason", &tcpserver.Event{ID: 10, Kind: tcpserver.KindLeave, Time: at, Room: "lobby", From: "carol", Addr: "192.0.2.1:1", Text: "too slow"}},
		{"nick", &tcpserver.Event{ID: 11, Kind: tcpserver.KindNick, Time: at, Room: "lobby", From: "carol", To: "caro"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeEvent("node-1", origin{sess: "s1", seq: 3}, tt.ev, at)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `\u003c`) {
				t.Fatalf("encoded with HTML escapes: %s", b)
			}
			got, o, err := decodeEvent(b, 4096)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			want := tt.ev
			if got.Node != "node-1" || got.NodeID != want.ID || got.ID != 0 || o != (origin{sess: "s1", seq: 3}) {
				t.Fatalf("node, node ID, ID, origin = %q, %d, %d, %+v", got.Node, got.NodeID, got.ID, o)
			}
			if got.Kind != want.Kind || !got.Time.Equal(want.Time) || got.Room != want.Room ||
				got.From != want.From || got.To != want.To || got.Text != want.Text || got.Addr != want.Addr {
				t.Fatalf("round trip of %s:\n got %s\nwant %s", b, got.JSON(), want.JSON())
			}
		})
	}
	for _, ev := range []*tcpserver.Event{{Kind: tcpserver.KindSystem, Text: "x"}, {Kind: tcpserver.KindPrivate, From: "a", To: "b", Text: "x"}} {
		if _, err := encodeEvent("n", origin{sess: "s", seq: 1}, ev, at); err == nil {
			t.Fatalf("a %s event was encoded as a room event", ev.Kind)
		}
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	const ok = `"v":2,"node":"a","sess":"s","seq":1,"time":1,`
	tests := []struct {
		name, msg string
	}{
		{"not JSON", `hello`},
		{"empty", ``},
		{"version 1", `{"v":1,"node":"a","sess":"s","seq":1,"time":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"no node", `{"v":2,"sess":"s","seq":1,"time":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"node with a dot", `{"v":2,"node":"a.b","sess":"s","seq":1,"time":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"no session", `{"v":2,"node":"a","seq":1,"time":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"no sequence number", `{"v":2,"node":"a","sess":"s","time":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"no time", `{"v":2,"node":"a","sess":"s","seq":1,"kind":"message","room":"lobby","from":"x","text":"t"}`},
		{"unknown kind", `{` + ok + `"kind":"system","room":"lobby","from":"x","text":"t"}`},
		{"private as a room event", `{` + ok + `"kind":"private","room":"lobby","from":"x","to":"y","text":"t"}`},
		{"bad from", `{` + ok + `"kind":"message","room":"lobby","from":"x y","text":"t"}`},
		{"room not folded", `{` + ok + `"kind":"message","room":"Lobby","from":"x","text":"t"}`},
		{"room with a wildcard", `{` + ok + `"kind":"message","room":">","from":"x","text":"t"}`},
		{"nick without to", `{` + ok + `"kind":"nick","room":"lobby","from":"x"}`},
		{"blank message", `{` + ok + `"kind":"message","room":"lobby","from":"x","text":" \u001b "}`},
		{"text longer than a line", `{` + ok + `"kind":"message","room":"lobby","from":"x","text":"` + strings.Repeat("x", 101) + `"}`},
		{"replacement characters longer than a line", `{` + ok + `"kind":"message","room":"lobby","from":"x","text":"` + strings.Repeat("\uFFFD", 101) + `"}`},
		{"addr too long", `{` + ok + `"kind":"join","room":"lobby","from":"x","addr":"` + strings.Repeat("1", maxAddr+1) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, _, err := decodeEvent([]byte(tt.msg), 100); !errors.Is(err, errBadMessage) {
				t.Fatalf("decode = %+v, %v; want errBadMessage", ev, err)
			}
		})
	}
}

func TestDecodeCleansText(t *testing.T) {
	ev, _, err := decodeEvent([]byte(`{"v":2,"node":"a","sess":"s","seq":1,"time":1,"kind":"message","room":"lobby","from":"x","text":"hi\u001b[2J\u0007 there\u202e"}`), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Text != "hi there" {
		t.Fatalf("text = %q", ev.Text)
	}
}

// TestFitsLineAsTheHubDoes checks that relayed text is held to what a
// member of the hub can send: a line of MaxLine bytes, cleaned.
func TestFitsLineAsTheHubDoes(t *testing.T) {
	const max = 10
	tests := []struct {
		name string
		line string // as typed
		fits bool
	}{
		{"short", "hello", true},
		{"exactly max", strings.Repeat("x", max), true},
		{"one over", strings.Repeat("x", max+1), false},
		{"invalid bytes become U+FFFD, three times longer", strings.Repeat("\xff", max), true},
		{"one invalid byte over", strings.Repeat("\xff", max+1), false},
		{"multi-byte runes count their bytes", strings.Repeat("é", max/2), true},
		{"multi-byte runes over", strings.Repeat("é", max/2+1), false},
		{"U+FFFD typed as such counts three", "\uFFFD\uFFFD\uFFFDx", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tcpserver.CleanLine([]byte(tt.line))
			if got := fitsLine(text, max); got != tt.fits {
				t.Fatalf("fitsLine(%q) = %v, want %v", text, got, tt.fits)
			}
			if len(tt.line) <= max && !fitsLine(text, max) {
				t.Fatalf("a line the hub takes (%d bytes) does not fit once cleaned", len(tt.line))
			}
		})
	}
}

// FuzzDecodeEvent checks that no payload from NATS can crash a node or
// reach members with an invalid name, room, control character or text
// longer than a line.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"v":2,"node":"a","sess":"s","seq":1,"id":1,"kind":"message","room":"lobby","from":"alice","text":"hi","time":1}`))
	const maxLine = 64
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, o, err := decodeEvent(b, maxLine)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v does not wrap errBadMessage", err)
			}
			return
		}
		if tcpserver.ValidNick(ev.From) != nil || !validNodeID(ev.Node) || o.seq == 0 || o.sess == "" {
			t.Fatalf("decoded invalid names: %+v, %+v", ev, o)
		}
		if room, err := tcpserver.RoomName(ev.Room); err != nil || room != ev.Room {
			t.Fatalf("decoded invalid room: %+v", ev)
		}
		for _, s := range []string{ev.Text, ev.Addr} {
			if tcpserver.CleanLine([]byte(s)) != s {
				t.Fatalf("decoded unclean text %q", s)
			}
		}
		if !fitsLine(ev.Text, maxLine) {
			t.Fatalf("decoded text of %d bytes", len(ev.Text))
		}
		// What decodes encodes again, the same.
		again, err := encodeEvent(ev.Node, o, ev, ev.Time)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := decodeEvent(again, maxLine); err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
		if len(again)+sealedMin > lineMessageMax(maxLine) {
			t.Fatalf("sealed, %d bytes: more than the stream takes (%d)", len(again)+sealedMin, lineMessageMax(maxLine))
		}
	})
}

// FuzzDecodeEntry checks the same of names bucket entries.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("alice", []byte(`{"node":"a","name":"Alice","room":"lobby","time":1}`))
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		e, err := decodeEntry(key, b)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v does not wrap errBadMessage", err)
			}
			return
		}
		if !validNodeID(e.Node) || tcpserver.ValidNick(e.Name) != nil || strings.ToLower(e.Name) != key || e.Time <= 0 {
			t.Fatalf("decoded invalid entry: %+v", e)
		}
		if e.Room != "" {
			if room, err := tcpserver.RoomName(e.Room); err != nil || room != e.Room {
				t.Fatalf("decoded invalid room: %+v", e)
			}
		}
		if sealed := len(e.encode()) + sealedMin; sealed > maxEntry {
			t.Fatalf("entry of %d bytes sealed: more than the bucket takes", sealed)
		}
	})
}
