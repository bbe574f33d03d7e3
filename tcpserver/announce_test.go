package tcpserver

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// kinds returns the kinds of what was published, in order.
func (r *recordingRelay) kinds() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []string
	for _, ev := range r.events {
		k = append(k, ev.Kind.String()+" "+ev.From)
	}
	return strings.Join(k, ", ")
}

// Someone who comes and goes within AnnounceDelay is never announced, to
// the room or to other nodes; one who speaks first is announced before
// its first line, and its leave then is too. Until then only it lists
// itself.
func TestQuickLeaversAreNotAnnounced(t *testing.T) {
	relay := &recordingRelay{}
	h := NewHub(HubConfig{AnnounceDelay: time.Hour, MaxPerIP: -1, Rate: -1, Relay: relay}, nil)
	watcher, wm := connectFrom(t, h, "watcher", "192.0.2.1:1")
	for i := range 50 {
		c, _ := connectFrom(t, h, fmt.Sprintf("churn%d", i), "192.0.2.2:1")
		c.Leave("")
	}
	if got := wm.lines(); len(got) != 0 {
		t.Fatalf("watcher saw %q", got)
	}

	talker, tm := connectFrom(t, h, "talker", "192.0.2.3:1")
	talker.Handle([]byte("/who"))
	if got := tm.lines(); len(got) != 1 || got[0] != "*** 1 in lobby: talker" {
		t.Fatalf("the talker's /who before it spoke: %q", got)
	}
	watcher.Handle([]byte("/who"))
	if got := wm.lines(); len(got) != 1 || got[0] != "*** 1 in lobby: watcher" {
		t.Fatalf("the watcher's /who: %q", got)
	}
	talker.Handle([]byte("hello"))
	if got := wm.lines(); len(got) != 2 || got[0] != "*** talker (192.0.2.3:1) joined" || got[1] != "<talker> hello" {
		t.Fatalf("watcher saw %q", got)
	}
	watcher.Handle([]byte("/who"))
	if got := wm.lines(); len(got) != 1 || got[0] != "*** 2 in lobby: talker, watcher" {
		t.Fatalf("the watcher's /who after the talker spoke: %q", got)
	}
	talker.Leave("")
	if got := wm.lines(); len(got) != 1 || got[0] != "*** talker (192.0.2.3:1) left" {
		t.Fatalf("watcher saw %q", got)
	}
	if got := relay.kinds(); got != "join talker, message talker, leave talker" {
		t.Fatalf("relay got %s", got)
	}
}

// A newcomer who stays silent is announced once the delay is over, and
// its leave with it.
func TestJoinIsAnnouncedAfterTheDelay(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: 50 * time.Millisecond, MaxPerIP: -1}, nil)
	_, wm := connectFrom(t, h, "watcher", "192.0.2.1:1")
	start := time.Now()
	silent, _ := connectFrom(t, h, "silent", "192.0.2.3:1")
	var got []string
	for deadline := time.Now().Add(5 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		got = wm.lines()
	}
	if len(got) != 1 || got[0] != "*** silent (192.0.2.3:1) joined" {
		t.Fatalf("watcher saw %q", got)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("announced after %v, before the delay", waited)
	}
	silent.Leave("")
	if got := wm.lines(); len(got) != 1 || got[0] != "*** silent (192.0.2.3:1) left" {
		t.Fatalf("watcher saw %q", got)
	}
}

// A newcomer not announced yet may rename: only it is told, and it is
// announced under its new name.
func TestRenameBeforeTheAnnouncementIsQuiet(t *testing.T) {
	relay := &recordingRelay{}
	h := NewHub(HubConfig{AnnounceDelay: time.Hour, MaxPerIP: -1, Rate: -1, ChangeBurst: -1, Relay: relay}, nil)
	_, wm := connectFrom(t, h, "watcher", "192.0.2.1:1")
	c, cm := connectFrom(t, h, "first", "192.0.2.3:1")
	c.Handle([]byte("/nick second"))
	if got := cm.lines(); len(got) != 1 || got[0] != "*** first is now known as second" {
		t.Fatalf("the renamer got %q", got)
	}
	if got := wm.lines(); len(got) != 0 {
		t.Fatalf("watcher saw %q", got)
	}
	c.Handle([]byte("/me arrives"))
	if got := wm.lines(); len(got) != 2 || got[0] != "*** second (192.0.2.3:1) joined" {
		t.Fatalf("watcher saw %q", got)
	}
	if got := relay.kinds(); got != "join second, action second" {
		t.Fatalf("relay got %s", got)
	}
}

// In a room bigger than AnnounceLimit name changes are not announced
// (a hundred renamers in a room of thousands were a hundred notices to
// each); the renamer is told, and /who has the new name. A relayed name
// change into such a room is not announced either.
func TestBigRoomsDoNotAnnounceNameChanges(t *testing.T) {
	relay := &recordingRelay{}
	h := NewHub(HubConfig{AnnounceDelay: -1, AnnounceLimit: 2, MaxPerIP: -1, Rate: -1, ChangeBurst: -1, Relay: relay}, nil)
	renamer, rm := connectFrom(t, h, "renamer", "192.0.2.1:1")
	_, bm := connectFrom(t, h, "bob", "192.0.2.2:1")
	_, cm := connectFrom(t, h, "carol", "192.0.2.3:1")
	rm.lines()
	bm.lines()
	renamer.Handle([]byte("/nick renamed"))
	if got := rm.lines(); len(got) != 1 || got[0] != "*** renamer is now known as renamed" {
		t.Fatalf("the renamer got %q", got)
	}
	if got := append(bm.lines(), cm.lines()...); len(got) != 0 {
		t.Fatalf("the others got %q", got)
	}
	renamer.Handle([]byte("/who"))
	if got := rm.lines(); len(got) != 1 || !strings.Contains(got[0], "renamed") || strings.Contains(got[0], "renamer") {
		t.Fatalf("/who: %q", got)
	}
	if got := relay.kinds(); !strings.HasSuffix(got, "nick renamer") {
		t.Fatalf("relay got %s", got)
	}
	h.Deliver(&Event{Kind: KindNick, Room: "lobby", From: "zed", To: "zack", Node: "b", NodeID: 1})
	if got := bm.lines(); len(got) != 0 {
		t.Fatalf("a relayed rename reached bob: %q", got)
	}
}

// pageModel keeps a member list as the page does (web/app.js): from
// presence, join, leave and nick events.
type pageModel struct {
	names map[string]bool
	count int
}

func (p *pageModel) see(ev *Event) {
	switch ev.Kind {
	case KindPresence:
		p.names = map[string]bool{}
		for _, n := range ev.Names {
			p.names[n] = true
		}
		p.count = ev.Count
	case KindJoin:
		p.names[ev.From] = true
		p.count++
	case KindLeave:
		delete(p.names, ev.From)
		p.count--
	case KindNick:
		delete(p.names, ev.From)
		p.names[ev.To] = true
	}
}

// Whatever order members come, speak, rename, are announced and leave
// in, a page's list built from what the server sends it is the room: no
// member listed whose leave it will not hear, none missed once
// announced; and the kept presence list is right throughout, in rooms
// small and big. (A page cannot list a room of more than presenceNames:
// it is told only that many names. Odd seeds let the room grow to 250,
// and check only /who.)
func TestPageMemberListStaysRightWithQuietJoins(t *testing.T) {
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		most := 90
		if seed%2 == 1 {
			most = 250
		}
		h := NewHub(HubConfig{AnnounceDelay: time.Hour, MaxPerIP: -1, Rate: -1, ChangeBurst: -1, MaxClients: -1}, nil)
		wm := &fakeMember{}
		watcher, err := h.Connect(wm, ConnectInfo{Addr: "192.0.2.1:1", Nick: "watcher"})
		if err != nil {
			t.Fatal(err)
		}
		watcher.Handle([]byte("hi")) // announced, as a member who has been here a while
		page := &pageModel{}
		var in []*Client
		for step := range 600 {
			switch op := rnd.IntN(10); {
			case len(in) < most && (op < 4 || len(in) == 0):
				c, _ := connectFrom(t, h, fmt.Sprintf("m%d", step), "192.0.2.2:1")
				in = append(in, c)
			case op < 6:
				in[rnd.IntN(len(in))].Handle([]byte("hello"))
			case op < 7:
				c := in[rnd.IntN(len(in))]
				c.Handle(fmt.Appendf(nil, "/nick r%d", step))
			case op < 8:
				// What the timer does when the delay is over.
				c := in[rnd.IntN(len(in))]
				r := c.room
				r.mu.Lock()
				if p := r.pending[c]; p != nil {
					r.mu.Unlock()
					r.showWhenDue(c, p)
				} else {
					r.mu.Unlock()
				}
			case op < 9:
				watcher.Handle([]byte("/who"))
			default:
				i := rnd.IntN(len(in))
				in[i].Leave("")
				in = slices.Delete(in, i, i+1)
			}
			wm.mu.Lock()
			for _, ev := range wm.events {
				page.see(ev)
			}
			wm.events = nil
			wm.mu.Unlock()

			// The truth: the watcher and the announced members.
			want := map[string]bool{"watcher": true}
			for _, c := range in {
				if c.visible.Load() {
					want[c.Name()] = true
				}
			}
			watcher.Handle([]byte("/who"))
			wm.mu.Lock()
			who := wm.events[len(wm.events)-1]
			wm.events = nil
			wm.mu.Unlock()
			if who.Count != len(want) {
				t.Fatalf("seed %d step %d: /who counts %d, want %d", seed, step, who.Count, len(want))
			}
			for _, n := range who.Names {
				if !want[n] {
					t.Fatalf("seed %d step %d: /who lists %s, not announced", seed, step, n)
				}
			}
			if len(who.Names) != min(len(want), presenceNames) || !slices.IsSortedFunc(who.Names, compareFold) {
				t.Fatalf("seed %d step %d: /who lists %d names %q, want %d sorted", seed, step, len(who.Names), who.Names, min(len(want), presenceNames))
			}
			if most <= presenceNames && (!mapsEqual(page.names, want) || page.count != len(want)) {
				t.Fatalf("seed %d step %d: the page lists %d %v, the room is %d %v", seed, step, page.count, page.names, len(want), want)
			}
		}
		for _, c := range in {
			c.Leave("")
		}
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// Members who come and go unannounced do not make the room list who is
// here again, however they are placed among the others: a churn of them
// in a big room costs no sorting.
func TestQuietChurnKeepsThePresenceList(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: time.Hour, MaxPerIP: -1, Rate: -1, MaxClients: -1}, nil)
	var shown []*Client
	for i := range 150 {
		c, _ := connectFrom(t, h, fmt.Sprintf("u%03d", i), "192.0.2.1:1")
		c.Handle([]byte("here"))
		shown = append(shown, c)
	}
	var quiet []*Client
	for i := range 50 {
		c, _ := connectFrom(t, h, fmt.Sprintf("q%02d", i), "192.0.2.2:1")
		quiet = append(quiet, c)
	}
	r := shown[0].room
	list := func() []string {
		shown[0].Handle([]byte("/who"))
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.sortedNames
	}
	shown[10].Leave("") // the last, q49, takes its place, among the listed
	before := list()
	if len(before) != presenceNames || slices.Contains(before, "u010") {
		t.Fatalf("listed %d: %q", len(before), before)
	}
	for _, c := range quiet {
		c.Leave("")
	}
	if after := list(); &after[0] != &before[0] {
		t.Fatal("the list was made again after members who were never announced left")
	}
}
