package tcpserver

import (
	"slices"
	"strconv"
	"strings"
)

// maxIgnored is the most members one member may ignore at once.
const maxIgnored = 100

// An ignoreList is who one member ignores: /ignore NAME hides that
// member's lines, actions and private messages from it, as an IRC
// client's /ignore does, and as ssh-chat's does on the server. A list is
// never changed once stored in [Client.ignored]: the member's reader
// stores a new one, so that fan-out in other goroutines reads it without
// a lock.
type ignoreList struct {
	entries []ignoredMember
}

// ignoredMember is one member ignored: the client it was (0 for a member
// of another node), so that ignoring follows it through renames while it
// is connected, and the name it had, so that it is still ignored if it
// comes back under that name (whoever takes the name is).
type ignoredMember struct {
	id   uint64
	name string
}

// hides reports whether ev is something ignoring hides (a line, an
// action, a batch of them, a private message) from a member on l.
func (l *ignoreList) hides(ev *Event) bool {
	switch ev.Kind {
	case KindMessage, KindAction, KindBatch:
	case KindPrivate:
		if ev.Echo {
			return false
		}
	default:
		return false
	}
	for _, e := range l.entries {
		if e.id != 0 && e.id == ev.fromID || strings.EqualFold(e.name, ev.From) {
			return true
		}
	}
	return false
}

// find returns the index of the entry for name, or for the local member
// now called name (id), or -1.
func (l *ignoreList) find(name string, id uint64) int {
	if l == nil {
		return -1
	}
	return slices.IndexFunc(l.entries, func(e ignoredMember) bool {
		return strings.EqualFold(e.name, name) || id != 0 && e.id == id
	})
}

// visible returns those of lines that l does not hide; lines itself if
// it hides none of them.
func (l *ignoreList) visible(lines []*Event) []*Event {
	if !slices.ContainsFunc(lines, l.hides) {
		return lines
	}
	return slices.DeleteFunc(slices.Clone(lines), l.hides)
}

// ignore is /ignore: with a name, stop seeing that member's lines and
// private messages; alone, list who is ignored.
func (c *Client) ignore(arg string) {
	list := c.ignored.Load()
	if arg == "" {
		c.listIgnored(list)
		return
	}
	if err := ValidNick(arg); err != nil {
		c.errorf("%v", err)
		return
	}
	if strings.EqualFold(arg, c.Name()) {
		c.errorf("you cannot ignore yourself")
		return
	}
	target := c.hub.lookup(arg)
	var id uint64
	if target != nil {
		id = target.id
		arg = target.Name()
	}
	if list.find(arg, id) >= 0 {
		c.errorf("you already ignore %s", arg)
		return
	}
	if list != nil && len(list.entries) >= maxIgnored {
		c.errorf("you already ignore %d members, the most you may; /unignore one first", maxIgnored)
		return
	}
	if target == nil && c.hub.cluster == nil {
		// With other nodes, the name may be one of their members: it
		// is ignored by name.
		c.errorf("no one called %s is here", arg)
		return
	}
	next := &ignoreList{}
	if list != nil {
		next.entries = slices.Clone(list.entries)
	}
	next.entries = append(next.entries, ignoredMember{id: id, name: arg})
	c.setIgnored(next)
	c.send(KindSystem, "you now ignore "+arg+": you will not see their lines or private messages (/unignore "+arg+" to see them again)")
}

// unignore is /unignore NAME.
func (c *Client) unignore(arg string) {
	if arg == "" {
		c.errorf("usage: /unignore NAME")
		return
	}
	list := c.ignored.Load()
	var id uint64
	if target := c.hub.lookup(arg); target != nil {
		id = target.id
	}
	i := list.find(arg, id)
	if i < 0 {
		c.errorf("you do not ignore %s", arg)
		return
	}
	name := list.entries[i].name
	var next *ignoreList
	if len(list.entries) > 1 {
		next = &ignoreList{entries: slices.Delete(slices.Clone(list.entries), i, i+1)}
	}
	c.setIgnored(next)
	c.send(KindSystem, "you no longer ignore "+name)
}

func (c *Client) listIgnored(list *ignoreList) {
	if list == nil {
		c.send(KindSystem, "you ignore nobody; /ignore NAME hides a member's lines and private messages from you")
		return
	}
	var b strings.Builder
	b.WriteString("you ignore ")
	b.WriteString(strconv.Itoa(len(list.entries)))
	b.WriteString(": ")
	for i, e := range list.entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.name)
	}
	c.send(KindSystem, b.String())
}

// setIgnored stores c's new list (nil for nobody) and keeps its room's
// list of members who ignore someone, under the room's lock, so that
// fan-out sees the two agree. Reader only.
func (c *Client) setIgnored(l *ignoreList) {
	r := c.room
	r.mu.Lock()
	defer r.mu.Unlock()
	had := c.ignored.Load() != nil
	c.ignored.Store(l)
	switch {
	case had && l == nil:
		r.dropIgnorerLocked(c)
	case !had && l != nil:
		r.ignorers = append(r.ignorers, c)
	}
}
