package natsrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Reading the history stream costs NATS no consumer: every read is a
// direct get ($JS.API.DIRECT.GET.<stream>, which the stream allows with
// AllowDirect), answered by any replica, that the server forgets once
// answered. A server that knows batched direct gets (2.11 and later)
// answers a range of one room's lines in one request; an older one
// answers one line per request, and the relay asks line by line.

// directRequest is a direct get: the next message of subject from seq,
// and with Batch, up to that many.
type directRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastFor  string `json:"last_by_subj,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// A storedLine is one message of the stream as a direct get returns it.
type storedLine struct {
	seq     uint64
	subject string
	data    []byte
}

// errNoLines is a direct get's answer when nothing matches.
var errNoLines = errors.New("no such message")

// maxDirectBytes bounds the bytes one batched direct get answers with,
// so that an answer stays well within a NATS message's and a slow
// connection's limits.
const maxDirectBytes = 4 << 20

// directGet returns up to n messages of subject from seq on, oldest
// first, and whether the stream holds more of them after the last. With
// n > 1 it asks for a batch; a server that does not batch answers one
// message, and then directGet goes on one request at a time.
func (r *Relay) directGet(ctx context.Context, subject string, seq uint64, n int) ([]storedLine, bool, error) {
	if seq == 0 {
		seq = 1
	}
	api := "$JS.API.DIRECT.GET." + r.streamName()
	var out []storedLine
	for len(out) < n {
		req := directRequest{Seq: seq, NextFor: subject}
		batched := !r.noBatch.Load() && n-len(out) > 1
		if batched {
			req.Batch, req.MaxBytes = n-len(out), maxDirectBytes
		}
		b, _ := json.Marshal(req) // numbers and a subject: cannot fail
		got, more, isBatch, err := r.directAsk(ctx, api, b, batched)
		if errors.Is(err, errNoLines) {
			return out, false, nil
		}
		if err != nil {
			return out, false, err
		}
		if batched && !isBatch {
			r.noBatch.Store(true) // an older server: one line per request from now on
		}
		out = append(out, got...)
		if !more || len(got) == 0 {
			return out, more, nil
		}
		seq = got[len(got)-1].seq + 1
	}
	return out, true, nil
}

// directAsk sends one direct get and reads its answer: one message, or
// for a batch the messages and then an end-of-batch status. more says
// whether the stream holds more messages of the subject after the last
// returned (known only from a batch; an answer of one line says yes).
func (r *Relay) directAsk(ctx context.Context, api string, req []byte, batched bool) (lines []storedLine, more, isBatch bool, err error) {
	if !batched {
		m, err := r.nc.RequestWithContext(ctx, api, req)
		if err != nil {
			return nil, false, false, fmt.Errorf("direct get: %w", err)
		}
		l, err := readDirect(m)
		if err != nil {
			return nil, false, false, err
		}
		return []storedLine{l}, true, false, nil
	}
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, false, false, fmt.Errorf("direct get: %w", err)
	}
	defer sub.Unsubscribe()
	if err := r.nc.PublishRequest(api, inbox, req); err != nil {
		return nil, false, false, fmt.Errorf("direct get: %w", err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return lines, false, true, fmt.Errorf("direct get: %w", err)
		}
		if len(m.Data) == 0 && m.Header.Get("Status") == "204" { // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return lines, pending > 0, true, nil
		}
		l, err := readDirect(m)
		if err != nil {
			if len(lines) == 0 {
				return nil, false, true, err
			}
			return lines, false, true, err
		}
		lines = append(lines, l)
		if m.Header.Get("Nats-Num-Pending") == "" && len(lines) == 1 {
			// No batch info: a server that answered with one message.
			return lines, true, false, nil
		}
	}
}

// readDirect reads one message of a direct get's answer.
func readDirect(m *nats.Msg) (storedLine, error) {
	if len(m.Data) == 0 && m.Header.Get("Status") != "" {
		if st := m.Header.Get("Status"); st == "404" {
			return storedLine{}, errNoLines
		}
		return storedLine{}, fmt.Errorf("direct get: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil || seq == 0 {
		return storedLine{}, fmt.Errorf("direct get: no sequence in the answer")
	}
	return storedLine{seq: seq, subject: m.Header.Get("Nats-Subject"), data: m.Data}, nil
}

// errNoCounts is countFrom's answer from a server that does not batch:
// it says nothing of how many messages follow.
var errNoCounts = errors.New("the server does not count direct gets")

// countFrom returns how many messages of subject the stream holds from
// seq on, in one batched direct get of one message: its end-of-batch
// says how many more there are.
func (r *Relay) countFrom(ctx context.Context, subject string, seq uint64) (uint64, error) {
	if r.noBatch.Load() {
		return 0, errNoCounts
	}
	b, _ := json.Marshal(directRequest{Seq: max(seq, 1), NextFor: subject, Batch: 1})
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("direct get: %w", err)
	}
	defer sub.Unsubscribe()
	if err := r.nc.PublishRequest("$JS.API.DIRECT.GET."+r.streamName(), inbox, b); err != nil {
		return 0, fmt.Errorf("direct get: %w", err)
	}
	var n uint64
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return 0, fmt.Errorf("direct get: %w", err)
		}
		switch st := m.Header.Get("Status"); {
		case len(m.Data) == 0 && st == "204":
			pending, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			if err != nil {
				return 0, errNoCounts
			}
			return n + pending, nil
		case len(m.Data) == 0 && st == "404":
			return 0, nil
		case len(m.Data) == 0 && st != "":
			return 0, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		case m.Header.Get("Nats-Num-Pending") == "":
			r.noBatch.Store(true)
			return 0, errNoCounts
		}
		n++
	}
}

// lastSeq returns the sequence of the last message of subject, 0 if none.
func (r *Relay) lastSeq(ctx context.Context, subject string) (uint64, error) {
	b, _ := json.Marshal(directRequest{LastFor: subject})
	m, err := r.nc.RequestWithContext(ctx, "$JS.API.DIRECT.GET."+r.streamName(), b)
	if err != nil {
		return 0, fmt.Errorf("direct get: %w", err)
	}
	l, err := readDirect(m)
	if errors.Is(err, errNoLines) {
		return 0, nil
	}
	return l.seq, err
}
