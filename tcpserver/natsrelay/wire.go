package natsrelay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"chatbridge/tcpserver"
)

// wireVersion is the version of the encoding below; a message of another
// version is refused rather than half understood. Version 1 was unsealed:
// nodes of both versions cannot share a cluster.
const wireVersion = 2

// Limits on what a message from NATS may carry besides its text, which
// obeys the hub's MaxLine (see fitsLine).
const (
	maxAddr = 128
	maxSess = 32
	// maxOverhead bounds everything in a sealed room event but its text:
	// the MAC, the field names, node, session, numbers, room, names and
	// the address, each as JSON may escape it.
	maxOverhead = 2048
	// maxEntry bounds a sealed names bucket entry (the bucket's
	// MaxValueSize): the MAC, a node, a name, a room and a time.
	maxEntry = 1024
)

// lineMessageMax is the largest sealed room event a node with MaxLine
// maxLine can send: its text, cleaned, is at most 3*maxLine bytes (an
// invalid byte becomes the three of U+FFFD, which JSON does not escape; a
// byte JSON escapes takes two). The history stream refuses bigger ones.
func lineMessageMax(maxLine int) int { return 3*maxLine + maxOverhead }

// privateMessageMax is the same for a private message, whose text is
// encrypted and in base64.
func privateMessageMax(maxLine int) int { return 4*maxLine + maxOverhead }

// fitsLine reports whether text could be a line a member typed on a hub
// whose MaxLine is maxLine, once cleaned: cleaning only removes
// characters, but for turning an invalid byte into U+FFFD, so the shortest
// line text can come from is its length less two bytes per U+FFFD.
func fitsLine(text string, maxLine int) bool {
	if len(text) <= maxLine {
		return true
	}
	return len(text)-2*strings.Count(text, string(utf8.RuneError)) <= maxLine
}

// marshal encodes v without escaping <, > and & (a line full of them would
// otherwise grow sixfold), and without the encoder's trailing newline.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// wireEvent is a room event on NATS: the payload of a sealed message.
type wireEvent struct {
	V    int    `json:"v"`
	Node string `json:"node"` // the node it was made on
	Sess string `json:"sess"` // that node's session (see replayGuard)
	Seq  uint64 `json:"seq"`  // its number in the session, from 1
	ID   uint64 `json:"id"`   // its ID on that node
	Kind string `json:"kind"` // message, action, join, leave or nick
	Room string `json:"room"`
	From string `json:"from"`
	To   string `json:"to,omitempty"` // nick: the new name
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
}

var errBadMessage = errors.New("bad message")

// origin is where a room event came from, for the replay guard.
type origin struct {
	sess string
	seq  uint64
}

// encodeEvent returns ev, made at at, as the payload of node's message
// o.seq of session o.sess.
func encodeEvent(node string, o origin, ev *tcpserver.Event, at time.Time) ([]byte, error) {
	if _, ok := wireKinds[ev.Kind.String()]; !ok {
		return nil, fmt.Errorf("encode %s event: not relayed", ev.Kind)
	}
	w := wireEvent{
		V: wireVersion, Node: node, Sess: o.sess, Seq: o.seq, ID: ev.ID, Kind: ev.Kind.String(),
		Room: ev.Room, From: ev.From, To: ev.To, Text: ev.Text, Addr: ev.Addr, Time: at.UnixNano(),
	}
	b, err := marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", ev.Kind, err)
	}
	return b, nil
}

// decodeEvent reads the payload of a room event from NATS, giving the
// event Node and NodeID and no ID (the hub gives it one). Whatever b holds,
// it returns either an event fit to show members (names and room valid,
// text cleaned of control characters as the hub cleans what members type,
// and no longer than a member of a hub with maxLine could have made it) or
// an error wrapping errBadMessage.
func decodeEvent(b []byte, maxLine int) (*tcpserver.Event, origin, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, origin{}, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if w.V != wireVersion {
		return nil, origin{}, fmt.Errorf("%w: version %d", errBadMessage, w.V)
	}
	if !validNodeID(w.Node) || !tcpserver.ValidName(w.Sess, maxSess) || w.Seq == 0 || w.Time <= 0 {
		return nil, origin{}, fmt.Errorf("%w: node %q, session %q, seq %d, time %d", errBadMessage, w.Node, w.Sess, w.Seq, w.Time)
	}
	kind, ok := wireKinds[w.Kind]
	if !ok {
		return nil, origin{}, fmt.Errorf("%w: kind %q", errBadMessage, w.Kind)
	}
	if tcpserver.ValidNick(w.From) != nil {
		return nil, origin{}, fmt.Errorf("%w: from %q", errBadMessage, w.From)
	}
	if kind == tcpserver.KindNick {
		if tcpserver.ValidNick(w.To) != nil {
			return nil, origin{}, fmt.Errorf("%w: to %q", errBadMessage, w.To)
		}
	} else {
		w.To = ""
	}
	if room, err := tcpserver.RoomName(w.Room); err != nil || room != w.Room {
		return nil, origin{}, fmt.Errorf("%w: room %q", errBadMessage, w.Room)
	}
	if len(w.Addr) > maxAddr {
		return nil, origin{}, fmt.Errorf("%w: addr too long", errBadMessage)
	}
	text := tcpserver.CleanLine([]byte(w.Text))
	if !fitsLine(text, maxLine) {
		return nil, origin{}, fmt.Errorf("%w: text of %d bytes, more than a line", errBadMessage, len(text))
	}
	switch kind {
	case tcpserver.KindMessage, tcpserver.KindAction:
		if strings.TrimSpace(text) == "" {
			return nil, origin{}, fmt.Errorf("%w: empty %s", errBadMessage, w.Kind)
		}
	case tcpserver.KindNick:
		text = ""
	}
	addr := ""
	if kind == tcpserver.KindJoin || kind == tcpserver.KindLeave {
		addr = tcpserver.CleanLine([]byte(w.Addr))
	}
	return &tcpserver.Event{
		NodeID: w.ID, Kind: kind, Time: timeOf(w.Time), Room: w.Room, From: w.From, To: w.To,
		Text: text, Addr: addr, Node: w.Node,
	}, origin{sess: w.Sess, seq: w.Seq}, nil
}

// MaxNodeID is the longest node ID, in bytes.
const MaxNodeID = 64

// validNodeID reports whether s can be a node ID: it is a subject token.
func validNodeID(s string) bool { return tcpserver.ValidName(s, MaxNodeID) }

// wirePrivate is a private message to a member of another node: the
// payload of a sealed request on that node's subject. Its text is
// encrypted (see sealer.hide) under Nonce, which also binds the answer to
// it.
type wirePrivate struct {
	V     int    `json:"v"`
	Node  string `json:"node"` // the sender's node
	Nonce string `json:"nonce"`
	From  string `json:"from"`
	To    string `json:"to"`
	Text  string `json:"text"` // encrypted, in base64
	Time  int64  `json:"time"`
}

// private is a decoded private message, its text still encrypted.
type private struct {
	node, from, to string
	nonce          [nonceLen]byte
	sealed         []byte
	time           int64
}

func encodePrivate(node string, nonce [nonceLen]byte, from, to string, sealed []byte, at int64) ([]byte, error) {
	return marshal(wirePrivate{
		V: wireVersion, Node: node, Nonce: base64.RawURLEncoding.EncodeToString(nonce[:]),
		From: from, To: to, Text: base64.RawURLEncoding.EncodeToString(sealed), Time: at,
	})
}

// decodePrivate reads the payload of a private message, refusing garbage
// as decodeEvent does. The text is checked once decrypted.
func decodePrivate(b []byte) (private, error) {
	var w wirePrivate
	var p private
	if err := json.Unmarshal(b, &w); err != nil {
		return p, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if w.V != wireVersion || !validNodeID(w.Node) || w.Time <= 0 ||
		tcpserver.ValidNick(w.From) != nil || tcpserver.ValidNick(w.To) != nil {
		return p, fmt.Errorf("%w: private message from %q on %q to %q", errBadMessage, w.From, w.Node, w.To)
	}
	nonce, err := decodeNonce(w.Nonce)
	if err != nil {
		return p, err
	}
	sealed, err := base64.RawURLEncoding.Strict().DecodeString(w.Text)
	if err != nil {
		return p, fmt.Errorf("%w: private text: %v", errBadMessage, err)
	}
	return private{node: w.Node, from: w.From, to: w.To, nonce: nonce, sealed: sealed, time: w.Time}, nil
}

func decodeNonce(s string) ([nonceLen]byte, error) {
	var n [nonceLen]byte
	if k, err := base64.RawURLEncoding.Strict().Decode(n[:], []byte(s)); err != nil || k != nonceLen || len(s) != base64.RawURLEncoding.EncodedLen(nonceLen) {
		return n, fmt.Errorf("%w: nonce %q", errBadMessage, s)
	}
	return n, nil
}

// wireReply is a node's answer to a private message: the payload of a
// sealed reply, bound to the request by its nonce.
type wireReply struct {
	V       int    `json:"v"`
	Node    string `json:"node"`              // the node that answers
	Nonce   string `json:"nonce"`             // the request's
	Name    string `json:"name,omitempty"`    // the recipient, as spelled; "" if nobody
	Refused string `json:"refused,omitempty"` // why the node did not deliver it, if it was not for want of a recipient
}

// nameEntry is the value of a name in the names bucket: the payload of a
// sealed entry whose "subject" is its key.
type nameEntry struct {
	Node string `json:"node"`
	Name string `json:"name"` // as its member spells it
	Room string `json:"room,omitempty"`
	Time int64  `json:"time"` // when its node wrote it, Unix nanoseconds
}

func (e nameEntry) encode() []byte {
	b, _ := marshal(e) // strings and a number: cannot fail
	return b
}

// sameAs reports whether e says what o does, whenever it was written.
func (e nameEntry) sameAs(o nameEntry) bool {
	return e.Node == o.Node && e.Name == o.Name && e.Room == o.Room
}

// beatEntry is the value of a node's heartbeat in the names bucket, under
// beatKey(node): the payload of an entry sealed for purposeBeat.
type beatEntry struct {
	Node string `json:"node"`
	Time int64  `json:"time"` // when its node wrote it, Unix nanoseconds
}

func (e beatEntry) encode() []byte {
	b, _ := marshal(e) // a string and a number: cannot fail
	return b
}

// beatPrefix starts the keys of heartbeats. No name has a dot in it, so
// no heartbeat's key is a name's.
const beatPrefix = "node."

func beatKey(node string) string { return beatPrefix + node }

// decodeBeat reads the payload of a heartbeat stored under key.
func decodeBeat(key string, b []byte) (beatEntry, error) {
	var e beatEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if !validNodeID(e.Node) || beatKey(e.Node) != key || e.Time <= 0 {
		return e, fmt.Errorf("%w: heartbeat %q", errBadMessage, key)
	}
	return e, nil
}

// decodeEntry reads the payload of a names bucket entry, refusing garbage
// as decodeEvent does. key is the folded name it was stored under.
func decodeEntry(key string, b []byte) (nameEntry, error) {
	var e nameEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	if !validNodeID(e.Node) || tcpserver.ValidNick(e.Name) != nil || strings.ToLower(e.Name) != key || e.Time <= 0 {
		return e, fmt.Errorf("%w: entry %q", errBadMessage, key)
	}
	if e.Room != "" {
		if room, err := tcpserver.RoomName(e.Room); err != nil || room != e.Room {
			return e, fmt.Errorf("%w: room %q", errBadMessage, e.Room)
		}
	}
	return e, nil
}
