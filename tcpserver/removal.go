package tcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Removing lines: /delete last NAME, /delete ID (a line's JSON id) and
// /purge NAME take lines out of the operator's room: out of the Store,
// out of every node's recent lines (the cache replayed on join), and off
// the members' screens: a [KindDelete] event, which the page acts on
// (it removes the lines in place) and a terminal shows as "*** a message
// by NAME was removed".
//
// The operator's node takes the lines out of the store, if the store is
// not the hub's own memory store, then leaves a deletion record in the
// [StateStore]: every node, this one too, takes the lines out of its
// memory (its store, or its cache of a store) and tells its members, as
// it applies the record. Records older than orderTTL are ignored, so a
// restart that loads one tells nobody of it again, and the next removal
// clears them from the store.

// A LineRemover is a [Store] that can forget lines. A store that is not
// one keeps every line it is given, and /delete says so.
type LineRemover interface {
	// Remove forgets the lines of room called keys; a key it does not
	// keep is no error.
	Remove(ctx context.Context, room string, keys ...LineKey) error
}

// bucketDeletions holds deletion records by room and time; each value is
// a deletionRecord's JSON.
const bucketDeletions = "deletions"

// Bounds on what a removal looks through and takes.
const (
	maxRemoveScan = 10000 // lines looked through, newest first, for the ones to remove
	maxPurge      = 1000  // lines one /purge removes; a second takes the rest
)

// deletionRecord is lines of Room by From that By removed.
type deletionRecord struct {
	Room  string    `json:"room"`
	From  string    `json:"from"`
	Keys  []string  `json:"keys"` // LineKey.String of each
	By    string    `json:"by"`
	Until time.Time `json:"until"` // ignored after
}

// Remove implements [LineRemover].
func (s *memStore) Remove(_ context.Context, room string, keys ...LineKey) error {
	s.mu.Lock()
	h := s.rooms[room]
	s.mu.Unlock()
	if h != nil {
		h.remove(keys)
	}
	return nil
}

// remove forgets the lines called keys, and returns how many it had.
// The ring keeps its lines in a row, so the lines left are kept again
// from the start: a removal costs the room's lines, and is rare.
func (h *roomHistory) remove(keys []LineKey) int {
	gone := make(map[LineKey]bool, len(keys))
	for _, k := range keys {
		gone[k] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := make([]*Event, 0, h.n)
	for i := range h.n {
		if ev := h.ring[h.indexLocked(i)].ev; !gone[ev.Key()] {
			kept = append(kept, ev)
		}
	}
	removed := h.n - len(kept)
	if removed == 0 {
		return 0
	}
	earlier := h.earlier
	for h.n > 0 {
		h.dropLastLocked()
	}
	h.earlier = earlier
	for _, ev := range kept {
		h.addLocked(ev)
	}
	return removed
}

// findLines returns up to limit lines of room for which match is true,
// newest first, looking through the newest maxRemoveScan lines of the
// store. No lock is held: it reads the store, within historyTimeout.
func (h *Hub) findLines(room string, match func(*Event) bool, limit int) ([]*Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	var found []*Event
	var before LineKey
	for scanned := 0; scanned < maxRemoveScan; {
		lines, more, err := h.storeLines(ctx, room, before, min(200, maxRemoveScan-scanned))
		if err != nil {
			return found, err
		}
		for i := len(lines) - 1; i >= 0; i-- {
			if match(lines[i]) {
				if found = append(found, lines[i]); len(found) == limit {
					return found, nil
				}
			}
		}
		scanned += len(lines)
		if !more || len(lines) == 0 {
			break
		}
		before = lines[0].Key()
	}
	return found, nil
}

// deleteCmd is /delete last NAME, or /delete ID.
func (m *Moderation) deleteCmd(c *Client, arg string) {
	const usage = "usage: /delete last NAME, or /delete ID (a line's id, as JSON clients see it)"
	w, rest := cutWord(arg)
	var match func(*Event) bool
	var what string
	switch {
	case w == "last" && rest != "" && !strings.ContainsRune(rest, ' '):
		if err := ValidNick(rest); err != nil {
			c.errorf("%v", err)
			return
		}
		match = func(ev *Event) bool { return strings.EqualFold(ev.From, rest) }
		what = "no line by " + rest
	case w != "" && rest == "":
		key, err := ParseLineKey(w)
		if err != nil {
			c.errorf("%s", usage)
			return
		}
		match = func(ev *Event) bool { return ev.Key() == key }
		what = "no line " + key.String()
	default:
		c.errorf("%s", usage)
		return
	}
	m.removeMatching(c, "delete", match, 1, what)
}

// purge is /purge NAME: every line of NAME's the room keeps goes.
func (m *Moderation) purge(c *Client, arg string) {
	if arg == "" || strings.ContainsRune(arg, ' ') {
		c.errorf("usage: /purge NAME")
		return
	}
	if err := ValidNick(arg); err != nil {
		c.errorf("%v", err)
		return
	}
	m.removeMatching(c, "purge", func(ev *Event) bool { return strings.EqualFold(ev.From, arg) }, maxPurge, "no line by "+arg)
}

// removeMatching removes up to limit of the lines of c's room that match,
// or tells c that none did (none says what was looked for) or that the
// room's lines could not be read.
func (m *Moderation) removeMatching(c *Client, action string, match func(*Event) bool, limit int, none string) {
	room := c.room.name
	lines, err := m.hub.findLines(room, match, limit)
	if err != nil && len(lines) == 0 {
		c.errorf("the lines of %s could not be read: %v", room, err)
		return
	}
	if len(lines) == 0 {
		c.errorf("%s among the last %d lines of %s", none, maxRemoveScan, room)
		return
	}
	m.removeLines(c, action, room, lines)
}

// removeLines takes lines, all by one member, out of room everywhere.
func (m *Moderation) removeLines(c *Client, action, room string, lines []*Event) {
	h := m.hub
	keys := make([]LineKey, len(lines))
	rec := deletionRecord{Room: room, From: lines[0].From, Keys: make([]string, len(lines)), By: c.Name()}
	for i, ev := range lines {
		keys[i] = ev.Key()
		rec.Keys[i] = keys[i].String()
	}
	if h.store != Store(h.hist) {
		lr, ok := h.store.(LineRemover)
		if !ok {
			c.errorf("this server's store cannot forget lines")
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := lr.Remove(ctx, room, keys...)
		cancel()
		if err != nil {
			c.errorf("the lines could not be removed: %v", err)
			return
		}
	}
	now := time.Now()
	rec.Until = now.Add(orderTTL)
	if err := m.save(bucketDeletions, room+"."+strconv.FormatInt(now.UnixNano(), 36), rec); err != nil {
		c.errorf("the removal %v", err)
		return
	}
	m.did(c, action, "room", room, "target", rec.From, "lines", len(lines))
	c.send(KindSystem, "you removed "+countOf(len(lines), "line")+" by "+rec.From+" from "+room)
	m.pruneStale(bucketDeletions, m.deletions, now)
}

// applyDeletion takes the lines a deletion record names out of this
// node's memory, and off its members' screens, once.
func (m *Moderation) applyDeletion(key string, value []byte) error {
	if value == nil {
		return nil
	}
	var rec deletionRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return err
	}
	now := time.Now()
	m.mu.Lock()
	_, seen := m.deletions[key]
	if !seen {
		m.deletions[key] = rec.Until // a stale one too, for pruneStale
	}
	m.mu.Unlock()
	if seen || !now.Before(rec.Until) {
		return nil
	}
	keys := make([]LineKey, 0, len(rec.Keys))
	for _, s := range rec.Keys {
		k, err := ParseLineKey(s)
		if err != nil {
			return errors.Join(errors.New("bad line key "+strconv.Quote(s)), err)
		}
		keys = append(keys, k)
	}
	m.hub.hist.Remove(context.Background(), rec.Room, keys...)
	text := "a message by " + rec.From + " was removed"
	if len(rec.Keys) > 1 {
		text = strconv.Itoa(len(rec.Keys)) + " messages by " + rec.From + " were removed"
	}
	m.inRoom(rec.Room, func(r *Room) {
		r.tell(&Event{Kind: KindDelete, Room: rec.Room, From: rec.From, Names: rec.Keys, Text: text})
	})
	return nil
}

// pruneStale removes from the store the records of bucket past their
// time in seen (deletions or orders), which every node ignores by now.
func (m *Moderation) pruneStale(bucket string, seen map[string]time.Time, now time.Time) {
	var stale []string
	m.mu.Lock()
	for k, until := range seen {
		if !now.Before(until) {
			stale = append(stale, k)
			delete(seen, k)
		}
	}
	m.mu.Unlock()
	for _, k := range stale {
		m.remove(bucket, k)
	}
}

// countOf writes n things: "1 line", "3 lines".
func countOf(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}
