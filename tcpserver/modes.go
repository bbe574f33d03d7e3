package tcpserver

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// modeOf returns room's modes.
func (m *Moderation) modeOf(room string) modeRecord {
	m.mu.RLock()
	defer m.mu.RUnlock()
	md := m.modes[room]
	md.Voice = slices.Clone(md.Voice)
	return md
}

// setMode stores room's modes, changed by change, and tells the room
// what changed (notice), or c what went wrong.
func (m *Moderation) setMode(c *Client, action string, change func(*modeRecord) error, notice string, args ...any) {
	room := c.room.name
	md := m.modeOf(room)
	if err := change(&md); err != nil {
		c.errorf("%v", err)
		return
	}
	// Kept, empty or not, with the change: every node tells its members
	// of it as it applies the record (applyMode).
	md.By, md.Note, md.At = c.Name(), notice, time.Now()
	if err := m.save(bucketModes, room, md); err != nil {
		c.errorf("the mode %v", err)
		return
	}
	m.did(c, action, append([]any{"room", room}, args...)...)
}

// moderate is /moderate on|off: in a moderated room only operators and
// the members they voice speak.
func (m *Moderation) moderate(c *Client, arg string) {
	var on bool
	switch strings.ToLower(arg) {
	case "on":
		on = true
	case "off":
	default:
		c.errorf("usage: /moderate on|off")
		return
	}
	notice := "made " + c.room.name + " moderated: only operators and members they /voice may speak"
	if !on {
		notice = "made " + c.room.name + " open to everyone again"
	}
	m.setMode(c, "moderate", func(md *modeRecord) error {
		if md.Moderated == on {
			return errorString(c.room.name + " is already " + map[bool]string{true: "moderated", false: "not moderated"}[on])
		}
		md.Moderated = on
		return nil
	}, notice, "on", on)
}

// voice is /voice NAME: NAME may speak in this room while it is
// moderated; /devoice NAME takes it back.
func (m *Moderation) voice(c *Client, arg string) { m.setVoice(c, arg, true) }

func (m *Moderation) devoice(c *Client, arg string) { m.setVoice(c, arg, false) }

func (m *Moderation) setVoice(c *Client, name string, on bool) {
	cmd := map[bool]string{true: "/voice", false: "/devoice"}[on]
	if name == "" || strings.ContainsRune(name, ' ') {
		c.errorf("usage: %s NAME", cmd)
		return
	}
	if err := ValidNick(name); err != nil {
		c.errorf("%v", err)
		return
	}
	key := strings.ToLower(name)
	notice := "gave " + name + " voice in " + c.room.name
	if !on {
		notice = "took " + name + "'s voice in " + c.room.name
	}
	m.setMode(c, "voice", func(md *modeRecord) error {
		i := slices.Index(md.Voice, key)
		switch {
		case on && i >= 0:
			return errorString(name + " has voice already")
		case !on && i < 0:
			return errorString(name + " has no voice here")
		case on && len(md.Voice) >= maxVoiced:
			return errorString(strconv.Itoa(maxVoiced) + " members have voice here, the most there may be; /devoice one first")
		case on:
			md.Voice = append(md.Voice, key)
		default:
			md.Voice = slices.Delete(md.Voice, i, i+1)
		}
		return nil
	}, notice, "target", name, "on", on)
}

// slow is /slow SECONDS|off: members who are not operators say a line
// every SECONDS at most in this room.
func (m *Moderation) slow(c *Client, arg string) {
	secs := 0
	if !strings.EqualFold(arg, "off") {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > maxSlow {
			c.errorf("usage: /slow SECONDS|off, SECONDS from 1 to %d", maxSlow)
			return
		}
		secs = n
	}
	notice := "turned slow mode off in " + c.room.name
	if secs > 0 {
		notice = "put " + c.room.name + " in slow mode: one line every " + strconv.Itoa(secs) + " s"
	}
	m.setMode(c, "slow", func(md *modeRecord) error {
		if md.Slow == secs {
			return errorString("slow mode is already " + map[bool]string{true: "off", false: strconv.Itoa(secs) + " s"}[secs == 0])
		}
		md.Slow = secs
		return nil
	}, notice, "seconds", secs)
}

// errorString is an error of fixed text.
type errorString string

func (e errorString) Error() string { return string(e) }

// tell stamps ev, a moderation record's news, and sends it to every
// member of the room here: each node tells its own, as it applies the
// record.
func (r *Room) tell(ev *Event) {
	r.hub.stamp(ev)
	r.mu.Lock()
	r.sendLocked(ev, nil)
	r.mu.Unlock()
}
