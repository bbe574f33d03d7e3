package main

import (
	"context"
	"sync"
	"time"
)

// every calls fn every d, in a goroutine of its own, until ctx ends or the
// returned stop is called; stop waits for it, and may be called more than
// once. With d <= 0 it calls nothing. The progress lines of hold, fanout
// and cluster come from here.
func every(ctx context.Context, d time.Duration, fn func()) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(d)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fn()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
