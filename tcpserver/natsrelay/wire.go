package natsrelay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"chatbridge/tcpserver"
)

// wireVersion is the version of the encoding below; a message of another
// version is refused rather than half understood.
const wireVersion = 1

// Limits on what a message from NATS may carry. Another node sends what its
// own members typed, so these are generous; they only stop garbage.
const (
	maxMessage = 64 << 10
	maxText    = 16 << 10
	maxAddr    = 128
	maxNodeID  = 64
)

// wireEvent is an event on NATS, as JSON.
type wireEvent struct {
	V    int    `json:"v"`
	Node string `json:"node"`           // the node it was made on
	ID   uint64 `json:"id"`             // its ID on that node
	Kind string `json:"kind"`           // message, action, join, leave, nick or private
	Room string `json:"room,omitempty"` // every kind but private
	From string `json:"from"`
	To   string `json:"to,omitempty"` // nick: the new name; private: the recipient
	Text string `json:"text,omitempty"`
	Addr string `json:"addr,omitempty"`
	Time int64  `json:"time"` // Unix nanoseconds
}

var wireKinds = map[string]tcpserver.Kind{
	"message": tcpserver.KindMessage,
	"action":  tcpserver.KindAction,
	"join":    tcpserver.KindJoin,
	"leave":   tcpserver.KindLeave,
	"nick":    tcpserver.KindNick,
	"private": tcpserver.KindPrivate,
}

var errBadMessage = errors.New("bad message")

// encodeEvent returns ev as node's message.
func encodeEvent(node string, ev *tcpserver.Event) ([]byte, error) {
	if _, ok := wireKinds[ev.Kind.String()]; !ok {
		return nil, fmt.Errorf("encode %s event: not relayed", ev.Kind)
	}
	w := wireEvent{
		V: wireVersion, Node: node, ID: ev.ID, Kind: ev.Kind.String(),
		Room: ev.Room, From: ev.From, To: ev.To, Text: ev.Text, Addr: ev.Addr,
	}
	if !ev.Time.IsZero() {
		w.Time = ev.Time.UnixNano()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", ev.Kind, err)
	}
	return b, nil
}

// decodeEvent reads a message from NATS, giving the event Node and NodeID
// and no ID (the hub gives it one). Whatever b holds, it returns
// either an event fit to show members (names and rooms valid, text
// cleaned of control characters as the hub cleans what members type) or
// an error wrapping errBadMessage.
func decodeEvent(b []byte) (*tcpserver.Event, error) {
	if len(b) > maxMessage {
		return nil, fmt.Errorf("%w: %d bytes", errBadMessage, len(b))
	}
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if w.V != wireVersion {
		return nil, fmt.Errorf("%w: version %d", errBadMessage, w.V)
	}
	if !validNodeID(w.Node) {
		return nil, fmt.Errorf("%w: node %q", errBadMessage, w.Node)
	}
	kind, ok := wireKinds[w.Kind]
	if !ok {
		return nil, fmt.Errorf("%w: kind %q", errBadMessage, w.Kind)
	}
	if tcpserver.ValidNick(w.From) != nil {
		return nil, fmt.Errorf("%w: from %q", errBadMessage, w.From)
	}
	if kind == tcpserver.KindNick || kind == tcpserver.KindPrivate {
		if tcpserver.ValidNick(w.To) != nil {
			return nil, fmt.Errorf("%w: to %q", errBadMessage, w.To)
		}
	} else {
		w.To = ""
	}
	if kind != tcpserver.KindPrivate {
		if room, err := tcpserver.RoomName(w.Room); err != nil || room != w.Room {
			return nil, fmt.Errorf("%w: room %q", errBadMessage, w.Room)
		}
	} else {
		w.Room = ""
	}
	if len(w.Text) > maxText || len(w.Addr) > maxAddr {
		return nil, fmt.Errorf("%w: text or addr too long", errBadMessage)
	}
	text := tcpserver.CleanLine([]byte(w.Text))
	switch kind {
	case tcpserver.KindMessage, tcpserver.KindAction, tcpserver.KindPrivate:
		if strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("%w: empty %s", errBadMessage, w.Kind)
		}
	case tcpserver.KindNick:
		text = ""
	}
	addr := ""
	if kind == tcpserver.KindJoin || kind == tcpserver.KindLeave {
		addr = tcpserver.CleanLine([]byte(w.Addr))
	}
	t := time.Now()
	if w.Time > 0 {
		t = time.Unix(0, w.Time)
	}
	return &tcpserver.Event{
		NodeID: w.ID, Kind: kind, Time: t, Room: w.Room, From: w.From, To: w.To,
		Text: text, Addr: addr, Node: w.Node,
	}, nil
}

// validNodeID reports whether s can be a node ID: it is a subject token.
func validNodeID(s string) bool { return tcpserver.ValidName(s, maxNodeID) }

// nameEntry is the value of a name in the names bucket.
type nameEntry struct {
	Node string `json:"node"`
	Name string `json:"name"` // as its member spells it
	Room string `json:"room,omitempty"`
}

func (e nameEntry) encode() []byte {
	b, _ := json.Marshal(e) // three strings: cannot fail
	return b
}

// decodeEntry reads a names bucket value, refusing garbage as decodeEvent
// does. key is the folded name it was stored under.
func decodeEntry(key string, b []byte) (nameEntry, error) {
	var e nameEntry
	if len(b) > maxMessage {
		return e, fmt.Errorf("%w: %d bytes", errBadMessage, len(b))
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if !validNodeID(e.Node) || tcpserver.ValidNick(e.Name) != nil || strings.ToLower(e.Name) != key {
		return e, fmt.Errorf("%w: entry %q", errBadMessage, key)
	}
	if e.Room != "" {
		if room, err := tcpserver.RoomName(e.Room); err != nil || room != e.Room {
			return e, fmt.Errorf("%w: room %q", errBadMessage, e.Room)
		}
	}
	return e, nil
}
