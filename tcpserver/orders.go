package tcpserver

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Across nodes. An operator may /kick or /ban by name a member who is on
// another node: the operator's node cannot reach it, so it leaves an
// order in the [StateStore], which every node watches; the node the
// member is on carries it out (a kick disconnects it, a ban by name bans
// its address, which every node then applies as any ban) and removes the
// order. An order nobody carries out within orderTTL (the member left,
// or the name was wrong) is ignored from then on. The member's leave,
// relayed like any, is what the operator sees of it.

// bucketOrders holds orders by orderKey; each value is an orderRecord's
// JSON.
const bucketOrders = "orders"

// orderTTL is how long an order may wait for its member's node.
const orderTTL = 30 * time.Second

// orderRecord is a kick or a ban of the member called Name, wherever it
// is, asked by By from ByIP.
type orderRecord struct {
	Action   string        `json:"action"` // "kick" or "ban"
	Name     string        `json:"name"`
	By       string        `json:"by"`
	ByIP     string        `json:"by_ip,omitempty"` // a ban may not cover the operator's own address
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration,omitempty"` // of a ban; 0: permanent
	Until    time.Time     `json:"until"`              // the order is ignored after
}

// remoteTarget reports whether name is to be reached through an order:
// nobody here has it, and this node is one of a cluster.
func (m *Moderation) remoteTarget(name string) bool {
	return m.hub.cluster != nil && ValidNick(name) == nil && m.hub.lookup(name) == nil
}

// order leaves rec for the node the member is on.
func (m *Moderation) order(c *Client, rec orderRecord) {
	now := time.Now()
	rec.By, rec.ByIP, rec.Until = c.Name(), c.ip, now.Add(orderTTL)
	key := strings.ToLower(rec.Name) + "." + strconv.FormatInt(now.UnixNano(), 36)
	if err := m.save(bucketOrders, key, rec); err != nil {
		c.errorf("the %s %v", rec.Action, err)
		return
	}
	m.pruneStale(bucketOrders, m.orders, now)
	m.did(c, rec.Action, "target", rec.Name, "on", "another node", "duration", rec.Duration, "reason", rec.Reason)
	c.send(KindSystem, rec.Name+" is not on this node: the others are asked to "+rec.Action+" "+rec.Name+"; its leave shows when it is done")
}

// applyOrder carries out an order if its member is here. Orders nobody
// carried out are removed when they are stale, by the next order given
// on any node.
func (m *Moderation) applyOrder(key string, value []byte) error {
	m.mu.Lock()
	delete(m.orders, key)
	m.mu.Unlock()
	if value == nil {
		return nil
	}
	var rec orderRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return err
	}
	m.mu.Lock()
	m.orders[key] = rec.Until
	m.mu.Unlock()
	now := time.Now()
	if !now.Before(rec.Until) {
		return nil
	}
	t := m.hub.lookup(rec.Name)
	if t == nil {
		return nil
	}
	switch rec.Action {
	case "kick":
		why := "kicked by " + rec.By
		if rec.Reason != "" {
			why += ": " + rec.Reason
		}
		disconnect(t, why)
	case "ban":
		mask, err := addressMask(t)
		if err != nil {
			return err
		}
		if by, err := netip.ParseAddr(rec.ByIP); err == nil && mask.Contains(by.Unmap()) {
			m.hub.log.Warn("ban order refused: it covers the operator's own address", "target", t.Name(), "by", rec.By, "mask", mask)
			break
		}
		ban := banRecord{Mask: mask.String(), Name: t.Name(), Reason: rec.Reason, By: rec.By, At: now}
		if rec.Duration > 0 {
			ban.Until = now.Add(rec.Duration)
		}
		if err := m.save(bucketBans, banKey(mask), ban); err != nil {
			return err
		}
	default:
		return errorString("unknown action " + strconv.Quote(rec.Action))
	}
	m.hub.log.Info("moderation order carried out", "action", rec.Action, "by", rec.By, "target", t.Name(), "target_addr", t.addr, "reason", rec.Reason)
	return m.remove(bucketOrders, key)
}

// addressMask is what a ban by name bans of t: its address, or its /64
// for IPv6, as limits count it.
func addressMask(t *Client) (netip.Prefix, error) {
	a, err := netip.ParseAddr(t.ip)
	if err != nil {
		return netip.Prefix{}, errorString(t.Name() + " has no IP address to ban (" + t.addr + ")")
	}
	a = a.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64 // as limits count IPv6: one subscriber's /64
	}
	return a.Prefix(bits)
}

// applyMode takes a room's modes into force and, if they changed, tells
// the room here what changed and who changed it: the node the operator
// is on and every other alike.
func (m *Moderation) applyMode(room string, value []byte) error {
	old, rec, err := swapRecord(m, m.modes, room, value)
	if err != nil || rec.Note == "" || rec.At.Equal(old.At) {
		return err // or seen already, or no change to tell
	}
	m.inRoom(room, func(r *Room) { r.tell(&Event{Kind: KindSystem, Room: room, Text: rec.By + " " + rec.Note}) })
	return nil
}
