package tcpserver

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBansListed is the most bans /bans lists; the rest are counted.
const maxBansListed = 50

// ban is /ban NAME|ADDRESS|CIDR [DURATION] [REASON]: the address, or the
// prefix, is refused at connect on every transport, and the members here
// from it are disconnected. A ban by NAME bans that member's address (its
// /64 for IPv6, as limits count it).
func (m *Moderation) ban(c *Client, arg string) {
	what, rest := cutWord(arg)
	if what == "" {
		c.errorf("usage: /ban NAME|ADDRESS|CIDR [DURATION] [REASON]")
		return
	}
	d, reason, err := durationAndReason(rest)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	if m.remoteTarget(what) {
		m.order(c, orderRecord{Action: "ban", Name: what, Reason: reason, Duration: d})
		return
	}
	mask, name, err := m.banMask(what)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	if mask.Bits() == 0 {
		c.errorf("%s would ban everyone", mask)
		return
	}
	if own, err := netip.ParseAddr(c.ip); err == nil && mask.Contains(own.Unmap()) {
		c.errorf("%s covers your own address", mask)
		return
	}
	key := banKey(mask)
	now := time.Now()
	m.pruneEnded(now)
	m.mu.RLock()
	_, had := m.bans[key]
	n := len(m.bans)
	m.mu.RUnlock()
	if !had && n >= maxBans {
		c.errorf("there are %d bans, the most there may be; /unban one first", n)
		return
	}
	rec := banRecord{Mask: mask.String(), Name: name, Reason: reason, By: c.Name(), At: now}
	if d > 0 {
		rec.Until = now.Add(d)
	}
	if err := m.save(bucketBans, key, rec); err != nil {
		c.errorf("the ban %v", err)
		return
	}
	m.did(c, "ban", "mask", rec.Mask, "target", name, "duration", d, "reason", reason)
	how := "permanently"
	if d > 0 {
		how = "for " + humanDuration(d)
	}
	who := rec.Mask
	if name != "" {
		who = name + " (" + rec.Mask + ")"
	}
	c.send(KindSystem, "you banned "+who+" "+how+withReason(reason))
}

// banMask reads what /ban and /unban are given: a CIDR prefix, an
// address, or the name of a member here, whose address it is.
func (m *Moderation) banMask(what string) (mask netip.Prefix, name string, err error) {
	if strings.Contains(what, "/") {
		p, err := netip.ParsePrefix(what)
		if err != nil {
			return netip.Prefix{}, "", fmt.Errorf("%q is not a CIDR prefix such as 203.0.113.0/24 or 2001:db8::/48", what)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), "", nil
	}
	if a, err := netip.ParseAddr(what); err == nil {
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	if ValidNick(what) != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q is not a name, an address or a CIDR prefix such as 203.0.113.0/24", what)
	}
	t := m.hub.lookup(what)
	if t == nil {
		return netip.Prefix{}, "", fmt.Errorf("no one called %s is here; ban their address or a CIDR prefix instead", what)
	}
	mask, err = addressMask(t)
	if err != nil {
		return netip.Prefix{}, "", err
	}
	return mask, t.Name(), nil
}

// unban is /unban MASK (or the NAME a ban was made by).
func (m *Moderation) unban(c *Client, arg string) {
	if arg == "" || strings.ContainsRune(arg, ' ') {
		c.errorf("usage: /unban ADDRESS|CIDR|NAME")
		return
	}
	var key string
	m.mu.RLock()
	for k, b := range m.bans {
		if strings.EqualFold(b.Name, arg) {
			key = k
		}
	}
	m.mu.RUnlock()
	if key == "" {
		mask, _, err := m.banMask(arg)
		if err != nil && ValidNick(arg) != nil {
			c.errorf("%v", err)
			return
		}
		if err == nil {
			key = banKey(mask)
		}
	}
	m.mu.RLock()
	rec, ok := m.bans[key]
	m.mu.RUnlock()
	if !ok {
		c.errorf("there is no ban on %s; /bans lists them", arg)
		return
	}
	if err := m.remove(bucketBans, key); err != nil {
		c.errorf("the unban %v", err)
		return
	}
	m.did(c, "unban", "mask", rec.Mask, "target", rec.Name)
	c.send(KindSystem, "you lifted the ban on "+rec.Mask)
}

// listBans is /bans: every ban in force, newest first. Bans that ended
// are dropped from the store on the way.
func (m *Moderation) listBans(c *Client, _ string) {
	now := time.Now()
	m.pruneEnded(now)
	var list []banRecord
	m.mu.RLock()
	for _, b := range m.bans {
		if b.Until.IsZero() || now.Before(b.Until) {
			list = append(list, b)
		}
	}
	m.mu.RUnlock()
	if len(list) == 0 {
		c.send(KindSystem, "no bans")
		return
	}
	slices.SortFunc(list, func(a, b banRecord) int { return b.At.Compare(a.At) })
	c.send(KindSystem, strconv.Itoa(len(list))+" bans:")
	for i, b := range list {
		if i == maxBansListed {
			c.send(KindSystem, "  and "+strconv.Itoa(len(list)-i)+" more")
			break
		}
		line := "  " + b.Mask
		if b.Name != "" {
			line += " (" + b.Name + ")"
		}
		line += " by " + b.By + ", "
		if b.Until.IsZero() {
			line += "permanent"
		} else {
			line += humanDuration(b.Until.Sub(now)) + " left"
		}
		if b.Reason != "" {
			line += ": " + b.Reason
		}
		c.send(KindSystem, line)
	}
}

// applyBan takes a ban, or its lifting, into force. A new ban
// disconnects the members here whose address it covers, operators
// excepted.
func (m *Moderation) applyBan(key string, value []byte) error {
	if value == nil {
		m.mu.Lock()
		delete(m.bans, key)
		m.mu.Unlock()
		return nil
	}
	var rec banRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(rec.Mask)
	if err != nil {
		return err
	}
	rec.prefix = p.Masked()
	m.mu.Lock()
	old, had := m.bans[key]
	m.bans[key] = rec
	m.mu.Unlock()
	if had && old.Until.Equal(rec.Until) {
		return nil // seen already: its members are gone
	}
	if !rec.Until.IsZero() && !time.Now().Before(rec.Until) {
		return nil
	}
	why := "banned by " + rec.By
	if rec.Reason != "" {
		why += ": " + rec.Reason
	}
	for _, t := range m.hub.members(func(t *Client) bool {
		a, err := netip.ParseAddr(t.ip)
		return err == nil && rec.prefix.Contains(a.Unmap()) && !t.op.Load()
	}) {
		disconnect(t, why)
	}
	return nil
}
