package tcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// stampedLine matches a line of history as the text protocol shows it:
// its time, HH:MM, and the date too if it was not said today.
var stampedLine = regexp.MustCompile(`^\[(\d{4}-\d\d-\d\d )?\d\d:\d\d\] `)

// lineTexts returns the texts of the history lines among got, in order,
// checking that each shows its time.
func historyTexts(t *testing.T, got []string) string {
	t.Helper()
	var out []string
	for _, l := range got {
		if !strings.Contains(l, "<ada> ") {
			continue
		}
		if !stampedLine.MatchString(l) {
			t.Fatalf("a line of history without its time: %q", l)
		}
		_, text, _ := strings.Cut(l, "<ada> ")
		out = append(out, text)
	}
	return strings.Join(out, " ")
}

// seq returns "prefix-from" to "prefix-to", space-separated.
func seq(prefix string, from, to int) string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
	}
	return strings.Join(out, " ")
}

// /history goes back from the oldest line the member was shown, a page
// at a time, each line with its time, to the asker only; at the start it
// says there are no earlier lines. A room change starts again from that
// room's replay.
func TestHistoryCommand(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: -1, History: 5}, nil)
	ada, am := connect(t, h, "ada")
	say(ada, "l", 1, 30)
	bob, bm := connect(t, h, "bob")
	if got := historyTexts(t, bm.lines()); got != seq("l", 26, 30) {
		t.Fatalf("bob's replay: %q", got)
	}
	am.lines()

	steps := []struct {
		cmd, want, end string
	}{
		{"/history 10", seq("l", 16, 25), "*** end of history: 10 earlier lines, times in UTC"},
		{"/history", seq("l", 1, 15), "*** end of history: 15 earlier lines, times in UTC"},
		{"/history", "", "*** no earlier lines"},
		{"/history 200", "", "*** no earlier lines"},
	}
	for _, s := range steps {
		bob.Handle([]byte(s.cmd))
		got := bm.lines()
		if historyTexts(t, got) != s.want || len(got) == 0 || got[len(got)-1] != s.end {
			t.Fatalf("%s: %q; want %q then %q", s.cmd, got, s.want, s.end)
		}
	}
	if got := am.lines(); len(got) != 0 {
		t.Fatalf("ada was shown %q of bob's scrollback", got)
	}

	// Another room, and back: from the replay again.
	bob.Handle([]byte("/join dev"))
	bob.Handle([]byte("/history"))
	if got := bm.lines(); got[len(got)-1] != "*** no earlier lines" {
		t.Fatalf("in an empty room: %q", got)
	}
	bob.Handle([]byte("/join lobby"))
	bm.lines()
	bob.scroll.rate.last = bob.scroll.rate.last.Add(-time.Minute) // five /history more
	ada.Handle([]byte("l-31"))
	bm.lines()
	bob.Handle([]byte("/history 3"))
	if got := historyTexts(t, bm.lines()); got != seq("l", 23, 25) {
		t.Fatalf("after coming back, /history 3: %q", got)
	}
}

// Lines said on an earlier day show their date.
func TestHistoryShowsTheDate(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 1}, nil)
	old := time.Now().Add(-49 * time.Hour).UTC()
	h.Deliver(&Event{Kind: KindMessage, Room: "lobby", From: "ada", Text: "long ago", Node: "n2", NodeID: 1, Time: old})
	h.Deliver(&Event{Kind: KindMessage, Room: "lobby", From: "ada", Text: "now", Node: "n2", NodeID: 2, Time: time.Now()})
	bob, bm := connect(t, h, "bob")
	bm.lines()
	bob.Handle([]byte("/history"))
	want := "[" + old.Format("2006-01-02 15:04") + "] <ada> long ago"
	if got := bm.lines(); len(got) != 2 || got[0] != want {
		t.Fatalf("/history: %q; want %q first", got, want)
	}
}

// What /history cannot take is refused with a word on how to ask, and
// reads nothing.
func TestHistoryArgumentsRefused(t *testing.T) {
	s := newTestStore()
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, Store: s}, nil)
	bob, bm := connect(t, h, "bob")
	bm.lines()
	reads := s.readCount()
	for _, arg := range []string{"0", "-1", "201", "1000000000000000000000", "ten", "5.5", "1 2 3", "0x10"} {
		bob.Handle([]byte("/history " + arg))
		if got := bm.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "! usage: /history [N]") {
			t.Fatalf("/history %s: %q", arg, got)
		}
	}
	for _, arg := range []string{"5 nope", "5 -1", "5 n-", "5 " + strings.Repeat("9", 30)} {
		bob.Handle([]byte("/history " + arg))
		if got := bm.lines(); len(got) != 1 || !strings.Contains(got[0], "is not a line id") {
			t.Fatalf("/history %s: %q", arg, got)
		}
	}
	if s.readCount() != reads {
		t.Fatal("a refused /history read the store")
	}
}

// /history has a rate of its own: five at once, then one every 2 s.
func TestHistoryRate(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	bob, bm := connect(t, h, "bob")
	bm.lines()
	for i := range historyBurst {
		bob.Handle([]byte("/history"))
		if got := bm.lines(); len(got) != 1 || !strings.Contains(got[0], "no earlier lines") {
			t.Fatalf("/history %d of %d: %q", i+1, historyBurst, got)
		}
	}
	bob.Handle([]byte("/history"))
	if got := bm.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "! too many /history") || !strings.Contains(got[0], "try again in 2 s") {
		t.Fatalf("one more at once: %q", got)
	}
	bob.scroll.rate.last = bob.scroll.rate.last.Add(-historyEvery) // 2 s later
	bob.Handle([]byte("/history"))
	if got := bm.lines(); len(got) != 1 || !strings.Contains(got[0], "no earlier lines") {
		t.Fatalf("2 s later: %q", got)
	}
	bob.Handle([]byte("/history"))
	if got := bm.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "! too many /history") {
		t.Fatalf("and one more: %q", got)
	}
}

// A line of another room, named to /history, is as unknown as one never
// said: nothing of that room is shown.
func TestHistoryShowsNoOtherRoom(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: -1}, nil)
	ada, am := connect(t, h, "ada")
	ada.Handle([]byte("/join secret"))
	ada.Handle([]byte("the password is swordfish"))
	secret := keptLines(h, "secret")[0].Key()
	ada.Handle([]byte("/join lobby"))
	ada.Handle([]byte("in the lobby"))
	am.lines()
	bob, bm := connect(t, h, "bob")
	bm.lines()
	bob.Handle([]byte("/history 5 " + secret.String()))
	got := bm.lines()
	if len(got) != 1 || got[0] != "! no line "+secret.String()+" in lobby" {
		t.Fatalf("/history before a line of another room: %q", got)
	}
}

// A store that is slow holds up only the member who asked it: the room
// goes on meanwhile, and the member is answered when the store answers.
// One that does not answer at all is given up on, with a word.
func TestSlowStoreHoldsNoLock(t *testing.T) {
	s := newTestStore()
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 2, Store: s}, nil)
	ada, _ := connect(t, h, "ada")
	say(ada, "l", 1, 5)
	bob, bm := connect(t, h, "bob")
	_, cm := connect(t, h, "cy")
	bm.lines()
	reads := s.readCount()
	block := make(chan struct{})
	s.mu.Lock()
	s.block = block
	s.mu.Unlock()

	done := make(chan []string)
	go func() {
		bob.Handle([]byte("/history"))
		done <- bm.lines()
	}()
	dave, dm := connect(t, h, "dave") // a room already filled: no read
	dm.lines()
	joined := make(chan struct{})
	go func() {
		dave.Handle([]byte("/join elsewhere")) // a room to fill: waits for the store
		close(joined)
	}()
	waitUntil(t, "both read the store", func() bool { return s.readCount() == reads+2 })
	cm.lines()
	ada.Handle([]byte("while the store is slow"))
	if got := cm.lines(); len(got) != 1 || got[0] != "<ada> while the store is slow" {
		t.Fatalf("cy got %q while bob's /history and dave's join waited", got)
	}
	close(block)
	select {
	case <-joined:
	case <-time.After(5 * time.Second):
		t.Fatal("dave's join did not end")
	}
	select {
	case got := <-done:
		got = slices.DeleteFunc(got, func(l string) bool { return !strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "***") })
		if historyTexts(t, got) != seq("l", 1, 3) {
			t.Fatalf("bob's /history once the store answered: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bob's /history did not end")
	}

	// A store that never answers: given up on after historyTimeout.
	s.mu.Lock()
	s.block = make(chan struct{})
	s.mu.Unlock()
	start := time.Now()
	bob.Handle([]byte("/history 5 " + keptLines(h, "lobby")[1].Key().String()))
	if got := bm.lines(); len(got) != 1 || !strings.Contains(got[0], "cannot be read now") {
		t.Fatalf("with the store down: %q", got)
	}
	if took := time.Since(start); took < historyTimeout || took > historyTimeout+2*time.Second {
		t.Fatalf("gave up after %v, want %v", took, historyTimeout)
	}
}

// waitUntil waits up to 5 s for cond.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// /history over a real TCP connection, as a telnet user sees it.
func TestHistoryOverTCP(t *testing.T) {
	ts := startServer(t, HubConfig{History: 2, Rate: -1}, Config{})
	a := ts.dial(t)
	a.send("/nick anna", "one", "two", "three", "four", "/nick ann")
	a.expect("is now known as ann")
	b := ts.dial(t)
	b.send("/history")
	for _, want := range []string{"] <anna> one", "] <anna> two"} {
		if got := b.expect(want); !stampedLine.MatchString(got) {
			t.Fatalf("a line of history over TCP: %q", got)
		}
	}
	b.expectExact("*** end of history: 2 earlier lines, times in UTC")
	b.send("/history 7")
	b.expectExact("*** no earlier lines")
	b.send("/history 0")
	b.expect("! usage: /history [N]")
}

// The join replay's history event says whether the room has earlier
// lines, so that the page knows whether to offer to load them; its JSON
// always has events and more.
func TestReplaySaysMore(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 3}, nil)
	ada, _ := connect(t, h, "ada")
	replay := func() *Event {
		t.Helper()
		_, m := connect(t, h, "")
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, ev := range m.events {
			if ev.Kind == KindHistory {
				return ev
			}
		}
		t.Fatal("no history replayed")
		return nil
	}
	say(ada, "l", 1, 3)
	if j := string(replay().JSON()); !strings.Contains(j, `"more":false`) || strings.Count(j, `"type":"message"`) != 3 {
		t.Fatalf("3 lines of 3: %s", j)
	}
	say(ada, "l", 4, 4)
	if j := string(replay().JSON()); !strings.Contains(j, `"more":true`) || strings.Count(j, `"type":"message"`) != 3 || !strings.Contains(j, `"room":"lobby"`) {
		t.Fatalf("3 lines of 4: %s", j)
	}
	empty := (&Event{Kind: KindHistory, Room: "lobby"}).finish()
	if j := string(empty.JSON()); !strings.Contains(j, `"events":[]`) || !strings.Contains(j, `"more":false`) || string(empty.Line()) != "*** no earlier lines\r\n" {
		t.Fatalf("an empty page: %s, %q", j, empty.Line())
	}
}

// readBackStore is a store whose lines come back as a durable store's
// do: decoded, with no text form made yet.
type readBackStore struct{ *testStore }

func (s readBackStore) Lines(ctx context.Context, room string, before LineKey, limit int) ([]*Event, bool, error) {
	lines, more, err := s.testStore.Lines(ctx, room, before, limit)
	out := make([]*Event, len(lines))
	for i, ev := range lines {
		out[i] = &Event{ID: ev.ID, Node: ev.Node, Kind: ev.Kind, Time: ev.Time, Room: ev.Room, From: ev.From, Text: ev.Text}
	}
	return out, more, err
}

// /history shows a terminal the text of lines a store reads back, not
// their times alone.
func TestHistoryOfAStoreShowsText(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 1, Store: readBackStore{newTestStore()}}, nil)
	ada, _ := connect(t, h, "ada")
	ada.Handle([]byte("first"))
	ada.Handle([]byte("/me waves"))
	ada.Handle([]byte("last"))
	bob, bm := connect(t, h, "bob")
	bm.lines()
	bob.Handle([]byte("/history"))
	got := bm.lines()
	if len(got) != 3 || !strings.HasSuffix(got[0], "] <ada> first") || !strings.HasSuffix(got[1], "] * ada waves") {
		t.Fatalf("/history: %q", got)
	}
}

// A /history before a line the room does not have (never said, made up,
// another node's, long forgotten) is answered "no line ID in ROOM", the
// same to a terminal and, as an error event, to a JSON client (whose
// {"type":"history","before":ID} the bridge makes this very command),
// and moves no mark: the next /history goes on from the lines shown.
// natsrelay's TestHistoryBeforeAnUnknownLineThroughTheHub asks the same
// of the JetStream store.
func TestHistoryBeforeAnUnknownLine(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, History: 3, HistoryKeep: 5}, nil)
	ada, _ := connect(t, h, "ada")
	say(ada, "l", 1, 8) // lines 1 to 3 are forgotten: the room keeps 5
	forgotten := LineKey{ID: keptLines(h, "lobby")[0].ID - 3}
	bob, bm := connect(t, h, "bob")
	bm.lines()
	for _, id := range []string{"999999999999", "elsewhere-2", forgotten.String()} {
		bob.Handle([]byte("/history 5 " + id))
		bm.mu.Lock()
		evs := bm.events
		bm.events = nil
		bm.mu.Unlock()
		want := "no line " + id + " in lobby"
		if len(evs) != 1 || evs[0].Kind != KindError || evs[0].Text != want {
			var got []string
			for _, ev := range evs {
				got = append(got, ev.Kind.String()+": "+ev.Text)
			}
			t.Fatalf("/history 5 %s: %q, want one error %q", id, got, want)
		}
		if line := string(evs[0].Line()); !strings.Contains(line, want) {
			t.Errorf("/history 5 %s, as a terminal reads it: %q", id, line)
		}
		var j struct{ Type, Text string }
		if err := json.Unmarshal(evs[0].JSON(), &j); err != nil || j.Type != "error" || j.Text != want {
			t.Errorf("/history 5 %s, as a JSON client reads it: %s (%v)", id, evs[0].JSON(), err)
		}
	}
	bob.Handle([]byte("/history 5"))
	if got := bm.lines(); len(got) != 3 || !strings.Contains(got[0], "l-04") || !strings.Contains(got[1], "l-05") {
		t.Fatalf("then /history 5: %q, want lines 4 and 5", got)
	}
}
