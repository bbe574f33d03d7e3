package natsrelay

import (
	"sync"
	"time"
)

// A sealed message proves who made it, not when: anyone who can read NATS
// can capture one and publish it again. So every message carries the time
// it was made, and a receiver believes none made more than the window
// before or after its own clock (which also allows for clocks that
// disagree by less than that), and none it has seen before. Since nothing
// older than the window is believed, a receiver only needs to remember
// what it saw for two windows.

// inWindow reports whether a message made at sent (Unix nanoseconds) may be
// believed at now.
func inWindow(sent int64, now time.Time, window time.Duration) bool {
	d := now.Sub(timeOf(sent))
	return d <= window && d >= -window
}

// seqBits is how far behind the newest sequence number of a session a
// message may arrive and still be taken: NATS keeps one publisher's
// messages in order, so this only absorbs a reordering by a NATS cluster.
const seqBits = 64

// maxSessions bounds the sessions a replayGuard remembers. Only a sealed
// message starts one, so only a node (which holds the secret) can fill it;
// when full, new sessions are refused rather than old ones forgotten,
// which would let their messages be replayed.
const maxSessions = 4096

// A replayGuard drops room events seen before. Each node numbers the events
// it publishes, in one sequence per session (a node's run: a node that
// restarts starts a new one), and the guard keeps, per session, the
// highest number seen and which of the seqBits before it were seen too.
// It is used by one goroutine.
type replayGuard struct {
	window    time.Duration
	sessions  map[sessionKey]*seqWindow
	lastSweep time.Time
}

type sessionKey struct{ node, sess string }

type seqWindow struct {
	top  uint64    // the highest sequence number seen
	seen uint64    // bit i: top-i was seen
	last time.Time // when a message of the session was last taken
}

func newReplayGuard(window time.Duration) *replayGuard {
	return &replayGuard{window: window, sessions: make(map[sessionKey]*seqWindow)}
}

// fresh reports whether the event numbered seq in node's session sess,
// made at sent, is to be believed, and if so remembers it.
func (g *replayGuard) fresh(node, sess string, seq uint64, sent int64, now time.Time) bool {
	if !inWindow(sent, now, g.window) || seq == 0 {
		return false
	}
	if now.Sub(g.lastSweep) > g.window {
		g.sweep(now)
	}
	w := g.sessions[sessionKey{node, sess}]
	if w == nil {
		if len(g.sessions) >= maxSessions {
			return false
		}
		w = &seqWindow{}
		g.sessions[sessionKey{node, sess}] = w
	}
	switch {
	case seq > w.top:
		if shift := seq - w.top; shift < seqBits {
			w.seen = w.seen<<shift | 1
		} else {
			w.seen = 1
		}
		w.top = seq
	case w.top-seq >= seqBits:
		return false
	default:
		bit := uint64(1) << (w.top - seq)
		if w.seen&bit != 0 {
			return false
		}
		w.seen |= bit
	}
	w.last = now
	return true
}

// sweep forgets the sessions that sent nothing for two windows: whatever
// they sent is now too old to be believed anyway.
func (g *replayGuard) sweep(now time.Time) {
	g.lastSweep = now
	for k, w := range g.sessions {
		if now.Sub(w.last) > 2*g.window {
			delete(g.sessions, k)
		}
	}
}

// maxNonces bounds the private messages a node remembers per generation
// (two windows). Beyond it private messages are refused, not delivered
// twice: the sender is told the member is not there.
const maxNonces = 1 << 16

// A nonceCache drops private messages seen before, by their nonce. It
// keeps two generations of nonces, each two windows long, so that a nonce
// is remembered for at least two windows. Safe for concurrent use.
type nonceCache struct {
	window time.Duration

	mu        sync.Mutex
	cur, prev map[[nonceLen]byte]struct{}
	since     time.Time // when cur was started
}

func newNonceCache(window time.Duration) *nonceCache {
	return &nonceCache{window: window, cur: make(map[[nonceLen]byte]struct{})}
}

// first reports whether nonce is new, and if so remembers it.
func (c *nonceCache) first(nonce [nonceLen]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.since) >= 2*c.window {
		c.prev, c.cur, c.since = c.cur, make(map[[nonceLen]byte]struct{}), now
	}
	if _, ok := c.cur[nonce]; ok {
		return false
	}
	if _, ok := c.prev[nonce]; ok {
		return false
	}
	if len(c.cur) >= maxNonces {
		return false
	}
	c.cur[nonce] = struct{}{}
	return true
}

// timeOf returns the time of a message, sent in Unix nanoseconds.
func timeOf(sent int64) time.Time { return time.Unix(0, sent) }
