package tcpserver

import (
	"slices"
	"testing"
)

func TestClientKeyAndRoomNames(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, AnnounceDelay: -1}, nil)
	bob, _ := connect(t, h, "bob")
	defer bob.Leave("")
	m := &fakeMember{}
	c, err := h.Connect(m, ConnectInfo{Addr: "192.0.2.9:22", Transport: "ssh", Nick: "Alice", Key: "SHA256:abc"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Leave("")
	if c.Key() != "SHA256:abc" || bob.Key() != "" {
		t.Fatalf("keys = %q, %q; want SHA256:abc and none", c.Key(), bob.Key())
	}
	if got := c.RoomNames(); !slices.Equal(got, []string{"Alice", "bob"}) {
		t.Fatalf("RoomNames = %q", got)
	}
	c.Handle([]byte("/join dev"))
	if got := c.RoomNames(); !slices.Equal(got, []string{"Alice"}) {
		t.Fatalf("RoomNames in dev = %q", got)
	}
}

func TestNotice(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		want string
	}{
		{KindSystem, "*** colours off\r\n"},
		{KindError, "! no such thing\r\n"},
		{KindMessage, "*** colours off\r\n"}, // only a notice or an error
	} {
		text := "colours off"
		if tc.kind == KindError {
			text = "no such thing"
		}
		if got := string(Notice(tc.kind, text).Line()); got != tc.want {
			t.Errorf("Notice(%v) = %q, want %q", tc.kind, got, tc.want)
		}
	}
}
