package natsrelay

import (
	"context"

	"slices"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

// walk reads every line of room through r, page by page from the newest,
// and returns their IDs, oldest first.
func walk(t *testing.T, r *Relay, room string) []uint64 {
	t.Helper()
	ctx := context.Background()
	var ids []uint64
	var before tcpserver.LineKey
	for {
		page, more, err := r.Lines(ctx, room, before, 100)
		if err != nil {
			t.Fatalf("before %v: %v", before, err)
		}
		got := make([]uint64, 0, len(page))
		for _, ev := range page {
			got = append(got, ev.ID)
		}
		ids = append(got, ids...)
		if !more || len(page) == 0 {
			return ids
		}
		before = tcpserver.LineKey{Node: page[0].Node, ID: page[0].ID}
	}
}

// without is 1 to n but for the IDs gone.
func without(n int, gone ...uint64) []uint64 {
	var out []uint64
	for i := uint64(1); i <= uint64(n); i++ {
		if !slices.Contains(gone, i) {
			out = append(out, i)
		}
	}
	return out
}

// TestRemoveFromTheStream: Remove deletes lines from the history stream,
// those in the room's index and one far back that is not yet, and a key
// the room never had is no error; another node, whose index named the
// lines, reads across the holes without them, and what it removes goes
// for the first node too.
func TestRemoveFromTheStream(t *testing.T) {
	n := startNATS(t)
	a := startStore(t, n, Config{})
	b := startStore(t, n, Config{Prefix: a.cfg.Prefix})
	const lines = 3000
	fill(t, a, "lobby", lines)
	ctx := context.Background()
	if got := walk(t, b, "lobby"); len(got) != lines {
		t.Fatalf("b reads %d lines before the removal, want %d", len(got), lines)
	}
	// a's index holds only the last lines: line 5 is far back.
	if page, _, err := a.Lines(ctx, "lobby", tcpserver.LineKey{}, 20); err != nil || len(page) != 20 {
		t.Fatalf("the last 20: %d lines, %v", len(page), err)
	}
	if ri := a.index.get("lobby"); ri.find(tcpserver.LineKey{ID: 5}) >= 0 {
		t.Fatal("line 5 is indexed already: the test would not look back")
	}
	err := a.Remove(ctx, "lobby", tcpserver.LineKey{ID: 2990}, tcpserver.LineKey{ID: 5},
		tcpserver.LineKey{ID: 999999}, tcpserver.LineKey{Node: "elsewhere", ID: 7})
	if err != nil {
		t.Fatalf("Remove: %v", err)
	}
	want := without(lines, 5, 2990)
	if got := walk(t, a, "lobby"); !slices.Equal(got, want) {
		t.Fatalf("a reads %d lines after the removal, want %d without 5 and 2990", len(got), len(want))
	}
	if got := walk(t, b, "lobby"); !slices.Equal(got, want) {
		t.Fatalf("b reads %d lines after the removal, want %d without 5 and 2990", len(got), len(want))
	}
	// A page that begins at a hole: the line before it, and not the
	// lines before that, is what went.
	page, more, err := b.Lines(ctx, "lobby", tcpserver.LineKey{Node: a.cfg.NodeID, ID: 2991}, 3)
	if err != nil || !more || len(page) != 3 || page[2].ID != 2989 {
		t.Fatalf("before 2991 on b: %d lines, more %v, %v", len(page), more, err)
	}

	// b removes a line of a's (named as b knows it); a, whose index
	// names it, reads without it.
	if err := b.Remove(ctx, "lobby", tcpserver.LineKey{Node: a.cfg.NodeID, ID: 1500}); err != nil {
		t.Fatalf("Remove on b: %v", err)
	}
	if got := walk(t, a, "lobby"); !slices.Equal(got, without(lines, 5, 1500, 2990)) {
		t.Fatalf("a reads %d lines after b's removal, want %d", len(got), lines-3)
	}
	// Removing again is no error.
	if err := a.Remove(ctx, "lobby", tcpserver.LineKey{ID: 1500}); err != nil {
		t.Fatalf("Remove of a removed line: %v", err)
	}
}

// TestRemoveAPurge: a /purge's 1,000 lines leave the stream in one
// Remove, within the hub's timeout for it, and the room's other lines
// stay.
func TestRemoveAPurge(t *testing.T) {
	n := startNATS(t)
	r := startStore(t, n, Config{})
	fill(t, r, "lobby", 3000)
	var keys []tcpserver.LineKey
	var gone []uint64
	for id := uint64(2); id <= 2000; id += 2 {
		keys = append(keys, tcpserver.LineKey{ID: id})
		gone = append(gone, id)
	}
	start := time.Now()
	if err := r.Remove(context.Background(), "lobby", keys...); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	took := time.Since(start)
	t.Logf("1,000 lines removed in %v", took)
	if took > 5*time.Second {
		t.Errorf("1,000 lines removed in %v, more than the hub waits", took)
	}
	if got := walk(t, r, "lobby"); !slices.Equal(got, without(3000, gone...)) {
		t.Fatalf("%d lines left, want 2,000", len(got))
	}
	if err := r.Remove(context.Background(), "lobby", make([]tcpserver.LineKey, maxRemoveKeys+1)...); err == nil {
		t.Fatal("Remove of more than maxRemoveKeys lines: no error")
	}
}

// TestRemoveWhileTheLinkIsDown: a removal without NATS is an error, not
// a wait.
func TestRemoveWhileTheLinkIsDown(t *testing.T) {
	n := startNATS(t)
	r := startStore(t, n, Config{})
	fill(t, r, "lobby", 3)
	n.stop()
	waitFor(t, "the link to go", func() bool { _, err := r.current(); return err != nil })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Remove(ctx, "lobby", tcpserver.LineKey{ID: 1}); err == nil {
		t.Fatal("Remove with NATS down: no error")
	}
}

// TestReadAcrossAPurgeElsewhere: a node whose index named 1,000 lines
// that another node purged (in a row, and every other line) reads the
// room page by page without them and without an error.
func TestReadAcrossAPurgeElsewhere(t *testing.T) {
	n := startNATS(t)
	a := startStore(t, n, Config{})
	b := startStore(t, n, Config{Prefix: a.cfg.Prefix})
	fill(t, a, "lobby", 4000)
	if got := walk(t, b, "lobby"); len(got) != 4000 {
		t.Fatalf("b reads %d lines, want 4000", len(got))
	}
	var keys []tcpserver.LineKey
	var gone []uint64
	for id := uint64(1001); id <= 2000; id++ { // in a row
		keys, gone = append(keys, tcpserver.LineKey{ID: id}), append(gone, id)
	}
	for id := uint64(2002); id <= 4000; id += 2 { // every other line
		keys, gone = append(keys, tcpserver.LineKey{ID: id}), append(gone, id)
	}
	ctx := context.Background()
	for i := 0; i < len(keys); i += 1000 {
		if err := a.Remove(ctx, "lobby", keys[i:min(i+1000, len(keys))]...); err != nil {
			t.Fatal(err)
		}
	}
	if got := walk(t, b, "lobby"); !slices.Equal(got, without(4000, gone...)) {
		t.Fatalf("b reads %d lines after a's removal, want %d", len(got), 4000-len(gone))
	}
}
