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

	"chatbridge/tcpserver"
)

// History implements [tcpserver.Cluster]: the room's last History lines
// from the stream, read with direct gets (see Lines), which cost NATS no
// consumer: a join used to make one and delete it, and 1,000 joins a
// second took a third of nats-server's CPU. The hub tells lines apart by
// Node and NodeID: this node's own come with their ID, the others' with
// Node and NodeID and no ID.
func (r *Relay) History(ctx context.Context, room string) ([]*tcpserver.Event, error) {
	lines, _, err := r.Lines(ctx, room, tcpserver.LineKey{}, r.cfg.History)
	for _, ev := range lines {
		if ev.Node != "" {
			ev.ID = 0
		}
	}
	return lines, err
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
