package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	var n atomic.Int64
	stop := every(context.Background(), time.Millisecond, func() { n.Add(1) })
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("called %d times in 5 s", n.Load())
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	stop() // twice is fine
	after := n.Load()
	time.Sleep(20 * time.Millisecond)
	if n.Load() != after {
		t.Fatal("called after stop returned")
	}

	var never atomic.Int64
	every(context.Background(), 0, func() { never.Add(1) })()
	ctx, cancel := context.WithCancel(context.Background())
	stop = every(ctx, time.Hour, func() { never.Add(1) })
	cancel()
	stop() // returns once the canceled loop has ended, not in an hour
	if k := never.Load(); k != 0 {
		t.Fatalf("called %d times with no interval or a canceled context", k)
	}
}
