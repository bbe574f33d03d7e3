package tcpserver

import (
	"fmt"
	"strings"
	"testing"
)

// /ignore hides a member's lines, actions and private messages from the
// one who ignores it, through renames, and from nobody else; /unignore
// undoes it.
func TestIgnoreHidesAMembersLinesAndPrivateMessages(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, ChangeBurst: -1}, nil)
	alice, am := connectFrom(t, h, "alice", "192.0.2.1:1")
	mallory, mm := connectFrom(t, h, "mallory", "192.0.2.2:1")
	_, bm := connectFrom(t, h, "bob", "192.0.2.3:1")
	am.lines()
	mm.lines()

	alice.Handle([]byte("/ignore MALLORY"))
	if got := am.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "*** you now ignore mallory: ") {
		t.Fatalf("alice's /ignore: %q", got)
	}
	mallory.Handle([]byte("spam"))
	mallory.Handle([]byte("/me spams"))
	mallory.Hold()
	mallory.Handle([]byte("batched one"))
	mallory.Handle([]byte("batched two"))
	mallory.Flush()
	mallory.Handle([]byte("/msg alice psst"))
	mallory.Handle([]byte("/nick mal"))
	mallory.Handle([]byte("spam as mal"))
	mallory.Handle([]byte("/msg alice psst as mal"))
	// The ignored one is not told: its private messages look delivered.
	if got := mm.lines(); count(got, "-> *alice* psst") != 2 || count(got, "!") != 0 {
		t.Fatalf("mallory got %q", got)
	}
	want := []string{"*** mallory is now known as mal"}
	if got := am.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("alice got %q, want %q", got, want)
	}
	if got := bm.lines(); len(got) != 6 || got[0] != "<mallory> spam" || got[5] != "<mal> spam as mal" {
		t.Fatalf("bob got %q", got)
	}
	// Others' lines still reach alice.
	if bob := h.lookup("bob"); bob != nil {
		bob.Handle([]byte("hi all"))
	}
	if got := am.lines(); len(got) != 1 || got[0] != "<bob> hi all" {
		t.Fatalf("alice got %q from bob", got)
	}

	// Listed under the name ignored; /unignore takes either name.
	alice.Handle([]byte("/ignore"))
	if got := am.lines(); len(got) != 1 || got[0] != "*** you ignore 1: mallory" {
		t.Fatalf("alice's list: %q", got)
	}
	alice.Handle([]byte("/unignore mal"))
	if got := am.lines(); len(got) != 1 || got[0] != "*** you no longer ignore mallory" {
		t.Fatalf("alice's /unignore: %q", got)
	}
	mallory.Handle([]byte("heard again"))
	mallory.Handle([]byte("/msg alice and again"))
	if got := am.lines(); len(got) != 2 || got[0] != "<mal> heard again" || got[1] != "*mal* and again" {
		t.Fatalf("alice after /unignore got %q", got)
	}
	alice.Handle([]byte("/ignore"))
	if got := am.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "*** you ignore nobody") {
		t.Fatalf("alice's empty list: %q", got)
	}
}

// A room's history, replayed on joining it, leaves out the lines of
// those the newcomer ignores; and whoever comes back under an ignored
// name is ignored too.
func TestIgnoreHidesHistoryAndFollowsTheName(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, ChangeBurst: -1}, nil)
	alice, am := connectFrom(t, h, "alice", "192.0.2.1:1")
	mallory, _ := connectFrom(t, h, "mallory", "192.0.2.2:1")
	bob, _ := connectFrom(t, h, "bob", "192.0.2.3:1")
	for _, c := range []*Client{mallory, bob} {
		c.Handle([]byte("/join dev"))
	}
	mallory.Handle([]byte("from mallory"))
	bob.Handle([]byte("from bob"))
	alice.Handle([]byte("/ignore mallory"))
	am.lines()
	alice.Handle([]byte("/join dev"))
	got := am.lines()
	if count(got, "from mallory") != 0 || count(got, "<bob> from bob") != 1 {
		t.Fatalf("alice's welcome to dev: %q", got)
	}

	mallory.Leave("")
	mallory2, _ := connectFrom(t, h, "mallory", "192.0.2.4:1")
	mallory2.Handle([]byte("/join dev"))
	am.lines()
	mallory2.Handle([]byte("back again"))
	mallory2.Handle([]byte("/msg alice psst"))
	if got := am.lines(); len(got) != 0 {
		t.Fatalf("alice got %q from the new mallory", got)
	}
}

// Abuse of /ignore: every wrong use gets a clear error and changes
// nothing; the list is bounded.
func TestIgnoreRefusesWhatItCannotDo(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: -1, MaxClients: -1}, nil)
	alice, am := connectFrom(t, h, "alice", "192.0.2.1:1")
	connectFrom(t, h, "bob", "192.0.2.2:1")
	am.lines()
	tests := []struct{ line, want string }{
		{"/ignore alice", "! you cannot ignore yourself"},
		{"/ignore ALICE", "! you cannot ignore yourself"},
		{"/ignore nobody", "! no one called nobody is here"},
		{"/ignore no such name", `! nick "no such name" is not valid`},
		{"/ignore " + strings.Repeat("x", 100), "is not valid"},
		{"/unignore", "! usage: /unignore NAME"},
		{"/unignore bob", "! you do not ignore bob"},
		{"/ignore bob", "*** you now ignore bob"},
		{"/ignore Bob", "! you already ignore bob"},
	}
	for _, tt := range tests {
		alice.Handle([]byte(tt.line))
		if got := am.lines(); len(got) != 1 || !strings.Contains(got[0], tt.want) {
			t.Errorf("%s: got %q, want %q", tt.line, got, tt.want)
		}
	}
	// 100 at most: the 101st is refused, however many are tried.
	for i := range maxIgnored + 50 {
		if _, err := h.Connect(&fakeMember{}, ConnectInfo{Addr: "192.0.2.5:1", Nick: fmt.Sprintf("u%d", i)}); err != nil {
			t.Fatal(err)
		}
		alice.Handle(fmt.Appendf(nil, "/ignore u%d", i))
	}
	got := am.lines()
	if n := count(got, "you now ignore u"); n != maxIgnored-1 {
		t.Fatalf("%d ignores taken, want %d (bob and %d more)", n, maxIgnored-1, maxIgnored-1)
	}
	if n := count(got, fmt.Sprintf("! you already ignore %d members, the most you may; /unignore one first", maxIgnored)); n != 51 {
		t.Fatalf("%d refusals, want 51; last line %q", n, got[len(got)-1])
	}
	if l := alice.ignored.Load(); len(l.entries) != maxIgnored {
		t.Fatalf("%d entries kept", len(l.entries))
	}
}

// Fan-out asks members' lists only for what someone in the room
// ignores; the room's list of them follows members in and out.
func TestRoomCountsItsIgnorers(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: -1}, nil)
	alice, _ := connectFrom(t, h, "alice", "192.0.2.1:1")
	connectFrom(t, h, "bob", "192.0.2.2:1")
	ignorers := func(room string) int {
		h.mu.Lock()
		r := h.rooms[room]
		h.mu.Unlock()
		if r == nil {
			return 0 // forgotten, being empty
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.ignorers)
	}
	steps := []struct {
		line       string
		lobby, dev int
	}{
		{"/ignore bob", 1, 0},
		{"/join dev", 0, 1},
		{"/unignore bob", 0, 0},
		{"/ignore bob", 0, 1},
		{"/join lobby", 1, 0},
	}
	for _, s := range steps {
		alice.Handle([]byte(s.line))
		if l, d := ignorers("lobby"), ignorers("dev"); l != s.lobby || d != s.dev {
			t.Fatalf("after %s: ignorers lobby %d, dev %d; want %d, %d", s.line, l, d, s.lobby, s.dev)
		}
	}
	alice.Leave("")
	if n := ignorers("lobby"); n != 0 {
		t.Fatalf("after leaving: %d ignorers", n)
	}
}

// Ignoring costs the rooms where nobody ignores anyone nothing per
// delivery, and where someone does, nothing more than a look at a list:
// no allocation either way.
func TestIgnoringAllocatesNothingPerDelivery(t *testing.T) {
	allocs := func(ignore bool) float64 {
		h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, MaxClients: -1, Rate: -1}, nil)
		var sender *Client
		for i := range 1000 {
			c, err := h.Connect(discardMember{}, ConnectInfo{Addr: fmt.Sprintf("192.0.2.1:%d", i), Nick: fmt.Sprintf("m%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if ignore && i%10 == 0 && i > 0 {
				c.Handle([]byte("/ignore m1"))
			}
			sender = c
		}
		line := []byte("hello, everybody")
		return testing.AllocsPerRun(200, func() { sender.Handle(line) })
	}
	if plain, ignoring := allocs(false), allocs(true); ignoring > plain {
		t.Fatalf("allocations per line: %v, %v with a hundred members ignoring someone", plain, ignoring)
	}
}

// BenchmarkBroadcastIgnoring is BenchmarkBroadcast in a room where one
// member in ten ignores someone else: each delivery then asks a list.
func BenchmarkBroadcastIgnoring(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, MaxClients: -1, Rate: -1}, nil)
			var sender *Client
			for i := range n {
				c, err := h.Connect(discardMember{}, ConnectInfo{Addr: fmt.Sprintf("192.0.2.1:%d", i), Nick: fmt.Sprintf("m%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				if i%10 == 1 {
					c.Handle([]byte("/ignore m0"))
				}
				sender = c
			}
			line := []byte("hello, everybody: a line of typical length")
			b.ReportAllocs()
			for b.Loop() {
				sender.Handle(line)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(n-1)), "ns/delivery")
		})
	}
}
