// Package storetest is the behaviour every [tcpserver.Store] must have, as
// a test any implementation runs on itself:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) tcpserver.Store { return newStore(t) })
//	}
//
// A store may write in the background (Append returns at once): Run waits,
// within a deadline, for what it appended to be read back.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

// Run runs the conformance table on stores made by open, one per case,
// each empty. open closes its store when t ends, or leaves that to Run:
// Run closes every store it is given once its case is done.
func Run(t *testing.T, open func(t *testing.T) tcpserver.Store) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := s.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			c.run(t, s)
		})
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, s tcpserver.Store)
}{
	{"EmptyRoomHasNoLines", func(t *testing.T, s tcpserver.Store) {
		lines, more, err := s.Lines(ctx(t), "nobody", tcpserver.LineKey{}, 50)
		if err != nil || len(lines) != 0 || more {
			t.Fatalf("Lines of an empty room: %d lines, more %v, err %v", len(lines), more, err)
		}
	}},
	{"NewestFirstPageOldestFirst", func(t *testing.T, s tcpserver.Store) {
		said := appendLines(s, "lobby", 1, 5)
		waitFor(t, s, "lobby", 5)
		lines, more := read(t, s, "lobby", tcpserver.LineKey{}, 3)
		same(t, lines, said[2:])
		if !more {
			t.Error("more is false with two earlier lines")
		}
		lines, more = read(t, s, "lobby", tcpserver.LineKey{}, 50)
		same(t, lines, said)
		if more {
			t.Error("more is true with every line returned")
		}
	}},
	{"BeforeAKeyGoesBack", func(t *testing.T, s tcpserver.Store) {
		said := appendLines(s, "lobby", 1, 7)
		waitFor(t, s, "lobby", 7)
		lines, more := read(t, s, "lobby", key(said[4]), 3)
		same(t, lines, said[1:4])
		if !more {
			t.Error("more is false with a line before the page")
		}
		lines, more = read(t, s, "lobby", key(lines[0]), 3)
		same(t, lines, said[:1])
		if more {
			t.Error("more is true at the first line")
		}
		lines, more = read(t, s, "lobby", key(said[0]), 3)
		if len(lines) != 0 || more {
			t.Errorf("before the first line: %d lines, more %v", len(lines), more)
		}
	}},
	{"RoomsAreApart", func(t *testing.T, s tcpserver.Store) {
		var a, b []*tcpserver.Event
		for i := range 6 { // interleaved, as rooms speak at once
			if i%2 == 0 {
				a = append(a, appendLines(s, "a", uint64(100+i), 1)...)
			} else {
				b = append(b, appendLines(s, "b", uint64(100+i), 1)...)
			}
		}
		waitFor(t, s, "a", 3)
		waitFor(t, s, "b", 3)
		lines, _ := read(t, s, "a", tcpserver.LineKey{}, 50)
		same(t, lines, a)
		lines, _ = read(t, s, "b", tcpserver.LineKey{}, 50)
		same(t, lines, b)
		// A line of room a names no place in room b: nothing of a leaks.
		lines, _, _ = s.Lines(ctx(t), "b", key(a[2]), 50)
		for _, ev := range lines {
			if ev.Room != "b" {
				t.Fatalf("Lines of b before a line of a returned a line of %s: %q", ev.Room, ev.Text)
			}
		}
	}},
	{"UnknownKeyIsUnknownLine", func(t *testing.T, s tcpserver.Store) {
		// The hub tells a client "no line ID" for ErrUnknownLine, and
		// shows an empty page for nothing at all: a store that answers
		// an unknown key with no lines tells the client there is nothing
		// before a line it made up.
		said := appendLines(s, "lobby", 1, 3)
		appendLines(s, "other", 10, 1)
		waitFor(t, s, "lobby", 3)
		waitFor(t, s, "other", 1)
		for _, k := range []tcpserver.LineKey{{ID: 999999}, {ID: 2, Node: "elsewhere"}, {ID: 10}} {
			lines, more, err := s.Lines(ctx(t), "lobby", k, 50)
			if len(lines) != 0 || more || !errors.Is(err, tcpserver.ErrUnknownLine) {
				t.Errorf("before unknown %v: %d lines, more %v, err %v; want ErrUnknownLine", k, len(lines), more, err)
			}
		}
		if lines, _, err := s.Lines(ctx(t), "nobody", key(said[1]), 50); len(lines) != 0 || !errors.Is(err, tcpserver.ErrUnknownLine) {
			t.Errorf("before a line of lobby in an empty room: %d lines, err %v; want ErrUnknownLine", len(lines), err)
		}
	}},
	{"LimitBelowOneReadsNothing", func(t *testing.T, s tcpserver.Store) {
		appendLines(s, "lobby", 1, 2)
		waitFor(t, s, "lobby", 2)
		for _, limit := range []int{0, -1} {
			if lines, _, err := s.Lines(ctx(t), "lobby", tcpserver.LineKey{}, limit); len(lines) != 0 {
				t.Errorf("limit %d: %d lines (err %v)", limit, len(lines), err)
			}
		}
	}},
	{"TextAndAuthorKept", func(t *testing.T, s tcpserver.Store) {
		at := time.Now().Truncate(time.Millisecond)
		evs := []*tcpserver.Event{
			{ID: 10, Kind: tcpserver.KindMessage, Time: at, Room: "lobby", From: "alice", Text: "héllo <b>&amp; \"quotes\""},
			{ID: 11, Kind: tcpserver.KindAction, Time: at, Room: "lobby", From: "bob", Text: "waves"},
		}
		for _, ev := range evs {
			s.Append(ev)
		}
		waitFor(t, s, "lobby", 2)
		lines, _ := read(t, s, "lobby", tcpserver.LineKey{}, 50)
		same(t, lines, evs)
		for i, ev := range lines {
			if ev.Kind != evs[i].Kind || ev.From != evs[i].From || !ev.Time.Equal(evs[i].Time) {
				t.Errorf("line %d: %v %q at %v, want %v %q at %v", i, ev.Kind, ev.From, ev.Time, evs[i].Kind, evs[i].From, evs[i].Time)
			}
		}
	}},
	{"RemovedLinesAreGone", func(t *testing.T, s tcpserver.Store) {
		lr, ok := s.(tcpserver.LineRemover)
		if !ok {
			return // a store that keeps every line: /delete says so
		}
		said := appendLines(s, "lobby", 1, 6)
		appendLines(s, "other", 1, 2) // the same IDs in another room stay
		waitFor(t, s, "lobby", 6)
		waitFor(t, s, "other", 2)
		if err := lr.Remove(ctx(t), "lobby", key(said[1]), key(said[4]), tcpserver.LineKey{ID: 999}); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		lines, more := read(t, s, "lobby", tcpserver.LineKey{}, 50)
		same(t, lines, []*tcpserver.Event{said[0], said[2], said[3], said[5]})
		if more {
			t.Error("more is true with every line returned")
		}
		lines, _ = read(t, s, "lobby", key(said[5]), 2)
		same(t, lines, []*tcpserver.Event{said[2], said[3]})
		if lines, _ := read(t, s, "other", tcpserver.LineKey{}, 50); len(lines) != 2 {
			t.Errorf("other room: %d lines after lobby's removal, want 2", len(lines))
		}
		if err := lr.Remove(ctx(t), "lobby", key(said[1])); err != nil {
			t.Errorf("Remove of a removed line: %v", err)
		}
	}},
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// appendLines appends n lines of room, IDs from first on, and returns them.
func appendLines(s tcpserver.Store, room string, first uint64, n int) []*tcpserver.Event {
	var out []*tcpserver.Event
	for i := range n {
		ev := &tcpserver.Event{
			ID: first + uint64(i), Kind: tcpserver.KindMessage, Time: time.Now(), Room: room,
			From: "alice", Text: fmt.Sprintf("%s line %d", room, first+uint64(i)),
		}
		s.Append(ev)
		out = append(out, ev)
	}
	return out
}

// waitFor waits until room has n lines.
func waitFor(t *testing.T, s tcpserver.Store, room string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, _, err := s.Lines(ctx(t), room, tcpserver.LineKey{}, n+1)
		if err == nil && len(lines) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines (err %v), want %d", room, len(lines), err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func read(t *testing.T, s tcpserver.Store, room string, before tcpserver.LineKey, limit int) ([]*tcpserver.Event, bool) {
	t.Helper()
	lines, more, err := s.Lines(ctx(t), room, before, limit)
	if err != nil {
		t.Fatalf("Lines(%s, %v, %d): %v", room, before, limit, err)
	}
	return lines, more
}

func key(ev *tcpserver.Event) tcpserver.LineKey { return tcpserver.LineKey{Node: ev.Node, ID: ev.ID} }

// same checks that got are the lines want, by text and key, in order.
func same(t *testing.T, got, want []*tcpserver.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(got), len(want), texts(got))
	}
	for i := range got {
		if got[i].Text != want[i].Text || key(got[i]) != key(want[i]) || got[i].Room != want[i].Room {
			t.Fatalf("line %d: %q %v, want %q %v", i, got[i].Text, key(got[i]), want[i].Text, key(want[i]))
		}
	}
}

func texts(evs []*tcpserver.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Text
	}
	return out
}
