package main

import (
	"context"
	"fmt"
	"time"
)

// runCrowd: one big room, and senders saying long lines in it, each
// within its own flood limit, together far more than the room can carry
// to everyone. The server may refuse their lines (a room's budget), and
// must say so to the sender; what it lets through reaches every reader,
// soon, and no reader is cut off for it.
func runCrowd(ctx context.Context, e *scenarioEnv) (*scenarioResult, error) {
	r := &scenarioResult{Params: fmt.Sprintf("%d receivers, %d senders at %g lines/s of %d bytes, %s, TCP and WS",
		e.v.receivers, e.v.senders, e.v.rate, e.v.pad, e.v.duration)}
	e.baseline(ctx, r)
	stop := e.watchRSS(ctx)
	cfg := e.fanoutConfig(e.v.duration)
	cfg.refusable = true
	// The last lines may have been refused, and never come: the drain
	// would always wait its whole length. A line still on its way a
	// second after the last was sent is as late as the check allows; it
	// counts as refused, and, unanswered, fails the check that refusals
	// were.
	cfg.drain = time.Second
	f, err := runFanout(ctx, cfg, e.log)
	peak := stop()
	if err != nil {
		return nil, err
	}
	r.addFanout(f)
	offered := float64(f.Sent) * float64(f.Receivers) / e.v.duration.Seconds()
	delivered := float64(f.Deliveries) / e.v.duration.Seconds()
	r.check("every line said reached every reader", f.Lost == 0 && f.Duplicated == 0 && f.Reordered == 0,
		"%d sent, %d refused, %d delivered to %d receivers: %d lost, %d duplicated, %d reordered",
		f.Sent, f.Refused, f.Deliveries, f.Receivers, f.Lost, f.Duplicated, f.Reordered)
	r.check("no reader cut off", f.Disconnected == 0 && f.ConnectErrors == 0,
		"%d disconnected, %d connect errors", f.Disconnected, f.ConnectErrors)
	r.check("p99 under 1 s", f.LatP99us <= 1e6, "p50 %.1f ms, p99 %.1f ms, max %.1f ms; %.0f deliveries/s offered, %.0f delivered",
		f.LatP50us/1e3, f.LatP99us/1e3, f.LatMaxus/1e3, offered, delivered)
	r.check("every refused line answered", f.Refused <= f.ErrorLines,
		"%d lines refused, %d error lines to the senders", f.Refused, f.ErrorLines)
	if e.v.roomRate > 0 {
		// A second's budget at once, then the rate, for as long as the
		// server may have been taking lines: a busy server reads the
		// last ones late, up to the end of the drain.
		most := float64(e.v.roomRate) * (e.v.duration.Seconds() + cfg.drain.Seconds() + 1)
		r.check("room held to its budget", float64(f.Deliveries) <= most,
			"%d deliveries in %s, at most %.0f at %d a second", f.Deliveries, e.v.duration, most, e.v.roomRate)
	}
	e.checkRSS(r, peak)
	// Ten thousand connections' worth of memory goes back to the system
	// at the runtime's next collection, which an idle server may not make
	// for two minutes: more slack than the other scenarios'.
	e.settleBack(ctx, r, 64)
	return r, nil
}
