package bridge

import (
	"sync"
	"time"
)

// A keepalive pings every WebSocket member of a server from one goroutine
// and drops the ones that stop answering, so that an idle member costs
// nothing between pings: no goroutine, no timer of its own.
//
// The library's Ping would do it with a goroutine per member, waiting for
// its pong: with thousands of members joined together, thousands of them
// at once every PingInterval, each with a context, a timer and a channel.
// Instead a ping frame is gathered or written without waiting (see
// wireConn.tryPing), and PongTimeout later the member is checked: if
// anything at all was read from the client since the ping (its pong, a
// line, its own ping), it is alive. Nothing waits for the pong itself; the
// reader takes it in, parked or not, as any frame.
//
// Members wait their turn in two lists, each in the order its entries are
// due: an entry is due a fixed time after it was added (pingGap in toPing,
// PongTimeout in toCheck), so adding at the tail keeps each list in order
// and a turn is the heads that are due. A member goes round both: it joins
// toCheck as if just pinged, with nothing to check, and so does one whose
// ping could not go out at once (see wsConn.sendPing); a member is pinged
// every PingInterval, or every PongTimeout if that is longer. A member that leaves is not taken
// out: its entry is dropped when its turn comes. The goroutine runs while
// there are members, and ends when the last one has left.
type keepalive struct {
	every time.Duration // PingInterval
	wait  time.Duration // PongTimeout
	slack time.Duration // entries due this soon are done in the same turn

	mu      sync.Mutex
	members int      // members kept alive
	toPing  dueQueue // due a ping pingGap after they were added
	toCheck dueQueue // pinged, due a check wait after it
	running bool     // the goroutine runs
	kick    chan struct{}
}

func newKeepalive(every, wait time.Duration) *keepalive {
	return &keepalive{
		every: every,
		wait:  wait,
		slack: min(every, wait) / 32,
		kick:  make(chan struct{}, 1),
	}
}

// pingGap is how long a member waits for its next ping once its last
// one was checked: PingInterval from one ping to the next, of which
// PongTimeout was spent waiting for the answer. With a PongTimeout as
// long as the interval or longer, the next ping goes out as soon as the
// last one is checked.
func (k *keepalive) pingGap() time.Duration { return max(k.every-k.wait, 0) }

// add starts keeping c alive. It goes in toCheck as if pinged, with no
// ping sent, so that its first ping is due PingInterval from now.
func (k *keepalive) add(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.members++
	k.pushLocked(&k.toCheck, c, k.wait)
	if !k.running {
		k.running = true
		go k.run()
	}
}

// remove stops counting c, which has left; the goroutine ends with the
// last member.
func (k *keepalive) remove(*wsConn) {
	k.mu.Lock()
	k.members--
	last := k.members == 0
	k.mu.Unlock()
	if last {
		k.wake()
	}
}

func (k *keepalive) wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// pushLocked adds c at q's tail, due d from now; the goroutine hears of
// it if q was empty, as its timer may be set for later.
func (k *keepalive) pushLocked(q *dueQueue, c *wsConn, d time.Duration) {
	q.push(dueEntry{c: c, due: time.Now().Add(d)})
	if q.len() == 1 {
		k.wake()
	}
}

// run takes the members whose turn it is, pings or checks them, and
// sleeps until the next turn, until no member is left.
func (k *keepalive) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var ping, check []*wsConn
	for {
		k.mu.Lock()
		if k.members == 0 {
			k.toPing.reset()
			k.toCheck.reset()
			k.running = false
			k.mu.Unlock()
			return
		}
		now := time.Now()
		ping = k.toPing.popDue(now.Add(k.slack), ping[:0])
		check = k.toCheck.popDue(now.Add(k.slack), check[:0])
		next, ok := k.toPing.nextDue()
		if due, okc := k.toCheck.nextDue(); okc && (!ok || due.Before(next)) {
			next, ok = due, true
		}
		k.mu.Unlock()

		if len(ping) > 0 || len(check) > 0 {
			k.turn(ping, check)
			clear(ping)
			clear(check)
			continue // the lists changed: look again
		}
		d := time.Hour
		if ok {
			d = max(next.Sub(now), 0)
		}
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-k.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// turn pings the members of ping and checks those of check, outside the
// lock; each goes back in its next list.
func (k *keepalive) turn(ping, check []*wsConn) {
	for _, c := range ping {
		if c.ended() {
			continue
		}
		c.sendPing()
		k.mu.Lock()
		k.pushLocked(&k.toCheck, c, k.wait)
		k.mu.Unlock()
	}
	for _, c := range check {
		if c.ended() {
			continue
		}
		if !c.answered() {
			c.pingTimeout()
			continue
		}
		k.mu.Lock()
		k.pushLocked(&k.toPing, c, k.pingGap())
		k.mu.Unlock()
	}
}

// A dueEntry is a member due its turn at due.
type dueEntry struct {
	c   *wsConn
	due time.Time
}

// A dueQueue is a list of entries in the order they are due: a slice
// with its head at a moving index, compacted as the head passes half of
// it.
type dueQueue struct {
	q    []dueEntry
	head int
}

func (q *dueQueue) push(e dueEntry) { q.q = append(q.q, e) }

func (q *dueQueue) len() int { return len(q.q) - q.head }

func (q *dueQueue) nextDue() (time.Time, bool) {
	if q.len() == 0 {
		return time.Time{}, false
	}
	return q.q[q.head].due, true
}

// popDue appends to out the members of the entries due by t, taking them
// off the list.
func (q *dueQueue) popDue(t time.Time, out []*wsConn) []*wsConn {
	for q.head < len(q.q) && !q.q[q.head].due.After(t) {
		out = append(out, q.q[q.head].c)
		q.q[q.head] = dueEntry{}
		q.head++
	}
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	} else if q.head > len(q.q)/2 {
		n := copy(q.q, q.q[q.head:])
		clear(q.q[n:])
		q.q, q.head = q.q[:n], 0
	}
	return out
}

func (q *dueQueue) reset() {
	clear(q.q)
	q.q, q.head = nil, 0
}
