package tcpserver

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind says what an [Event] is.
type Kind uint8

// The kinds of event. Their names (see [Kind.String]) are the "type" of the
// JSON encoding.
const (
	KindMessage  Kind = iota + 1 // a line said in a room: <from> text
	KindAction                   // /me: * from text
	KindPrivate                  // /msg: *from* text, to one member
	KindJoin                     // *** from joined the room
	KindLeave                    // *** from left the room
	KindNick                     // *** from is now known as To
	KindSystem                   // *** a notice from the server
	KindError                    // ! a refusal or an error, to one member
	KindHello                    // *** the welcome: your name (To) and room
	KindHistory                  // recent lines of a room (Events)
	KindPresence                 // *** who is in a room (Names, Count)
	KindBatch                    // several lines one member said at once (Events)
	KindTopic                    // *** from set the topic of Room: Text (or cleared it); not relayed
	KindDelete                   // *** lines by From were removed from Room: their IDs in Names, the notice in Text (see removal.go); not relayed
)

// noticePrefix starts every line the server says itself (joins, leaves,
// name changes, the welcome, who is here, system notices). No member can
// start a line with it: a message starts with '<', an action with "* "
// and a name, a private message with '*' and a name or "-> ", and a name
// has no '*' in it (see [ValidNick]). So "/me is now known as alice"
// shows as "* mallory is now known as alice", never as a notice.
const noticePrefix = "*** "

// noticeLine is text as the text protocol sends a notice from the server,
// for the lines a transport writes outside any member's queue (a refused
// connection, a member cut off).
func noticeLine(text string) []byte {
	return (&Event{Kind: KindSystem, Text: text}).finish().line
}

var kindNames = [...]string{
	KindMessage:  "message",
	KindAction:   "action",
	KindPrivate:  "private",
	KindJoin:     "join",
	KindLeave:    "leave",
	KindNick:     "nick",
	KindSystem:   "system",
	KindError:    "error",
	KindHello:    "hello",
	KindHistory:  "history",
	KindPresence: "presence",
	KindBatch:    "batch",
	KindTopic:    "topic",
	KindDelete:   "delete",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// An Event is one thing that happened, on its way to members.
//
// An Event is built once by the hub and then shared, read-only, by every
// member it is delivered to: its text line is encoded when it is built and
// its JSON the first time a member asks for it, and neither is ever copied
// per member. Nobody may change an Event after it has been sent.
type Event struct {
	ID   uint64
	Kind Kind

	// Echo marks a copy sent back to its own author (a private message's
	// "-> *bob* text" receipt).
	Echo bool

	// More, in a KindHistory, says that the room has lines earlier than
	// the first of Events (the page offers to load them).
	More bool

	Time time.Time
	Room string
	From string // who said or did it; for KindNick the old name
	To   string // KindPrivate: the recipient; KindNick: the new name; KindHello: your name
	Text string
	Addr string // KindJoin and KindLeave: the member's remote address, if HubConfig.ShowAddresses shows it; KindHello: the room's topic (see Topic)

	// Node is the node an event relayed from another node was made on,
	// and NodeID its ID there. The hub gives a relayed event an ID of its
	// own (IDs are unique on a server) and tells events apart by Node and
	// NodeID. A line said on this node has them too when the node is one
	// of a cluster (this node's name and its ID), so that a line is named
	// the same on every node (see [Event.Key]); other events of this
	// node's have "" and 0.
	Node   string
	NodeID uint64

	// fromID is the ID of the local client that said it (see
	// [Client.ID]), for /ignore to follow it through renames; 0 if none.
	fromID uint64

	Names  []string // KindPresence: the members, at most presenceNames of them
	Count  int      // KindPresence: how many members in all
	Events []*Event // KindHistory, KindBatch: the lines, oldest first

	line []byte // the text-protocol encoding, CRLF-terminated; set by finish

	jsonOnce sync.Once
	json     []byte
}

// Topic returns the room's topic a KindHello carries, "" for none. A
// welcome has no address, so it carries the topic in Addr: a field more
// would take every Event, and every line kept in history, to the next
// size class (288 bytes to 320).
func (e *Event) Topic() string {
	if e.Kind != KindHello {
		return ""
	}
	return e.Addr
}

// Registered returns which of the names a KindPresence lists are
// registered (see accounts.go). A presence has no text of its own, so it
// carries them in Text, separated by spaces (names have none).
func (e *Event) Registered() []string {
	if e.Kind != KindPresence || e.Text == "" {
		return nil
	}
	return strings.Fields(e.Text)
}

// Verified returns which of the names a KindPresence lists verified
// members hold (see verified.go). A presence has no address, so it
// carries them in Addr, separated by spaces.
func (e *Event) Verified() []string {
	if e.Kind != KindPresence || e.Addr == "" {
		return nil
	}
	return strings.Fields(e.Addr)
}

// Key returns the name of a line on every node, in every store and
// across restarts: its Node and NodeID if it has a Node, its ID
// otherwise. A line's JSON "id" is its key.
func (e *Event) Key() LineKey {
	if e.Node != "" {
		return LineKey{Node: e.Node, ID: e.NodeID}
	}
	return LineKey{ID: e.ID}
}

// Line returns the event as the text protocol sends it: one or more lines,
// each ending in CRLF. The bytes are shared; callers must not modify them.
func (e *Event) Line() []byte { return e.line }

// JSON returns the event's JSON encoding (see the README for the schema),
// computed once and then shared; callers must not modify it.
func (e *Event) JSON() []byte {
	e.jsonOnce.Do(func() { e.json = e.encodeJSON() })
	return e.json
}

// wireEvent is the JSON form of an Event.
type wireEvent struct {
	Type   string            `json:"type"`
	ID     string            `json:"id,omitempty"`
	Time   string            `json:"time,omitempty"`
	Room   string            `json:"room,omitempty"`
	From   string            `json:"from,omitempty"`
	To     string            `json:"to,omitempty"`
	Text   string            `json:"text,omitempty"`
	Addr   string            `json:"addr,omitempty"`
	Echo   bool              `json:"echo,omitempty"`
	Names  []string          `json:"names,omitempty"`
	Count  int               `json:"count,omitempty"`
	Events []json.RawMessage `json:"events,omitempty"`
	Topic  string            `json:"topic,omitempty"`

	Registered []string `json:"registered,omitempty"` // presence: which of names are registered
	Verified   []string `json:"verified,omitempty"`   // presence: which of names verified members hold
	IDs        []string `json:"ids,omitempty"`        // delete: the lines removed, if more than one (one is the delete's id)
}

// wireHistory is the JSON form of a KindHistory: events and more are
// always there, an empty page of scrollback and its end included.
type wireHistory struct {
	Type   string            `json:"type"`
	ID     string            `json:"id,omitempty"`
	Time   string            `json:"time,omitempty"`
	Room   string            `json:"room"`
	Events []json.RawMessage `json:"events"`
	More   bool              `json:"more"`
}

func (e *Event) encodeJSON() []byte {
	if e.Kind == KindHistory {
		return e.encodeHistoryJSON()
	}
	w := wireEvent{
		Type: e.Kind.String(),
		Room: e.Room,
		From: e.From,
		To:   e.To,
		Text: e.Text,
		Addr: e.Addr,
		Echo: e.Echo,
	}
	if e.Kind == KindHello {
		w.Topic, w.Addr = e.Addr, ""
	}
	if e.Kind == KindMessage || e.Kind == KindAction {
		if k := e.Key(); !k.IsZero() {
			w.ID = k.String()
		}
	} else if e.ID != 0 {
		w.ID = strconv.FormatUint(e.ID, 10)
	}
	if !e.Time.IsZero() {
		w.Time = e.Time.UTC().Format(time.RFC3339Nano)
	}
	if e.Kind == KindPresence {
		w.Registered, w.Text = e.Registered(), ""
		w.Verified, w.Addr = e.Verified(), ""
		w.Names = e.Names
		if w.Names == nil {
			w.Names = []string{}
		}
		w.Count = e.Count
	}
	if e.Kind == KindDelete {
		if len(e.Names) == 1 {
			w.ID = e.Names[0]
		} else {
			w.ID, w.IDs = "", e.Names
		}
	}
	if e.Kind == KindBatch {
		w.Events = make([]json.RawMessage, len(e.Events))
		for i, h := range e.Events {
			w.Events[i] = h.JSON()
		}
	}
	b, err := json.Marshal(w)
	if err != nil {
		// Only strings, ints and already valid JSON go in, so this cannot
		// happen; fall back to an error event rather than an empty frame.
		return []byte(`{"type":"error","text":"cannot encode event"}`)
	}
	return b
}

func (e *Event) encodeHistoryJSON() []byte {
	w := wireHistory{Type: e.Kind.String(), Room: e.Room, Events: make([]json.RawMessage, len(e.Events)), More: e.More}
	if e.ID != 0 {
		w.ID = strconv.FormatUint(e.ID, 10)
	}
	if !e.Time.IsZero() {
		w.Time = e.Time.UTC().Format(time.RFC3339Nano)
	}
	for i, h := range e.Events {
		w.Events[i] = h.JSON()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return []byte(`{"type":"error","text":"cannot encode event"}`)
	}
	return b
}

// finish encodes the event's text line. It is called once, by the
// constructor, before the event is shared.
func (e *Event) finish() *Event {
	size := len(e.From) + len(e.To) + len(e.Text) + len(e.Addr) + len(e.Room) + 32
	for _, h := range e.Events {
		size += len(h.line)
	}
	if e.Kind == KindHistory {
		size += len(e.Events)*len("[2006-01-02 15:04] ") + len(historyEnd) + 40
	}
	for _, n := range e.Names {
		size += len(n) + 2
	}
	b := make([]byte, 0, size)
	switch e.Kind {
	case KindMessage:
		b = append(append(append(append(b, '<'), e.From...), "> "...), e.Text...)
	case KindAction:
		b = append(append(append(append(b, "* "...), e.From...), ' '), e.Text...)
	case KindPrivate:
		if e.Echo {
			b = append(append(b, "-> *"...), e.To...)
		} else {
			b = append(append(b, '*'), e.From...)
		}
		b = append(append(b, "* "...), e.Text...)
	case KindJoin, KindLeave:
		b = append(append(b, noticePrefix...), e.From...)
		if e.Addr != "" {
			b = append(append(append(b, " ("...), e.Addr...), ')')
		}
		if e.Kind == KindJoin {
			b = append(b, " joined"...)
		} else {
			b = append(b, " left"...)
		}
		if e.Text != "" {
			b = append(append(append(b, " ("...), e.Text...), ')')
		}
	case KindNick:
		b = append(append(append(append(b, noticePrefix...), e.From...), " is now known as "...), e.To...)
	case KindError:
		b = append(append(b, "! "...), e.Text...)
	case KindTopic:
		b = append(append(append(b, noticePrefix...), e.From...), " "...)
		if e.Text == "" {
			b = append(append(b, "cleared the topic of "...), e.Room...)
		} else {
			b = append(append(append(append(b, "set the topic of "...), e.Room...), ": "...), e.Text...)
		}
	case KindHello:
		b = append(append(b, noticePrefix...), e.Text...)
		if e.Addr != "" {
			b = append(append(append(append(b, "\r\n"...), noticePrefix...), "Topic: "...), e.Addr...)
		}
	case KindHistory:
		e.line = e.appendHistory(b)
		return e
	case KindBatch:
		for _, h := range e.Events {
			b = append(b, h.line...)
		}
		e.line = b
		return e
	case KindPresence:
		b = append(append(append(append(b, noticePrefix...), strconv.Itoa(e.Count)...), " in "...), e.Room...)
		b = append(b, ": "...)
		for i, n := range e.Names {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, n...)
		}
		if more := e.Count - len(e.Names); more > 0 {
			b = append(append(append(b, " and "...), strconv.Itoa(more)...), " more"...)
		}
		if e.Text != "" {
			b = append(append(b, "; registered: "...), strings.ReplaceAll(e.Text, " ", ", ")...)
		}
		if e.Addr != "" {
			b = append(append(b, "; verified: "...), strings.ReplaceAll(e.Addr, " ", ", ")...)
		}
	default: // KindSystem, KindHello
		b = append(append(b, noticePrefix...), e.Text...)
	}
	e.line = append(b, "\r\n"...)
	return e
}

// historyEnd starts the notice that ends a replayed history.
const historyEnd = noticePrefix + "end of history: "

// appendHistory appends the text encoding of a history to b: each line
// with the time it was said, "[14:02] <alice> hi", and the date too if
// that was not the day of the replay, "[2025-03-13 23:58] <bob> night",
// then a notice that the history ends there. Without them a newcomer on
// a terminal cannot tell what was said before they came from what is said
// now. Times are in UTC, as the JSON's are, and the notice says so: the
// members of a room may be anywhere, and the server's own zone is only
// where it happens to run.
//
// A history with no line (a scrollback that found none) is a notice that
// there are no earlier lines.
func (e *Event) appendHistory(b []byte) []byte {
	if len(e.Events) == 0 && !e.More {
		return append(b, noticePrefix+"no earlier lines\r\n"...)
	}
	now := e.Time
	if now.IsZero() {
		now = time.Now()
	}
	ny, nm, nd := now.UTC().Date()
	for _, h := range e.Events {
		if !h.Time.IsZero() {
			t := h.Time.UTC()
			b = append(b, '[')
			if y, m, d := t.Date(); y != ny || m != nm || d != nd {
				b = append(t.AppendFormat(b, time.DateOnly), ' ')
			}
			b = append(t.AppendFormat(b, "15:04"), "] "...)
		}
		b = append(b, h.line...)
	}
	b = append(strconv.AppendInt(append(b, historyEnd...), int64(len(e.Events)), 10), " earlier line"...)
	if len(e.Events) != 1 {
		b = append(b, 's')
	}
	return append(b, ", times in UTC\r\n"...)
}
