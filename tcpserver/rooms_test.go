package tcpserver

import (
	"fmt"
	"strings"
	"testing"
)

// connectTo connects a fake member that asks for room; it fails the test
// if Connect refuses it.
func connectTo(t *testing.T, h *Hub, room string) (*Client, *fakeMember) {
	t.Helper()
	m := &fakeMember{}
	c, err := h.Connect(m, ConnectInfo{Addr: "192.0.2.1:1000", Transport: "fake", Room: room})
	if err != nil {
		t.Fatalf("Connect to %q: %v", room, err)
	}
	return c, m
}

// The default room exists before anyone enters it and does not count
// against MaxRooms: with every other room in use, a member who asks for
// no room, or for a room that cannot be made, is welcomed in it. (A hub
// that made the default room on first use crashed here: it could not make
// it, and joined the member to a nil room.)
func TestDefaultRoomAlwaysThere(t *testing.T) {
	tests := []struct {
		name, room string
		notice     string // a line the member must get, besides the welcome
	}{
		{"no room asked for", "", ""},
		{"a new room, when all are in use", "r9", `room "r9" cannot be made`},
		{"an invalid room", "no such room!", "is not valid"},
		{"the default room by name", "lobby", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHub(HubConfig{MaxRooms: 3, MaxPerIP: -1}, nil)
			for i := range 3 {
				if c, _ := connectTo(t, h, fmt.Sprintf("r%d", i)); c.Room() != fmt.Sprintf("r%d", i) {
					t.Fatalf("member %d is in %q: the default room took a room's place", i, c.Room())
				}
			}
			c, m := connectTo(t, h, tt.room)
			if c.Room() != "lobby" {
				t.Fatalf("room = %q, want lobby", c.Room())
			}
			got := m.lines()
			if len(got) == 0 || !strings.Contains(got[0], "Welcome") || !strings.Contains(got[0], "You are in lobby.") {
				t.Fatalf("welcome = %q", got)
			}
			if tt.notice != "" && !strings.Contains(strings.Join(got, "\n"), tt.notice) {
				t.Fatalf("no notice %q in %q", tt.notice, got)
			}
			// The member is served: it can talk and move.
			c.Handle([]byte("/join r9"))
			if got := m.lines(); c.Room() != "lobby" || len(got) != 1 || !strings.Contains(got[0], `room "r9" cannot be made`) {
				t.Fatalf("/join r9 with every room in use: room %q, got %q", c.Room(), got)
			}
			c.Handle([]byte("/who"))
			if got := m.lines(); len(got) != 1 || !strings.Contains(got[0], "1 in lobby") {
				t.Fatalf("/who = %q", got)
			}
			c.Leave("")
		})
	}
}

// The default room is never forgotten: not when it is the empty room
// idle longest and a new room needs its place, not when its last member
// leaves it.
func TestDefaultRoomIsNeverForgotten(t *testing.T) {
	h := NewHub(HubConfig{MaxRooms: 1, MaxPerIP: -1}, nil)
	c, m := connectTo(t, h, "")
	for _, l := range []string{"hi", "/join a", "said in a", "/join lobby", "/join b"} { // b evicts a
		c.Handle([]byte(l))
	}
	if got := m.lines(); strings.Contains(strings.Join(got, "\n"), "cannot be made") || c.Room() != "b" {
		t.Fatalf("in %q after %q", c.Room(), got)
	}
	// The lobby is now the only empty room, and idle longest; a new room
	// may not take its place.
	d, dm := connectTo(t, h, "e")
	if got := dm.lines(); d.Room() != "lobby" || !strings.Contains(strings.Join(got, "\n"), `room "e" cannot be made`) {
		t.Fatalf("d is in %q with %q", d.Room(), got)
	}
	c.Leave("")
	d.Leave("")
	if rooms := h.Rooms(); len(rooms) != 1 || rooms[0].Name != "lobby" {
		t.Fatalf("rooms = %+v, want the lobby alone", rooms)
	}
	e, em := connectTo(t, h, "")
	if got := em.lines(); e.Room() != "lobby" || len(got) < 2 || unstamped(got[1]) != "<"+c.Name()+"> hi" {
		t.Fatalf("a new member is in %q with %q", e.Room(), got)
	}
}
