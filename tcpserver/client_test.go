package tcpserver

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// count returns how many of lines contain s.
func count(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// Thirty renames at once make three notices, not thirty: the rest are
// refused with an error saying when to try again, and the member, who
// only renamed too often, is not cut off for it.
func TestNameAndRoomChangesHaveTheirOwnRate(t *testing.T) {
	// Lines without limit, and few strikes allowed (3*Burst): were a
	// refused change counted as a refused line, mallory would be cut off.
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, Burst: 2, ChangeBurst: 3, ChangeEvery: time.Hour}, nil)
	mallory, mm := connect(t, h, "mallory")
	_, bm := connect(t, h, "bob")
	mm.lines()
	bm.lines()

	for i := range 30 {
		mallory.Handle(fmt.Appendf(nil, "/nick m%d", i))
	}
	got := bm.lines()
	if n := count(got, "is now known as"); n != 3 || len(got) != 3 {
		t.Fatalf("bob saw %d name changes in %q, want 3", n, got)
	}
	mine := mm.lines()
	if n := count(mine, "! too many name and room changes: at most 3 at once and one every 1h0m0s; try again in 3600 s"); n != 27 {
		t.Fatalf("mallory got %d refusals: %q", n, mine)
	}
	// /join draws on the same allowance.
	mallory.Handle([]byte("/join elsewhere"))
	if got := mm.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "! too many name and room changes") {
		t.Fatalf("mallory's /join: %q", got)
	}
	// A name that could never be had says so, rather than "try again".
	mallory.Handle([]byte("/nick no spaces"))
	if got := mm.lines(); len(got) != 1 || !strings.Contains(got[0], "is not valid") {
		t.Fatalf("mallory's /nick no spaces: %q", got)
	}
	mallory.Handle([]byte("still here"))
	if got := bm.lines(); len(got) != 1 || got[0] != "<m2> still here" {
		t.Fatalf("bob got %q after the renames", got)
	}
	mm.mu.Lock()
	closed := mm.closed
	mm.mu.Unlock()
	if st := h.Stats(); closed != "" || st.FloodKicks != 0 || st.Refused != 0 {
		t.Fatalf("mallory closed %q; %d flood kicks, %d lines refused", closed, st.FloodKicks, st.Refused)
	}
}

// Only a change made is counted: a name found taken, a room one is
// already in, or a usage error costs nothing. Joins count like renames.
func TestOnlyChangesMadeCount(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: 3, ChangeEvery: time.Hour}, nil)
	connect(t, h, "alice")
	c, m := connect(t, h, "")
	for range 5 {
		c.Handle([]byte("/nick alice"))
		c.Handle([]byte("/nick aIice"))
		c.Handle([]byte("/nick r00t"))
		c.Handle([]byte("/join lobby"))
		c.Handle([]byte("/nick"))
	}
	m.lines()
	for _, l := range []string{"/join a", "/nick bea", "/join b", "/join c", "/nick dee"} {
		c.Handle([]byte(l))
	}
	got := m.lines()
	if n := count(got, "You are now in "); n != 2 {
		t.Fatalf("%d room changes in %q, want 2", n, got)
	}
	if n := count(got, "is now known as bea"); n != 1 {
		t.Fatalf("no rename to bea in %q", got)
	}
	if n := count(got, "! too many name and room changes"); n != 2 {
		t.Fatalf("%d refusals in %q, want 2 (/join c and /nick dee)", n, got)
	}
}

// A change still counts as a line against flood control, before its own
// rate: over the line rate it waits its turn like a line; with no room to
// wait, the line rate refuses it first.
func TestChangesCountAsLines(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: 0.001, Burst: 2, ChangeBurst: 10}, nil)
	c, m := connect(t, h, "")
	m.lines()
	for i := range 3 {
		c.Handle(fmt.Appendf(nil, "/nick n%d", i))
	}
	wait := c.Resume()
	if got := m.lines(); count(got, "is now known as") != 2 || len(got) != 2 || c.Name() != "n1" {
		t.Fatalf("got %q (name %s), want two renames and the third waiting", got, c.Name())
	}
	if !c.Waiting() || wait < 900*time.Second {
		t.Fatalf("the third waits %v (waiting %v), want its turn in about 1000 s", wait, c.Waiting())
	}

	h = NewHub(HubConfig{MaxPerIP: -1, Rate: 0.001, Burst: 2, Backlog: -1, ChangeBurst: 10}, nil)
	c, m = connect(t, h, "")
	m.lines()
	for i := range 3 {
		c.Handle(fmt.Appendf(nil, "/nick n%d", i))
	}
	if wait := c.Resume(); wait != 0 || c.Waiting() {
		t.Fatalf("nothing may wait, yet Resume says %v", wait)
	}
	got := m.lines()
	if n := count(got, "is now known as"); n != 2 || count(got, "! slow down: 1 line was not sent") != 1 {
		t.Fatalf("got %q, want two renames and one slow down", got)
	}
}

// The allowance comes back at one change every ChangeEvery.
func TestChangesComeBack(t *testing.T) {
	every := 100 * time.Millisecond
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, ChangeBurst: 1, ChangeEvery: every}, nil)
	c, m := connect(t, h, "")
	start := time.Now()
	c.Handle([]byte("/nick first"))
	c.Handle([]byte("/nick second"))
	if got := m.lines(); count(got, "known as first") != 1 || count(got, "try again in 1 s") != 1 {
		t.Fatalf("got %q", got)
	}
	for deadline := time.Now().Add(5 * time.Second); c.Name() != "second"; {
		if time.Now().After(deadline) {
			t.Fatal("no change allowed again within 5 s")
		}
		time.Sleep(every / 10)
		c.Handle([]byte("/nick second"))
	}
	if took := time.Since(start); took < every {
		t.Fatalf("allowed again after %v, before %v", took, every)
	}
}

func TestTokenBucketWait(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := tokenBucket{tokens: 2}
	for i, want := range []time.Duration{0, 0, 5 * time.Second} {
		if got := b.wait(t0, 0.2, 2); got != want {
			t.Fatalf("wait %d = %v, want %v", i, got, want)
		}
		b.take(t0, 0.2, 2)
	}
	if got := b.wait(t0.Add(2*time.Second), 0.2, 2); got != 3*time.Second {
		t.Fatalf("wait 2 s later = %v, want 3s", got)
	}
	if got := b.wait(t0.Add(5*time.Second), 0.2, 2); got != 0 {
		t.Fatalf("wait 5 s later = %v, want 0", got)
	}
	if got := b.wait(t0.Add(time.Hour), 0.2, 2); got != 0 || b.tokens != 0 {
		t.Fatalf("wait an hour later = %v (tokens %v): wait must take nothing", got, b.tokens)
	}
}
