package tcpserver

import (
	"bytes"
	"fmt"
	"time"
)

// Flood control works as Ergo's "fakelag" does. A member may send Burst
// lines at once and Rate a second after that; a line over the rate is not
// refused but waits its turn in the member's backlog, and is handled when
// the rate allows, in order with everything else the member sent. While
// lines wait, the member's reader reads no more of its connection: what
// the member sends meanwhile stays in the kernel's buffers, and then TCP's
// flow control slows the sender down. So lines that reach the server
// together, because the server or the network fell behind, are all said,
// at the rate; so is a paste into a terminal.
//
// Only what does not fit in the backlog (HubConfig.Backlog lines, and
// backlogBytes) is refused, and the member is told, once per read, how
// many lines were not sent. A member that goes on sending more than can
// wait is cut off: refused lines count as strikes, which leak away at
// half the rate, and more strikes than the backlog holds is a flood.
//
// Every line costs a token before it is cleaned: a line that cleans to
// nothing (empty, NUL bytes, invisible characters) and what is not a line
// at all (a line too long, malformed JSON) cost what a line costs, so that
// nothing can be sent faster than lines can.

// reasonFlooding is why a member who floods is cut off, for its leave
// notice.
const reasonFlooding = "flooding"

// backlogBytes bounds the bytes of the lines one member may have waiting,
// besides HubConfig.Backlog: a flood of long lines holds at most this
// much of the server's memory per member. One line may always wait,
// whatever its length.
const backlogBytes = 16 << 10

// A backlog is what a member sent that waits for the rate, oldest first.
type backlog struct {
	items   []waiting
	head    int // items before head are done with
	bytes   int
	refused int // lines refused since the member was last told
}

// waiting is one line of a backlog, or something that was not a line.
type waiting struct {
	line    []byte // a copy of the line
	garbled string // if not "": not a line; the member is told this instead (see Client.Garbled)
}

func (q *backlog) len() int { return len(q.items) - q.head }

func (q *backlog) push(w waiting) {
	q.items = append(q.items, w)
	q.bytes += len(w.line)
}

func (q *backlog) pop() waiting {
	w := q.items[q.head]
	q.items[q.head] = waiting{}
	q.head++
	q.bytes -= len(w.line)
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return w
}

// take puts one line (or, with garbled set, something that was not a
// line) through flood control: handled now if nothing waits and the rate
// allows, else queued behind what waits, or refused if the backlog is
// full. line is copied if it has to wait.
func (c *Client) take(line []byte, garbled string) {
	if c.left || c.reason != "" {
		return
	}
	cfg := &c.hub.cfg
	if c.backlog == nil && (cfg.Rate < 0 || c.bucket.take(time.Now(), cfg.Rate, float64(cfg.Burst))) {
		c.act(line, garbled)
		return
	}
	q := c.backlog
	if q == nil {
		q = new(backlog)
		c.backlog = q
	}
	if q.len() >= cfg.Backlog || q.len() > 0 && q.bytes+len(line) > backlogBytes {
		c.refuse(q, time.Now())
		return
	}
	q.push(waiting{line: bytes.Clone(line), garbled: garbled})
}

// Waiting reports whether lines the member sent wait for the rate (or a
// refusal is yet to be told): the transport must then call Resume before
// it reads any more. Reader only.
func (c *Client) Waiting() bool { return c.backlog != nil }

// Refusing reports whether lines the member sent have been refused, the
// backlog being full, since it was last told (see Resume). A transport
// may then read on, without waiting, what has already arrived, as the TCP
// server reads on up to 32 KiB: a flood is then measured whole, and its
// sender cut off at once, rather than at its next read, once the lines
// that wait have gone. Reader only.
func (c *Client) Refusing() bool { return c.backlog != nil && c.backlog.refused > 0 }

// Resume handles the waiting lines that the rate allows now, in order,
// and tells the member how many of its lines were refused since it was
// last told, if any. It reports how long until the next waiting line may
// be handled, or 0 when none waits: then the transport may read again.
// A transport calls it after it has handed over what one read brought,
// and again, without reading, when the time it reported has passed.
// Reader only.
func (c *Client) Resume() time.Duration {
	q := c.backlog
	if q == nil {
		return 0
	}
	cfg := &c.hub.cfg
	now := time.Now()
	for q.len() > 0 && !c.left && c.reason == "" {
		if cfg.Rate >= 0 && !c.bucket.take(now, cfg.Rate, float64(cfg.Burst)) {
			break
		}
		w := q.pop()
		c.act(w.line, w.garbled)
	}
	if c.left || c.reason != "" {
		c.backlog = nil // cut off, or gone: what waits is dropped
		return 0
	}
	if q.refused > 0 {
		c.errorf("%s", c.refusedNotice(q.refused))
		q.refused = 0
	}
	if q.len() == 0 {
		c.backlog = nil
		return 0
	}
	return c.bucket.wait(now, cfg.Rate, float64(cfg.Burst))
}

func (c *Client) refusedNotice(n int) string {
	cfg := &c.hub.cfg
	lines := "lines were"
	if n == 1 {
		lines = "line was"
	}
	if cfg.Backlog <= 0 {
		return fmt.Sprintf("slow down: %d %s not sent (at most %g lines a second)", n, lines, cfg.Rate)
	}
	return fmt.Sprintf("slow down: %d %s not sent (at most %g lines a second, and %d waiting their turn)", n, lines, cfg.Rate, cfg.Backlog)
}

// refuse refuses a line that found the backlog full, and cuts the member
// off if it has been refused too much: strikes leak away at half the
// allowed rate, so a member that keeps sending twice the rate or more
// fills up and is cut off, while one paste too many is only trimmed.
func (c *Client) refuse(q *backlog, now time.Time) {
	cfg := &c.hub.cfg
	c.hub.refused.Add(1)
	q.refused++
	if !c.strikeAt.IsZero() {
		c.strikes = max(0, c.strikes-now.Sub(c.strikeAt).Seconds()*cfg.Rate/2)
	}
	c.strikeAt = now
	c.strikes++
	limit := float64(cfg.Backlog)
	if cfg.Backlog <= 0 {
		limit = float64(3 * cfg.Burst) // nothing waits: a few bursts' worth
	}
	if c.strikes > limit {
		c.hub.floodKicks.Add(1)
		c.reason = reasonFlooding
		c.backlog = nil
		c.member.Close(fmt.Sprintf("disconnected: flooding (more than %g lines a second)", cfg.Rate))
	}
}
