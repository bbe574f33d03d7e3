package natsrelay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"chatbridge/tcpserver"
)

// History implements [tcpserver.Cluster]: it reads the room's lines from
// the stream, which keeps the last History of each room.
func (r *Relay) History(ctx context.Context, room string) ([]*tcpserver.Event, error) {
	s, err := r.current()
	if err != nil {
		return nil, err
	}
	// An ephemeral consumer for one read, deleted after it; if this node
	// dies first, the server drops it after InactiveThreshold.
	cons, err := s.history.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     r.lineSubject(room),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", room, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), clusterCallTimeout)
		defer cancel()
		s.history.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	pending := int(cons.CachedInfo().NumPending)
	if pending == 0 {
		return nil, nil
	}
	batch, err := cons.Fetch(min(pending, r.cfg.History), jetstream.FetchContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", room, err)
	}
	lines := make([]*tcpserver.Event, 0, pending)
	mac := r.seal.newHash()
	for m := range batch.Messages() {
		// Lines are old by nature: the window does not apply, and the
		// hub tells a line replayed into the stream from the original
		// by its node and ID (Room.seed).
		ev, _, why, err := r.readRoomEvent(m.Subject(), m.Data(), mac)
		if err == nil && (ev.Room != room || ev.Kind != tcpserver.KindMessage && ev.Kind != tcpserver.KindAction) {
			why, err = ignoredBad, fmt.Errorf("%w: %s event of %s in the history of %s", errBadMessage, ev.Kind, ev.Room, room)
		}
		if err != nil {
			r.ignore(why, m.Subject(), err)
			continue
		}
		if ev.Node == r.cfg.NodeID { // our own: as the hub knows it
			ev.Node, ev.ID, ev.NodeID = "", ev.NodeID, 0
		}
		lines = append(lines, ev)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return lines, fmt.Errorf("history of %s: %w", room, err)
	}
	return lines, nil
}

// clusterCallTimeout bounds a call to NATS nobody else bounds.
const clusterCallTimeout = 2 * time.Second

// Private implements [tcpserver.Cluster]: it finds the node of the member
// called to and asks it to deliver. The request is sealed and its text
// encrypted; the answer must be sealed by that node and carry the
// request's nonce, so nobody else can say "delivered". It waits for such
// an answer, ignoring any other, until ctx ends.
func (r *Relay) Private(ctx context.Context, from, to, text string) (string, error) {
	entry, ok := r.names.nodeOf(to)
	if _, err := r.current(); err != nil {
		return "", err
	}
	if !ok {
		return "", tcpserver.ErrNoSuchMember
	}
	nonce := newNonce()
	payload, err := encodePrivate(r.cfg.NodeID, nonce, from, entry.Name, r.seal.hide(nonce, text), time.Now().UnixNano())
	if err != nil {
		return "", fmt.Errorf("private message to %s: %w", to, err)
	}
	subject := r.privateSubject(entry.Node)
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return "", fmt.Errorf("private message to %s on %s: %w", to, entry.Node, err)
	}
	defer sub.Unsubscribe()
	if err := r.nc.PublishRequest(subject, inbox, r.seal.seal(nil, purposePrivate, subject, payload)); err != nil {
		return "", fmt.Errorf("private message to %s on %s: %w", to, entry.Node, err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return "", fmt.Errorf("private message to %s on %s: %w", to, entry.Node, err)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
			return "", tcpserver.ErrNoSuchMember // NATS says nobody listens: its node is gone
		}
		reply, why, err := r.readReply(subject, entry.Node, nonce, to, m.Data)
		switch {
		case err != nil:
			r.ignore(why, inbox, err)
			continue
		case reply.Refused != "":
			return "", fmt.Errorf("node %s refused it: %s", entry.Node, clip(reply.Refused))
		case reply.Name == "":
			return "", tcpserver.ErrNoSuchMember
		}
		return reply.Name, nil
	}
}

// readReply returns node's answer to the private message to to that was
// sent on subject with nonce.
func (r *Relay) readReply(subject, node string, nonce [nonceLen]byte, to string, data []byte) (wireReply, ignored, error) {
	var w wireReply
	if len(data) > maxEntry {
		return w, ignoredUnverified, fmt.Errorf("%d bytes, more than an answer", len(data))
	}
	payload, err := r.seal.open(nil, purposeReply, subject, data)
	if err != nil {
		return w, ignoredUnverified, err
	}
	if err := json.Unmarshal(payload, &w); err != nil {
		return w, ignoredBad, fmt.Errorf("%w: %v", errBadMessage, err)
	}
	got, err := decodeNonce(w.Nonce)
	if err != nil || got != nonce {
		// A valid answer to another request: replayed.
		return w, ignoredReplayed, fmt.Errorf("answer to another private message")
	}
	if w.V != wireVersion || w.Node != node || (w.Name != "" && !strings.EqualFold(w.Name, to)) {
		return w, ignoredBad, fmt.Errorf("%w: answer from %q for %q", errBadMessage, w.Node, w.Name)
	}
	return w, 0, nil
}

// onPrivate delivers a private message from another node to a local
// member and answers, sealed, with the member's name, or nothing. A
// message without a valid MAC, or seen before, gets no answer at all.
func (r *Relay) onPrivate(m *nats.Msg) {
	p, text, why, err := r.readPrivate(m.Subject, m.Data, time.Now())
	if err != nil {
		r.ignore(why, m.Subject, err)
		if why != ignoredBad || p.node == "" {
			return
		}
	}
	reply := wireReply{V: wireVersion, Node: r.cfg.NodeID, Nonce: base64.RawURLEncoding.EncodeToString(p.nonce[:])}
	if err == nil {
		var name string
		name, err = r.hub.DeliverPrivate(p.from, p.to, text)
		switch {
		case err == nil:
			reply.Name = name
		case errors.Is(err, tcpserver.ErrNoSuchMember):
			err = nil // no name: nobody here is called p.to
		}
	}
	if err != nil {
		reply.Refused = clip(err.Error())
	}
	b, _ := marshal(reply) // strings and a number: cannot fail
	if m.Reply != "" {
		m.Respond(r.seal.seal(nil, purposeReply, m.Subject, b))
	}
}

// readPrivate opens, checks and decrypts a private message that arrived
// on subject. A sealed message refused for what it says (ignoredBad) comes
// back with its nonce, to be answered.
func (r *Relay) readPrivate(subject string, data []byte, now time.Time) (private, string, ignored, error) {
	if len(data) > privateMessageMax(r.cfg.MaxLine) {
		return private{}, "", ignoredUnverified, fmt.Errorf("%d bytes, more than a sealed private message", len(data))
	}
	payload, err := r.seal.open(nil, purposePrivate, subject, data)
	if err != nil {
		return private{}, "", ignoredUnverified, err
	}
	p, err := decodePrivate(payload)
	if err != nil {
		return private{}, "", ignoredBad, err // without a nonce: not answered
	}
	if !inWindow(p.time, now, r.cfg.Window) || !r.nonces.first(p.nonce, now) {
		return p, "", ignoredReplayed, fmt.Errorf("private message from %s on %s seen before, or made at %v", p.from, p.node, timeOf(p.time))
	}
	text, err := r.seal.reveal(p.nonce, p.sealed)
	if err != nil {
		return p, "", ignoredBad, err
	}
	text = tcpserver.CleanLine([]byte(text))
	switch {
	case strings.TrimSpace(text) == "":
		return p, "", ignoredBad, fmt.Errorf("%w: a blank private message", errBadMessage)
	case !fitsLine(text, r.cfg.MaxLine):
		return p, "", ignoredBad, fmt.Errorf("%w: %d bytes, longer than a line there (--max-line %d)", errBadMessage, len(text), r.cfg.MaxLine)
	}
	return p, text, 0, nil
}
