package tcpserver

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// gateSink is a Sink whose writes wait for the test: each WriteEvents
// reports its batch on writes, then waits for a value on release.
type gateSink struct {
	writes  chan []*Event
	release chan error

	mu      sync.Mutex
	aborted string // the reason Abort was given
	done    chan struct{}
}

func newGateSink() *gateSink {
	return &gateSink{writes: make(chan []*Event, 16), release: make(chan error), done: make(chan struct{})}
}

func (s *gateSink) BeginBatch() {}
func (s *gateSink) Interrupt()  {}
func (s *gateSink) WriteEvents(batch []*Event) error {
	s.writes <- append([]*Event(nil), batch...)
	return <-s.release
}
func (s *gateSink) Cost(ev *Event) int { return len(ev.Line()) }
func (s *gateSink) Drained(string)     { close(s.done) }
func (s *gateSink) Abort(reason string) {
	s.mu.Lock()
	s.aborted = reason
	s.mu.Unlock()
	close(s.done)
}
func (s *gateSink) Failed(error) { close(s.done) }

// sizedLine is a message event whose text line is n bytes.
func sizedLine(n int) *Event {
	const frame = len("<a> \r\n")
	return (&Event{Kind: KindMessage, From: "a", Text: strings.Repeat("x", n-frame)}).finish()
}

// TestOutboxBoundsBytes: a member whose writer is stuck is cut off once
// what it has waiting, queued and being written, would pass the bound in
// bytes, long before the bound in events; what it held is let go.
func TestOutboxBoundsBytes(t *testing.T) {
	hub := NewHub(HubConfig{}, nil)
	sink := newGateSink()
	var o Outbox
	o.Init(hub, 1000, 10_000, sink)

	o.Send(sizedLine(4000))
	batch := <-sink.writes // the writer holds the first line, stuck writing it
	if len(batch) != 1 {
		t.Fatalf("first batch has %d events, want 1", len(batch))
	}
	o.Send(sizedLine(4000)) // 8,000 waiting: queued and being written
	o.Send(sizedLine(2000)) // 10,000: at the bound, not over it
	if o.Closing() {
		t.Fatal("cut off at 10,000 bytes waiting, bound 10,000")
	}
	o.Send(sizedLine(10)) // over
	if !o.Closing() || o.Reason() != ReasonTooSlow {
		t.Fatalf("after 10,010 bytes: closing %v, reason %q; want cut off as too slow", o.Closing(), o.Reason())
	}
	if st := hub.Stats(); st.SlowKicks != 1 {
		t.Fatalf("SlowKicks = %d, want 1", st.SlowKicks)
	}
	o.mu.Lock()
	queued, left := o.queued, len(o.queue)
	o.mu.Unlock()
	if queued != 0 || left != 0 {
		t.Fatalf("after the cut: %d events and %d bytes still queued", left, queued)
	}
	sink.release <- nil
	<-sink.done
	if sink.aborted != ReasonTooSlow {
		t.Fatalf("aborted with %q, want %q", sink.aborted, ReasonTooSlow)
	}
	o.Wait()
}

// TestOutboxBytesFreedWhenWritten: bytes count until written, then no
// more, and an event bigger than the bound alone is taken while nothing
// else waits (a room's history may be big).
func TestOutboxBytesFreedWhenWritten(t *testing.T) {
	hub := NewHub(HubConfig{}, nil)
	sink := newGateSink()
	var o Outbox
	o.Init(hub, 1000, 10_000, sink)

	o.Send(sizedLine(30_000)) // alone: taken
	<-sink.writes
	sink.release <- nil
	o.Wait()
	// Each written before the next comes: never more than 6,000 waiting.
	for i := range 50 {
		o.Send(sizedLine(6000))
		if o.Closing() {
			t.Fatalf("line %d: cut off (%q) with only it waiting", i, o.Reason())
		}
		select {
		case <-sink.writes:
		case <-time.After(5 * time.Second):
			t.Fatalf("line %d not written", i)
		}
		sink.release <- nil
		o.Wait() // the writer has found nothing more and ended
	}
	if o.Closing() {
		t.Fatalf("cut off (%q) though each line was written before the next", o.Reason())
	}
	// The bytes of a written batch are forgotten by the time the writer
	// looks for the next one: Close's notice is written, not refused.
	o.Close("bye", sizedLine(100))
	<-sink.writes
	sink.release <- nil
	<-sink.done
	o.Wait()
	if st := hub.Stats(); st.SlowKicks != 0 {
		t.Fatalf("SlowKicks = %d, want 0", st.SlowKicks)
	}
}

// TestOutboxNoByteBound: 0 bytes means no bound in bytes, only in events.
func TestOutboxNoByteBound(t *testing.T) {
	hub := NewHub(HubConfig{}, nil)
	sink := newGateSink()
	var o Outbox
	o.Init(hub, 3, 0, sink)
	o.Send(sizedLine(1 << 20))
	<-sink.writes
	for range 3 {
		o.Send(sizedLine(1 << 20))
	}
	if o.Closing() {
		t.Fatalf("cut off (%q) with no bound in bytes and 3 events queued, limit 3", o.Reason())
	}
	o.Send(sizedLine(10))
	if !o.Closing() {
		t.Fatal("not cut off with 4 events queued, limit 3")
	}
	sink.release <- nil
	<-sink.done
	o.Wait()
}

// TestOutboxTrySendKeepsHalfTheBytes: what others choose to send a member
// (TrySend) takes at most half its bound in bytes, counted with the rest,
// so that the room's lines still find the other half and the member is
// not cut off for what it was sent privately.
func TestOutboxTrySendKeepsHalfTheBytes(t *testing.T) {
	hub := NewHub(HubConfig{}, nil)
	sink := newGateSink()
	var o Outbox
	o.Init(hub, 1000, 10_000, sink)

	o.Send(sizedLine(1000))
	<-sink.writes // the writer holds it: 1,000 being written
	for i := range 4 {
		if !o.TrySend(sizedLine(1000)) {
			t.Fatalf("TrySend %d refused with %d bytes waiting, half the bound 5,000", i, 1000*(i+1))
		}
	}
	if o.TrySend(sizedLine(10)) {
		t.Fatal("TrySend took a line past half the bound in bytes")
	}
	o.mu.Lock()
	queued, inBatch := o.queued, o.inBatch
	o.mu.Unlock()
	if queued != 4000 || inBatch != 1000 {
		t.Fatalf("%d bytes queued and %d being written, want 4,000 and 1,000", queued, inBatch)
	}
	o.Send(sizedLine(5000)) // the room's half: 10,000 waiting, at the bound
	if o.Closing() {
		t.Fatalf("cut off (%q) at the bound", o.Reason())
	}
	if st := hub.Stats(); st.SlowKicks != 0 {
		t.Fatalf("SlowKicks = %d, want 0", st.SlowKicks)
	}
	sink.release <- nil
	<-sink.writes
	sink.release <- nil
	o.Wait()
}
