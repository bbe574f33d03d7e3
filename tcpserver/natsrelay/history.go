package natsrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	for m := range batch.Messages() {
		ev, err := decodeEvent(m.Data())
		if err != nil || ev.Room != room || (ev.Kind != tcpserver.KindMessage && ev.Kind != tcpserver.KindAction) {
			r.bad.Add(1)
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

// privateReply is a node's answer to a private message.
type privateReply struct {
	Name string `json:"name,omitempty"` // the recipient, as spelled; "" if nobody
}

// Private implements [tcpserver.Cluster]: it finds the node of the member
// called to and asks it to deliver.
func (r *Relay) Private(ctx context.Context, from, to, text string) (string, error) {
	entry, ok := r.names.nodeOf(to)
	if !ok {
		if _, err := r.current(); err != nil {
			return "", err
		}
		return "", tcpserver.ErrNoSuchMember
	}
	if _, err := r.current(); err != nil {
		return "", err
	}
	b, err := encodeEvent(r.cfg.NodeID, &tcpserver.Event{Kind: tcpserver.KindPrivate, From: from, To: entry.Name, Text: text})
	if err != nil {
		return "", err
	}
	m, err := r.nc.RequestWithContext(ctx, r.privateSubject(entry.Node), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return "", tcpserver.ErrNoSuchMember // its node is gone
	}
	if err != nil {
		return "", fmt.Errorf("private message to %s on %s: %w", to, entry.Node, err)
	}
	var reply privateReply
	if err := json.Unmarshal(m.Data, &reply); err != nil || tcpserver.ValidNick(reply.Name) != nil {
		return "", tcpserver.ErrNoSuchMember
	}
	return reply.Name, nil
}

// onPrivate delivers a private message from another node to a local
// member and answers with the member's name, or nothing.
func (r *Relay) onPrivate(m *nats.Msg) {
	var reply privateReply
	ev, err := decodeEvent(m.Data)
	if err == nil && ev.Kind == tcpserver.KindPrivate {
		if name, ok := r.hub.DeliverPrivate(ev.From, ev.To, ev.Text); ok {
			reply.Name = name
		}
	} else {
		r.bad.Add(1)
	}
	b, _ := json.Marshal(reply)
	if m.Reply != "" {
		m.Respond(b)
	}
}
