package tcpserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// Private messages are what others choose to send one member, and a
// member cannot slow them down: a hundred connections from one address,
// each within its own rate, once gave one member a thousand 4 KB lines a
// second and had it cut off as too slow. So what one member is sent
// privately has a rate of its own, all senders together
// (HubConfig.PrivateRate) and from any one address (PrivateRatePerIP),
// and a private message never takes more than half the member's queue
// (see [Outbox.TrySend]). What is over is dropped and its sender told; the
// member is never cut off for it.

// maxInboxSources is the most sending addresses a member's inbox keeps a
// rate for. Past that the addresses whose allowance is whole again are
// forgotten (they are as good as new), then the one heard from longest
// ago: the rate of all senders together still holds whatever is forgotten.
const maxInboxSources = 64

// inbox is the rate of the private messages one member is sent. Senders'
// readers use it at once, so it has a lock of its own.
type inbox struct {
	mu   sync.Mutex
	all  tokenBucket
	from map[string]*tokenBucket // by sending address (see sourceKey)
}

// Why a private message was not delivered, told to its sender (wrapped
// with who it was for).
var (
	errPrivateRate  = errors.New("is being sent too many private messages")
	errPrivatePerIP = errors.New("too many private messages from your address")
	errPrivateFull  = errors.New("has too much waiting to be read")
)

// take takes one message from source off the allowances, both of them
// or neither. If either is spent it says which, and how long until it
// is not.
func (in *inbox) take(cfg *HubConfig, source string, now time.Time) (time.Duration, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	allBurst, fromBurst := float64(cfg.PrivateBurst), float64(cfg.PrivateBurstPerIP)
	all := cfg.PrivateRate >= 0
	from := cfg.PrivateRatePerIP >= 0 && source != ""
	if all && in.all.last.IsZero() {
		in.all.tokens = allBurst
	}
	var fb *tokenBucket
	if from {
		fb = in.from[source]
		if fb == nil {
			in.forget(cfg, now)
			fb = &tokenBucket{tokens: fromBurst}
			if in.from == nil {
				in.from = make(map[string]*tokenBucket)
			}
			in.from[source] = fb
		}
		if wait := fb.wait(now, cfg.PrivateRatePerIP, fromBurst); wait > 0 {
			return wait, errPrivatePerIP
		}
	}
	if all {
		if wait := in.all.wait(now, cfg.PrivateRate, allBurst); wait > 0 {
			return wait, errPrivateRate
		}
		in.all.take(now, cfg.PrivateRate, allBurst)
	}
	if from {
		fb.take(now, cfg.PrivateRatePerIP, fromBurst)
	}
	return 0, nil
}

// forget makes room in the map of sending addresses for one more.
func (in *inbox) forget(cfg *HubConfig, now time.Time) {
	if len(in.from) < maxInboxSources {
		return
	}
	var oldest string
	var oldestAt time.Time
	for src, b := range in.from {
		if whole(b, now, cfg.PrivateRatePerIP, float64(cfg.PrivateBurstPerIP)) {
			delete(in.from, src)
			continue
		}
		if oldest == "" || b.last.Before(oldestAt) {
			oldest, oldestAt = src, b.last
		}
	}
	if len(in.from) >= maxInboxSources {
		delete(in.from, oldest)
	}
}

// whole reports whether b has its whole burst again at now: it is as
// good as a new one.
func whole(b *tokenBucket, now time.Time, rate, burst float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// private sends a private message: "/msg NAME TEXT".
func (c *Client) private(arg string) {
	to, text, _ := strings.Cut(arg, " ")
	text = strings.TrimSpace(text)
	if to == "" || text == "" {
		c.errorf("usage: /msg NAME TEXT")
		return
	}
	if !c.hub.speakCheck(c) || !c.hub.mod.mayMessage(c) {
		return
	}
	h := c.hub
	target := h.lookup(to)
	if target == nil && h.cluster != nil && ValidNick(to) == nil {
		ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
		name, err := h.cluster.Private(ctx, c.Name(), to, text)
		cancel()
		switch {
		case err == nil:
			c.member.Send(h.stamp(&Event{Kind: KindPrivate, From: c.Name(), To: name, Text: text, Echo: true}))
			h.deliveries.Add(1)
			return
		case !errors.Is(err, ErrNoSuchMember):
			c.errorf("cannot reach %s on another node: %v", to, err)
			return
		}
	}
	if target == nil {
		c.errorf("no one called %s is here", to)
		return
	}
	ev := h.stamp(&Event{Kind: KindPrivate, From: c.Name(), To: target.Name(), Text: text, fromID: c.id})
	if err := target.offerPrivate(ev, c.source); err != nil {
		c.errorf("%v", err)
		return
	}
	c.member.Send(h.stamp(&Event{Kind: KindPrivate, From: c.Name(), To: target.Name(), Text: text, Echo: true}))
	h.deliveries.Add(1)
}

// offerPrivate hands c a private message from the address source ("" for
// another node's member), within c's private-message rate and half its
// queue, or says why not. A message from someone c ignores is dropped
// without a word, as if delivered: the sender is not told it is ignored,
// and costs c none of its allowance.
func (c *Client) offerPrivate(ev *Event, source string) error {
	h := c.hub
	if l := c.ignored.Load(); l != nil && l.hides(ev) {
		return nil
	}
	wait, err := c.inbox.take(&h.cfg, source, time.Now())
	if err != nil {
		secs := int(math.Ceil(wait.Seconds()))
		if errors.Is(err, errPrivatePerIP) {
			h.privateRefusedPerIP.Add(1)
			return fmt.Errorf("%w to %s; it was not sent, try again in %d s", err, ev.To, secs)
		}
		h.privateRefusedRate.Add(1)
		return fmt.Errorf("%s %w; yours was not sent, try again in %d s", ev.To, err, secs)
	}
	if !trySend(c.member, ev) {
		h.privateRefusedFull.Add(1)
		return fmt.Errorf("%s %w; yours was not sent", ev.To, errPrivateFull)
	}
	h.deliveries.Add(1)
	return nil
}

// A trySender is a [Member] that can turn an event away instead of
// taking it and cutting itself off when it has too much to write; an
// [Outbox] can (see [Outbox.TrySend]).
type trySender interface {
	TrySend(ev *Event) bool
}

// trySend queues ev for m if m has room for what others choose to send it,
// and reports whether it did. A Member that cannot turn events away takes
// it as any other.
func trySend(m Member, ev *Event) bool {
	if ts, ok := m.(trySender); ok {
		return ts.TrySend(ev)
	}
	m.Send(ev)
	return true
}
