package main

import (
	"context"
	"fmt"
)

// runSoak: the healthy population chats for the whole --duration.
func runSoak(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	r := &scenarioResult{Params: fmt.Sprintf("%d receivers, %d senders at %g lines/s, %s, TCP and WS",
		e.v.receivers, e.v.senders, e.v.rate, e.v.duration)}
	e.baseline(ctx, r)
	stop := e.watchRSS(ctx)
	f, err := e.fanout(ctx, e.v.duration)
	peak := stop()
	if err != nil {
		return nil, err
	}
	r.addFanout(f)
	checkHealthy(r, f)
	e.checkRSS(r, peak)
	e.settleBack(ctx, r, 32)
	return r, nil
}

// checkHealthy checks that healthy clients got every line once, in order.
func checkHealthy(r *scenarioResult, f *result) {
	r.check("healthy clients lost nothing", f.Lost == 0 && f.Deliveries == int64(f.Receivers)*f.Sent,
		"%d sent to %d receivers, %d delivered, %d lost", f.Sent, f.Receivers, f.Deliveries, f.Lost)
	r.check("no duplicates, in order per sender", f.Duplicated == 0 && f.Reordered == 0,
		"%d duplicated, %d reordered", f.Duplicated, f.Reordered)
	r.check("healthy clients stayed connected", f.Disconnected == 0 && f.ConnectErrors == 0,
		"%d disconnected, %d connect errors", f.Disconnected, f.ConnectErrors)
}
