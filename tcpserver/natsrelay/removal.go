package natsrelay

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"chatbridge/tcpserver"
)

// Removing lines (/delete, /purge): the relay is a
// [tcpserver.LineRemover]. The operator's node finds each line's stream
// sequence in the room's index (growing it back, as scrollback does, for
// a line not in it yet), deletes those messages from the history stream
// (the JetStream API's message delete) and forgets them in its index.
// The delete does not erase: JetStream's secure erase, which overwrites
// the message on disk at once, took 5.6 s for a /purge of 1,000 lines
// against 51 ms (TestRemoveAPurge); a deleted message is unreadable at
// once and leaves the disk when its block is compacted or expires.
// The other nodes' indexes still name the lines: Lines finds them gone
// from the stream and forgets them then (see forgetMissing).

// Bounds on one Remove, so that a /purge costs what any page costs.
const (
	// maxRemoveKeys is the most lines one Remove takes; the hub asks for
	// 1,000 at most (a /purge).
	maxRemoveKeys = 10000
	// maxRemoveBack is how many lines, at most, Remove indexes further
	// back to find lines not in the index yet: the hub looks for the
	// lines to remove among the room's newest 10,000, which reading them
	// indexed already.
	maxRemoveBack = 20000
	// deleteWindow is how many message deletes are in flight at once: a
	// /purge of 1,000 lines is a few round trips, not 1,000.
	deleteWindow = 64
)

// Remove implements [tcpserver.LineRemover]: the lines of room called
// keys leave the history stream. A key the stream does not hold (never
// said, trimmed, removed already) is no error.
func (r *Relay) Remove(ctx context.Context, room string, keys ...tcpserver.LineKey) error {
	if len(keys) == 0 {
		return nil
	}
	if len(keys) > maxRemoveKeys {
		return fmt.Errorf("remove %d lines of %s: at most %d at once", len(keys), room, maxRemoveKeys)
	}
	if _, err := r.current(); err != nil {
		return err
	}
	want := make(map[tcpserver.LineKey]bool, len(keys))
	for _, k := range keys {
		if k.Node == r.cfg.NodeID {
			k.Node = "" // as the index names this node's lines
		}
		want[k] = true
	}
	mac := r.seal.newHash()
	ri := r.index.get(room)
	if err := ri.take(ctx, "remove lines of "+room); err != nil {
		return err
	}
	defer ri.release()
	if err := r.update(ctx, ri, 100, mac); err != nil {
		return err
	}
	found := ri.lookup(want)
	for looked := 0; len(found) < len(want) && !ri.complete && looked < maxRemoveBack; {
		added, err := r.extendBack(ctx, ri, indexBatch, 0, mac)
		if err != nil {
			return err
		}
		looked += added
		found = ri.lookup(want)
	}
	r.index.resized(ri, len(ri.entries))
	if len(found) == 0 {
		return nil
	}
	seqs := make([]uint64, 0, len(found))
	for seq := range found {
		seqs = append(seqs, seq)
	}
	kept, err := r.deleteMessages(ctx, seqs)
	// Forget what the stream no longer holds, whatever else failed.
	ri.forget(func(e indexEntry) bool { return found[e.seq] && !kept[e.seq] })
	r.index.resized(ri, len(ri.entries))
	if err != nil {
		return fmt.Errorf("remove lines of %s: %w", room, err)
	}
	return nil
}

// lookup returns the sequences of the lines of ri that want names.
func (ri *roomIndex) lookup(want map[tcpserver.LineKey]bool) map[uint64]bool {
	found := make(map[uint64]bool, len(want))
	for k := range want {
		if p := ri.find(k); p >= 0 {
			found[ri.entries[p].seq] = true
		}
	}
	return found
}

// forget drops the entries gone says are gone, keeping the rest in order.
func (ri *roomIndex) forget(gone func(indexEntry) bool) {
	kept := ri.entries[:0]
	for _, e := range ri.entries {
		if !gone(e) {
			kept = append(kept, e)
		}
	}
	clear(ri.entries[len(kept):])
	ri.entries = kept
	ri.reindex()
}

// msgDeleteRequest and msgDeleteResponse are the JetStream API's message
// delete ($JS.API.STREAM.MSG.DELETE.<stream>).
type msgDeleteRequest struct {
	Seq     uint64 `json:"seq"`
	NoErase bool   `json:"no_erase,omitempty"`
}

type msgDeleteResponse struct {
	Success bool `json:"success"`
	Error   *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// JetStream's error codes for a message it does not hold: no error to
// a remover.
const (
	jsNoMessageFound   = 10037
	jsSequenceNotFound = 10043
	jsMsgDeleteFailed  = 10057 // with "no message found" from the store
)

// deleteMessages deletes the messages seqs from the history stream,
// deleteWindow requests in flight at once. It returns the messages it
// could not be sure it deleted (unanswered, or refused) and why.
func (r *Relay) deleteMessages(ctx context.Context, seqs []uint64) (kept map[uint64]bool, err error) {
	kept = make(map[uint64]bool)
	pending := make(map[int]bool, deleteWindow) // sent, not answered
	defer func() {
		for i := range pending {
			kept[seqs[i]] = true
		}
	}()
	api := "$JS.API.STREAM.MSG.DELETE." + r.streamName()
	inbox := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(inbox + ".*")
	if err != nil {
		for _, s := range seqs {
			kept[s] = true
		}
		return kept, fmt.Errorf("delete messages: %w", err)
	}
	defer sub.Unsubscribe()
	var refused error
	for sent := 0; sent < len(seqs) || len(pending) > 0; {
		for sent < len(seqs) && len(pending) < deleteWindow {
			b, _ := json.Marshal(msgDeleteRequest{Seq: seqs[sent], NoErase: true}) // numbers: cannot fail
			pending[sent] = true
			sent++
			if err := r.nc.PublishRequest(api, inbox+"."+strconv.Itoa(sent-1), b); err != nil {
				for _, s := range seqs[sent:] {
					kept[s] = true
				}
				return kept, fmt.Errorf("delete messages: %w", err)
			}
		}
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			for _, s := range seqs[sent:] {
				kept[s] = true
			}
			return kept, fmt.Errorf("delete messages: %w", err)
		}
		i, err := strconv.Atoi(m.Subject[len(inbox)+1:])
		if err != nil || !pending[i] {
			continue // not an answer of ours, or one already had
		}
		delete(pending, i)
		var resp msgDeleteResponse
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			kept[seqs[i]] = true
			refused = fmt.Errorf("delete message %d: the answer is not JSON", seqs[i])
			continue
		}
		switch e := resp.Error; {
		case e == nil && resp.Success:
		case e == nil:
			kept[seqs[i]] = true
			refused = fmt.Errorf("delete message %d: not deleted", seqs[i])
		case e.ErrCode == jsNoMessageFound || e.ErrCode == jsSequenceNotFound,
			e.ErrCode == jsMsgDeleteFailed && e.Description == "no message found":
			// Gone already: trimmed, or removed by another operator.
		default:
			kept[seqs[i]] = true
			refused = fmt.Errorf("delete message %d: %s (%d)", seqs[i], e.Description, e.ErrCode)
		}
	}
	return kept, refused
}
