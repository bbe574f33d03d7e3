package tcpserver

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Scrollback: /history [N] shows a member the N lines of its room before
// the oldest it has been shown, and moves that mark back, so that each
// /history goes further back.
const (
	historyPage    = 50  // lines a /history shows unless told
	historyMaxPage = 200 // the most lines one /history shows

	// historyBurst scrollbacks a member may ask for at once, and one
	// every historyEvery after that: each reads the store, which may be
	// on disk or across the network, so they have a rate of their own.
	historyBurst = 5
	historyEvery = 2 * time.Second

	// historyTimeout bounds one read of the store.
	historyTimeout = 2 * time.Second
)

// scrollback is what a member has been shown of its room's history; its
// Client's reader owns it.
type scrollback struct {
	from LineKey     // the oldest line shown; zero if none yet (from the newest)
	done bool        // the room has nothing older than what was shown
	rate tokenBucket // scrollbacks it may ask for now
}

// replayedLocked notes what the join replay showed c: its room's lines
// from lines[0] on (and more: the room has earlier ones). Called under the
// room's lock, in c's reader.
func (c *Client) replayedLocked(lines []*Event, more bool) {
	c.scroll.from, c.scroll.done = LineKey{}, false
	switch {
	case len(lines) > 0:
		c.scroll.from = lines[0].Key()
		c.scroll.done = !more
	}
	// With nothing replayed (an empty room, or --history 0) the first
	// /history reads from the newest line: the lines said since the
	// member came are its to scroll back through too.
}

// history answers /history [N [ID]]: the N lines (historyPage if not
// given) of the member's room before the line called ID, or, without it,
// before the oldest the member has been shown. The answer is a
// KindHistory event, to the member only, with whether there are earlier
// lines; with none, its text says so.
func (c *Client) history(arg string) {
	limit, before, err := parseHistoryArgs(arg)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	now := time.Now()
	rate := 1 / historyEvery.Seconds()
	if wait := c.scroll.rate.wait(now, rate, historyBurst); wait > 0 {
		c.errorf("too many /history: at most %d at once and one every %s; try again in %d s",
			historyBurst, historyEvery, int(math.Ceil(wait.Seconds())))
		return
	}
	c.scroll.rate.take(now, rate, historyBurst)

	h, r := c.hub, c.room
	mark := before.IsZero()
	var lines []*Event
	more := false
	if mark {
		before = c.scroll.from
	}
	if !mark || !c.scroll.done {
		ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
		lines, more, err = h.storeLines(ctx, r.name, before, limit)
		cancel()
		switch {
		case errors.Is(err, ErrUnknownLine) && mark:
			// The oldest line shown was forgotten since, and every
			// line before it with it.
			lines, more = nil, false
		case errors.Is(err, ErrUnknownLine):
			c.errorf("no line %s in %s", before, r.name)
			return
		case errors.Is(err, ErrLineFurtherBack):
			// The store read back as far as one /history may; it keeps
			// what it read, so the next looks further.
			c.errorf("line %s is not among the lines of %s read back so far; ask again to look further back", before, r.name)
			return
		case err != nil:
			h.logs.Log(slog.LevelWarn, "history reads failed", "history read failed", "room", r.name, "err", err)
			c.errorf("the history of %s cannot be read now; try again later", r.name)
			return
		}
	}
	if len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	if kept, cut := fitQueue(c.member, lines); cut {
		lines, more = kept, true
	}
	shown := lines[:0:0]
	for _, ev := range lines {
		if ev.line == nil {
			// A store's own copy (see storeLines): without its text
			// form a terminal's /history showed the times alone.
			ev.finish()
		}
		if ev.Room == r.name && (ev.Kind == KindMessage || ev.Kind == KindAction) {
			shown = append(shown, ev)
		}
	}
	if len(lines) > 0 {
		c.scroll.from = lines[0].Key()
	}
	if len(lines) > 0 || mark {
		c.scroll.done = !more
	}
	if l := c.ignored.Load(); l != nil && len(shown) > 0 {
		shown = l.visible(shown)
	}
	c.member.Send(h.stamp(&Event{Kind: KindHistory, Room: r.name, Events: shown, More: more}))
}

// parseHistoryArgs reads /history's arguments: a number of lines, 1 to
// historyMaxPage (historyPage if none), then the ID of the line to go
// back from, if any.
func parseHistoryArgs(arg string) (limit int, before LineKey, err error) {
	usage := errors.New("usage: /history [N]: the N lines before those you have seen, 1 to " +
		strconv.Itoa(historyMaxPage) + " (" + strconv.Itoa(historyPage) + " if not given)")
	fields := strings.Fields(arg)
	if len(fields) > 2 {
		return 0, LineKey{}, usage
	}
	limit = historyPage
	if len(fields) > 0 {
		n, err := strconv.Atoi(fields[0])
		if err != nil || n < 1 || n > historyMaxPage {
			return 0, LineKey{}, usage
		}
		limit = n
	}
	if len(fields) == 2 {
		if before, err = ParseLineKey(fields[1]); err != nil {
			return 0, LineKey{}, errors.New("/history: " + strconv.Quote(clipText(fields[1], 40)) + " is not a line id")
		}
	}
	return limit, before, nil
}

// clipText shortens s to at most n bytes, for a notice.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
