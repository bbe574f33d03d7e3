package tcpserver

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// A Store keeps what a room remembers beyond the members in it: its lines,
// for the history replayed on join and for scrollback, and the small state
// that outlives a session (registered names, bans, topics, modes; see
// [StateStore]). The hub declares it; an in-memory store keeps lines for
// as long as the process lives, and a JetStream store (natsrelay) keeps
// them on disk, on one node or shared by many.
//
// The hub never calls a Store with a hub or room lock held, except Append,
// which must return at once: a store that writes to disk or the network
// queues the line and writes in order. What a crash may lose of what was
// queued is the store's to document.
type Store interface {
	// Append keeps ev, a line said in its room (KindMessage or
	// KindAction, this node's or relayed from another), under its
	// [LineKey].
	Append(ev *Event)

	// Lines returns up to limit lines of room said before the line
	// before (the newest lines if before is the zero LineKey), oldest
	// first, and whether the room has lines earlier than the first
	// returned. A before that is not a line of room the store keeps (one
	// of another room, one forgotten) is [ErrUnknownLine]. A store that
	// bounds how far back one call looks for before (a client may make
	// one up) may answer [ErrLineFurtherBack] when it did not get there.
	Lines(ctx context.Context, room string, before LineKey, limit int) (lines []*Event, more bool, err error)

	// Close writes what is queued, within ctx, and lets go of the store.
	Close(ctx context.Context) error
}

// A StateStore keeps small records, by bucket ("names", "bans",
// "topics", ...) and key, for the features that must remember across
// restarts and agree across nodes. Values are the feature's own encoding.
type StateStore interface {
	// Load returns every record of bucket.
	Load(ctx context.Context, bucket string) (map[string][]byte, error)
	// Put sets key in bucket to value.
	Put(ctx context.Context, bucket, key string, value []byte) error
	// Delete removes key from bucket; removing a missing key is no error.
	Delete(ctx context.Context, bucket, key string) error
	// Watch calls fn, in order, for every change to bucket made from now
	// on, by this node or another (value nil when deleted), until ctx
	// ends. It returns once it watches, without waiting for ctx: the
	// moderation's Start watches, then loads.
	Watch(ctx context.Context, bucket string, fn func(key string, value []byte)) error
}

// A LineKey names a line the same way on every node, in every store and
// across restarts: the node it was said on ("" on a node alone) and its
// ID there. The hub gives events IDs that only grow, across restarts
// too, so keys of one node order its lines.
type LineKey struct {
	Node string
	ID   uint64
}

// ErrBadLineKey is what [ParseLineKey] returns for text that names no line.
var ErrBadLineKey = errors.New("not a line id")

// ErrUnknownLine is what [Store.Lines] returns for a before that is not a
// line of the room it keeps.
var ErrUnknownLine = errors.New("no such line in this room")

// ErrLineFurtherBack is what [Store.Lines] may return for a before it
// did not find within what one call reads back: asking again looks
// further.
var ErrLineFurtherBack = errors.New("not among the lines read back so far")

// IsZero reports whether k names no line.
func (k LineKey) IsZero() bool { return k.ID == 0 }

// String is k as clients see it, in the "id" of an event: the ID alone for
// a node alone, "node-ID" otherwise.
func (k LineKey) String() string {
	if k.Node == "" {
		return strconv.FormatUint(k.ID, 10)
	}
	return k.Node + "-" + strconv.FormatUint(k.ID, 10)
}

// ParseLineKey reads a key as [LineKey.String] writes it.
func ParseLineKey(s string) (LineKey, error) {
	var k LineKey
	id := s
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		k.Node, id = s[:i], s[i+1:]
		if k.Node == "" {
			return LineKey{}, ErrBadLineKey
		}
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || n == 0 || len(s) > 80 {
		return LineKey{}, ErrBadLineKey
	}
	k.ID = n
	return k, nil
}
