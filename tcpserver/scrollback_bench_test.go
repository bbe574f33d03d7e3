package tcpserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkScrollback reads a page of 50 lines before a line chosen at
// random in a room that keeps 1,000,000: from the memory store alone
// (Lines), and as a member's /history, made into its text and its JSON.
func BenchmarkScrollback(b *testing.B) {
	const kept = 1_000_000
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, HistoryKeep: kept, HistoryMemory: -1}, nil)
	c, err := h.Connect(jsonMember{}, ConnectInfo{Addr: "192.0.2.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]LineKey, kept)
	for i := range kept {
		ev := h.stampLine(&Event{Kind: KindMessage, Room: "lobby", From: "ada", Text: fmt.Sprintf("line %d of a room that talks a lot", i)})
		c.room.rememberLocked(ev) // the room's lock is not needed: nobody else is here
		keys[i] = ev.Key()
	}
	if n := len(keptLines(h, "lobby")); n != kept {
		b.Fatalf("the room keeps %d lines", n)
	}
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			before := keys[50+rand.IntN(kept-50)]
			lines, more, err := h.store.Lines(context.Background(), "lobby", before, 50)
			if err != nil || len(lines) != 50 || !more && before != keys[50] {
				b.Fatalf("%d lines, more %v, %v", len(lines), more, err)
			}
		}
	})
	b.Run("command", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.scroll.rate.tokens = historyBurst // not the rate's turn here
			c.Handle([]byte("/history 50 " + keys[50+rand.IntN(kept-50)].String()))
		}
	})
}
