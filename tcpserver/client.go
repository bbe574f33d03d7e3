package tcpserver

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A Client is one member's session in the hub: its name, its room, its
// flood control, and the commands it may use. A transport makes one with
// [Hub.Connect] and feeds it every line the member sends.
//
// Handle, TooLong, Garbled, Resume and Leave must be called from one
// goroutine, the one that reads the member's connection; the fields below
// marked "owned by the reader" are touched by no other. A transport calls
// Resume after handing over what one read brought, and reads no more
// while it reports lines waiting (see flood.go).
type Client struct {
	hub       *Hub
	member    Member
	id        uint64
	addr      string
	shown     string // addr as join and leave notices show it; "" for none (HubConfig.ShowAddresses)
	ip        string
	source    string // ip as limits per address count it (see sourceKey)
	transport string
	echo      bool
	key       string // ConnectInfo.Key

	name atomic.Pointer[string] // read by anyone, written under hub.mu

	idx int // index in room.members; guarded by room.mu

	// visible is false from the moment the member comes into a room until
	// its join is announced (see Room.join); written under the room's lock.
	visible atomic.Bool

	// ignored is who the member ignores (see ignoreList); nil for nobody.
	// Stored by the reader, under the room's lock, read by anyone.
	ignored atomic.Pointer[ignoreList]

	inbox inbox // the rate of private messages to the member

	since    time.Time              // when it connected
	op       atomic.Bool            // it gave /op the operator password (see moderation.go)
	kicked   atomic.Pointer[string] // why an operator disconnected it, for its leave notice
	account  string                 // the registered name it proved is its own; guarded by hub.mu (accounts.go)
	verified bool                   // a site vouched for its name (verified.go); set by Connect, never changed

	// Owned by the reader.
	room     *Room
	joined   bool        // has had its first welcome
	left     bool        // Leave has run
	reason   string      // why the server ended the session, for the leave notice
	bucket   tokenBucket // lines it may send now
	strikes  float64     // refused lines, leaking away over time
	strikeAt time.Time
	backlog  *backlog    // what waits for the rate (see flood.go); nil when nothing does
	changes  tokenBucket // name and room changes it may make now
	holding  bool        // Hold is in force: room lines wait in held for Flush
	held     []*Event    // lines said while holding
	saidAt   time.Time   // when it last said a line to a room in slow mode
	scroll   scrollback  // what /history has to go back from
}

// Name returns the member's current name.
func (c *Client) Name() string {
	if p := c.name.Load(); p != nil {
		return *p
	}
	return ""
}

func (c *Client) setName(s string) { c.name.Store(&s) }

// ID returns a number that no other client of this hub has.
func (c *Client) ID() uint64 { return c.id }

// Room returns the name of the member's room. Reader only.
func (c *Client) Room() string { return c.room.name }

// Handle acts on one line the member sent: a command or a line to say to
// the room. The line is cleaned (see [CleanLine]) first; blank lines are
// not said. Every line, blank or not, goes through flood control first:
// one over the rate waits its turn, and is handled by a later Resume (see
// flood.go). Handle may be given the reader's own buffer: it keeps nothing
// of it.
func (c *Client) Handle(line []byte) {
	if len(line) > c.hub.cfg.MaxLine {
		c.TooLong()
		return
	}
	c.take(line, "")
}

// act handles one line, or what was not a line (garbled), that flood
// control let through.
func (c *Client) act(line []byte, garbled string) {
	if garbled != "" {
		c.hub.refused.Add(1)
		c.errorf("%s", garbled)
		return
	}
	text := CleanLine(line)
	if strings.TrimSpace(text) == "" {
		return
	}
	c.hub.linesIn.Add(1)
	if name, arg, ok := ParseCommand(text); ok {
		c.flushHeld() // what was said before the command comes before it
		c.command(name, arg)
		return
	}
	if strings.HasPrefix(text, "//") {
		text = text[1:]
	}
	c.say(KindMessage, text)
}

// Hold makes Handle keep the lines the member says to its room (messages
// and /me actions) until Flush, which says them as one [KindBatch] event.
// A transport holds while it handles one read, so that a read that
// carried a hundred lines costs each member one queue entry and one write
// instead of a hundred; commands still act in order. Reader only.
func (c *Client) Hold() { c.holding = true }

// Flush says the lines held since Hold and ends holding.
func (c *Client) Flush() {
	c.holding = false
	c.flushHeld()
}

func (c *Client) flushHeld() {
	held := c.held
	c.held = nil
	switch {
	case len(held) == 0 || c.left:
	case len(held) == 1:
		c.sayToRoom(held[0])
	default:
		r := c.room
		c.sayToRoom(c.hub.stamp(&Event{Kind: KindBatch, Room: r.name, From: c.Name(), Events: held, fromID: c.id}))
	}
}

// sayToRoom says ev to the member's room, or tells the member the room is
// busy (see roomBudget). A line refused so is not one refused by flood
// control: it adds nothing towards a flood kick, since an honest member
// in a busy room has done nothing wrong.
func (c *Client) sayToRoom(ev *Event) {
	ok, wait := c.room.say(ev, c)
	if ok {
		return
	}
	what := "that line was"
	if ev.Kind == KindBatch {
		what = fmt.Sprintf("those %d lines were", len(ev.Events))
	}
	c.errorf("the room is busy: %s not sent; try again in %d s", what, int(wait.Seconds()))
}

// TooLong tells the member its line was over the limit and not sent. It
// counts against flood control like a line, and is told in its turn.
func (c *Client) TooLong() {
	c.take(nil, fmt.Sprintf("line too long (more than %d bytes); it was not sent", c.hub.cfg.MaxLine))
}

// Garbled tells the member that what it sent was not a line at all (a
// WebSocket client's malformed JSON, say), with why as the error. It
// counts against flood control like a line, so that garbage cannot be sent
// faster than lines can, and is told in its turn.
func (c *Client) Garbled(why string) {
	c.take(nil, why)
}

// Leave takes the member out of its room and frees its name. reason, if
// not empty, is shown in the leave notice ("too slow", "flooding"); a
// reason the hub itself gave, such as a flood kick, wins over it. Lines
// still waiting for the rate are dropped. Leave runs once; later calls do
// nothing.
func (c *Client) Leave(reason string) {
	if c.left {
		return
	}
	c.flushHeld()
	c.left = true
	c.backlog = nil
	if c.reason != "" {
		reason = c.reason
	} else if k := c.kicked.Load(); k != nil {
		reason = *k
	}
	if reason == "quit" {
		reason = ""
	}
	c.room.leave(c, reason)
	c.hub.release(c)
	c.hub.dropIfEmpty(c.room)
	c.hub.log.Debug("member left", "name", c.Name(), "addr", c.addr, "reason", reason)
	c.logCutOff(reason)
}

// logCutOff logs a member the server cut off, a line per kind of cut-off
// per LogEvery at most: many at once is an attack, or the server falling
// behind, and the operator should see it while it happens.
func (c *Client) logCutOff(reason string) {
	switch reason {
	case ReasonTooSlow:
		c.hub.logs.Log(slog.LevelInfo, "members cut off as too slow", "member cut off as too slow",
			"name", c.Name(), "addr", c.addr, "transport", c.transport)
	case reasonFlooding:
		c.hub.logs.Log(slog.LevelWarn, "members cut off for flooding", "member cut off for flooding",
			"name", c.Name(), "addr", c.addr, "transport", c.transport)
	}
}

func (c *Client) say(k Kind, text string) {
	if !c.hub.speakCheck(c) || !c.hub.mod.maySpeak(c) {
		return
	}
	r := c.room
	if !c.visible.Load() {
		r.show(c) // a newcomer who speaks is announced first
	}
	ev := c.hub.stampLine(&Event{Kind: k, Room: r.name, From: c.Name(), Text: text, fromID: c.id})
	if c.holding {
		c.held = append(c.held, ev)
		return
	}
	c.sayToRoom(ev)
}

func (c *Client) send(k Kind, text string) { c.member.Send(c.hub.notice(k, text)) }

func (c *Client) errorf(format string, args ...any) {
	c.send(KindError, fmt.Sprintf(format, args...))
}

func (c *Client) command(name, arg string) {
	switch name {
	case "nick":
		c.nick(arg)
	case "who", "names":
		c.member.Send(c.room.presence(c))
	case "me":
		if arg == "" {
			c.errorf("usage: /me ACTION")
			return
		}
		c.say(KindAction, arg)
	case "join":
		c.join(arg)
	case "rooms":
		c.rooms()
	case "msg":
		c.private(arg)
	case "ignore":
		c.ignore(arg)
	case "unignore":
		c.unignore(arg)
	case "history":
		c.history(arg)
	case "help":
		help := helpText
		if c.op.Load() {
			help += "\n" + opHelpText
		}
		for line := range strings.Lines(help) {
			c.send(KindSystem, strings.TrimRight(line, "\n"))
		}
	case "quit":
		c.reason = "quit"
		c.member.Close("bye")
	default:
		if c.hub.mod.command(c, name, arg) {
			return
		}
		c.errorf("unknown command /%s; type /help for the list", name)
	}
}

func (c *Client) nick(to string) {
	if to == "" {
		c.errorf("usage: /nick NAME")
		return
	}
	if c.verified {
		c.errorf("your name is the one you are signed in with; it cannot be changed here")
		return
	}
	if name, _, ok := strings.Cut(to, " "); ok && c.hub.mod.isRegistered(name) {
		c.hub.mod.identify(c, to) // /nick NAME PASSWORD
		return
	}
	from := c.Name()
	if to == from {
		c.errorf("you are already %s", to)
		return
	}
	if err := ValidNick(to); err != nil {
		c.errorf("%v", err)
		return
	}
	now := time.Now()
	if !c.mayChange(now) {
		return
	}
	if err := c.renameTo(to); err != nil {
		c.errorf("%v", err)
		return
	}
	c.changed(now)
}

// renameTo gives c the name to, if it may take it, and tells the room.
func (c *Client) renameTo(to string) error {
	from := c.Name()
	if err := c.hub.rename(c, to); err != nil {
		return err
	}
	r := c.room
	ev := c.hub.stamp(&Event{Kind: KindNick, Room: r.name, From: from, To: to})
	r.mu.Lock()
	r.renamedLocked(c, ev)
	r.mu.Unlock()
	return nil
}

func (c *Client) join(arg string) {
	if arg == "" {
		c.errorf("usage: /join ROOM")
		return
	}
	name, err := RoomName(arg)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	if name == c.room.name {
		c.errorf("you are already in %s", name)
		return
	}
	now := time.Now()
	if !c.mayChange(now) {
		return
	}
	c.hub.hydrate(name)
	if err := c.hub.move(c, name); err != nil {
		c.errorf("%v", err)
		return
	}
	c.changed(now)
}

// mayChange applies the rate of name and room changes (see
// HubConfig.ChangeBurst): it reports whether the member may make one now,
// and if not tells it when it may. A change refused is not a line
// refused: it adds nothing towards a flood kick, since the line itself
// passed flood control. Only a change made is counted (see changed), so
// that a name found taken costs nothing.
func (c *Client) mayChange(now time.Time) bool {
	cfg := &c.hub.cfg
	if cfg.ChangeBurst < 0 {
		return true
	}
	wait := c.changes.wait(now, 1/cfg.ChangeEvery.Seconds(), float64(cfg.ChangeBurst))
	if wait <= 0 {
		return true
	}
	c.errorf("too many name and room changes: at most %d at once and one every %s; try again in %d s",
		cfg.ChangeBurst, cfg.ChangeEvery, int(math.Ceil(wait.Seconds())))
	return false
}

// changed counts a name or room change made.
func (c *Client) changed(now time.Time) {
	if c.hub.cfg.ChangeBurst >= 0 {
		c.changes.take(now, 1/c.hub.cfg.ChangeEvery.Seconds(), float64(c.hub.cfg.ChangeBurst))
	}
}

// maxRoomsListed is the most rooms /rooms names; the rest are counted.
const maxRoomsListed = 50

func (c *Client) rooms() {
	list := c.hub.Rooms()
	var b strings.Builder
	b.WriteString("rooms: ")
	for i, r := range list {
		if i == maxRoomsListed {
			fmt.Fprintf(&b, " and %d more", len(list)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.Name)
		b.WriteString(" (")
		b.WriteString(strconv.Itoa(r.Members))
		b.WriteString(")")
	}
	c.send(KindSystem, b.String())
}

// tokenBucket is a plain token bucket, owned by one goroutine.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// wait returns how long until the bucket holds a token; 0 or less if it
// holds one now. It takes none.
func (b *tokenBucket) wait(now time.Time, rate, burst float64) time.Duration {
	tokens := b.tokens
	if !b.last.IsZero() {
		tokens = min(burst, tokens+now.Sub(b.last).Seconds()*rate)
	}
	if tokens >= 1 {
		return 0
	}
	// A rate so slow that the wait is past what a Duration holds (a
	// flag of 1e-15) waits some 146 years, not a negative time that
	// reads as "now".
	return time.Duration(min(math.Ceil((1-tokens)/rate*float64(time.Second)), 1<<62))
}

func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	if !b.last.IsZero() {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}
