package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// connectPlan paces how a run opens its connections.
type connectPlan struct {
	rate     float64 // connections started per second; 0 = as fast as parallel allows
	parallel int     // dials in flight at once
}

// connectResult sums up a connect phase.
type connectResult struct {
	ok       int
	errors   int
	firstErr error
	elapsed  time.Duration
}

// connectAll calls dial for slots 0..n-1, paced by plan, and returns when
// every dial has returned or ctx ends (then the remaining slots are not
// tried). dial is called from several goroutines at once; connectAll waits
// for all of them.
func connectAll(ctx context.Context, n int, plan connectPlan, dial func(ctx context.Context, slot int) error) connectResult {
	start := time.Now()
	var (
		wg       sync.WaitGroup
		ok, errs atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	sem := make(chan struct{}, max(plan.parallel, 1))
	pace := time.NewTimer(time.Hour) // re-armed before each wait
	defer pace.Stop()
dispatch:
	for slot := range n {
		if plan.rate > 0 {
			due := start.Add(time.Duration(float64(slot) / plan.rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				pace.Reset(wait)
				select {
				case <-pace.C:
				case <-ctx.Done():
					break dispatch
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := dial(ctx, slot); err != nil {
				errs.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			ok.Add(1)
		})
	}
	wg.Wait()
	return connectResult{ok: int(ok.Load()), errors: int(errs.Load()), firstErr: firstErr, elapsed: time.Since(start)}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
