package tcpserver

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// privateLines returns the private messages m was sent, and forgets all
// it was sent.
func privateLines(m *fakeMember) []string {
	var out []string
	for _, l := range m.lines() {
		if strings.HasPrefix(l, "*") && !strings.HasPrefix(l, "*** ") {
			out = append(out, l)
		}
	}
	return out
}

// replies returns what m was sent but notices (joins, leaves, ...), and
// forgets all it was sent.
func replies(m *fakeMember) []string {
	var out []string
	for _, l := range m.lines() {
		if !strings.HasPrefix(l, "*** ") {
			out = append(out, l)
		}
	}
	return out
}

// connectFrom connects a member called nick from addr.
func connectFrom(t *testing.T, h *Hub, nick, addr string) (*Client, *fakeMember) {
	t.Helper()
	m := &fakeMember{}
	c, err := h.Connect(m, ConnectInfo{Addr: addr, Transport: "tcp", Nick: nick})
	if err != nil {
		t.Fatal(err)
	}
	m.lines()
	return c, m
}

// What one member is sent privately has a rate, all senders together and
// from each address; what is over is refused with a word to its sender,
// and counted. The rates here refill so slowly that the test sees only
// the bursts.
func TestPrivateMessagesHaveARatePerRecipient(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1, PrivateRate: 0.001, PrivateBurst: 5, PrivateRatePerIP: 0.001, PrivateBurstPerIP: 2}, nil)
	_, vm := connectFrom(t, h, "victim", "192.0.2.9:1")
	// Three senders from one address: two messages in all get through.
	var one []*fakeMember
	for i := range 3 {
		c, m := connectFrom(t, h, fmt.Sprintf("one%d", i), fmt.Sprintf("192.0.2.1:%d", i))
		one = append(one, m)
		c.Handle([]byte("/msg victim hello"))
		c.Handle([]byte("/msg victim again"))
	}
	if got := privateLines(vm); len(got) != 2 {
		t.Fatalf("victim got %q from one address, want 2 private messages", got)
	}
	refusal := "! too many private messages from your address to victim; it was not sent, try again in "
	if got := replies(one[0]); len(got) != 2 || got[0] != "-> *victim* hello" || got[1] != "-> *victim* again" {
		t.Fatalf("the first sender got %q", got)
	}
	for _, m := range one[1:] {
		if got := replies(m); len(got) != 2 || !strings.HasPrefix(got[0], refusal) || !strings.HasPrefix(got[1], refusal) {
			t.Fatalf("a later sender from the same address got %q, want two %q", got, refusal)
		}
	}
	// Other addresses: three more get through, then the victim's own
	// allowance is spent, whoever sends.
	var got []string
	for i := range 4 {
		c, m := connectFrom(t, h, fmt.Sprintf("other%d", i), fmt.Sprintf("192.0.2.%d:1", 10+i))
		c.Handle([]byte("/msg victim hi"))
		got = append(got, replies(m)...)
	}
	if n := count(got, "-> *victim* hi"); n != 3 {
		t.Fatalf("senders from other addresses got %q: %d delivered, want 3", got, n)
	}
	if last := got[len(got)-1]; !strings.HasPrefix(last, "! victim is being sent too many private messages; yours was not sent, try again in ") {
		t.Fatalf("the last sender got %q", last)
	}
	if got := privateLines(vm); len(got) != 3 {
		t.Fatalf("victim got %q from other addresses, want 3 private messages", got)
	}
	vm.mu.Lock()
	closed := vm.closed
	vm.mu.Unlock()
	if closed != "" {
		t.Fatalf("victim was closed: %q", closed)
	}
	st := h.Stats()
	if st.PrivateRefusedPerIP != 4 || st.PrivateRefusedRate != 1 || st.PrivateRefusedFull != 0 {
		t.Fatalf("stats: %d refused per address, %d for the rate, %d for the queue; want 4, 1, 0",
			st.PrivateRefusedPerIP, st.PrivateRefusedRate, st.PrivateRefusedFull)
	}
}

// The allowance comes back with time, and IPv6 senders are counted by
// their /64.
func TestPrivateMessageRateRefillsAndCountsIPv6By64(t *testing.T) {
	cfg := HubConfig{MaxPerIP: -1, Rate: -1, PrivateRate: 1000, PrivateBurst: 1000, PrivateRatePerIP: 10, PrivateBurstPerIP: 1}.withDefaults()
	var in inbox
	now := time.Unix(1000, 0)
	a, b, other := sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:2:ffff::9"), sourceKey("2001:db8:1:3::1")
	if a != b || a == other || a != "2001:db8:1:2::/64" {
		t.Fatalf("sourceKey: %q, %q, %q", a, b, other)
	}
	if _, err := in.take(&cfg, a, now); err != nil {
		t.Fatal(err)
	}
	if wait, err := in.take(&cfg, b, now); err != errPrivatePerIP || wait != 100*time.Millisecond {
		t.Fatalf("second from the same /64: %v, %v; want %v after 100ms", wait, err, errPrivatePerIP)
	}
	if _, err := in.take(&cfg, other, now); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	if _, err := in.take(&cfg, b, now.Add(100*time.Millisecond)); err != nil {
		t.Fatalf("100ms later: %v", err)
	}
}

// However many addresses write to one member, it keeps a rate for at most
// maxInboxSources of them; the rate of all senders together holds.
func TestInboxKeepsBoundedSources(t *testing.T) {
	cfg := HubConfig{PrivateRate: 1, PrivateBurst: 10, PrivateRatePerIP: 1, PrivateBurstPerIP: 1}.withDefaults()
	var in inbox
	now := time.Unix(1000, 0)
	delivered := 0
	for i := range 10 * maxInboxSources {
		if _, err := in.take(&cfg, fmt.Sprintf("192.0.%d.%d", i/256, i%256), now.Add(time.Duration(i)*time.Millisecond)); err == nil {
			delivered++
		}
		if len(in.from) > maxInboxSources {
			t.Fatalf("%d sources kept after %d", len(in.from), i+1)
		}
	}
	// 10 at once, then one a second for 0.64 s.
	if delivered != 10 {
		t.Fatalf("%d delivered from %d addresses, want 10", delivered, 10*maxInboxSources)
	}
}

// blockedSink is a Sink whose writes wait until it is released, as a
// member that stopped reading.
type blockedSink struct {
	release chan struct{}
	mu      sync.Mutex
	aborted string
}

func (s *blockedSink) BeginBatch() {}
func (s *blockedSink) Interrupt()  {}
func (s *blockedSink) WriteEvents([]*Event) error {
	<-s.release
	return nil
}
func (s *blockedSink) Cost(ev *Event) int { return len(ev.Line()) }
func (s *blockedSink) Drained(string)     {}
func (s *blockedSink) Abort(reason string) {
	s.mu.Lock()
	s.aborted = reason
	s.mu.Unlock()
}
func (s *blockedSink) Failed(error) {}

// outboxMember is a Member on an Outbox, as the transports' are.
type outboxMember struct{ out Outbox }

func (m *outboxMember) Send(ev *Event)         { m.out.Send(ev) }
func (m *outboxMember) TrySend(ev *Event) bool { return m.out.TrySend(ev) }
func (m *outboxMember) Close(reason string)    { m.out.Close(reason) }
func (m *outboxMember) queued() (n int, r bool) {
	m.out.mu.Lock()
	defer m.out.mu.Unlock()
	return len(m.out.queue), m.out.closing
}

// A member whose queue fills with what others send it privately is not
// cut off for it: the messages that do not fit in half its queue are
// refused, their senders told, and the room still reaches it.
func TestPrivateMessagesNeverCutTheRecipientOff(t *testing.T) {
	h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, Rate: -1, PrivateRate: -1, PrivateRatePerIP: -1}, nil)
	sink := &blockedSink{release: make(chan struct{})}
	victim := &outboxMember{}
	victim.out.Init(h, 16, 0, sink) // bound in events only
	if _, err := h.Connect(victim, ConnectInfo{Addr: "192.0.2.9:1", Nick: "victim"}); err != nil {
		t.Fatal(err)
	}
	mallory, mm := connectFrom(t, h, "mallory", "192.0.2.1:1")
	for range 100 {
		mallory.Handle([]byte("/msg victim " + strings.Repeat("x", 4000)))
	}
	got := mm.lines()
	refused := count(got, "! victim has too much waiting to be read; yours was not sent")
	if refused == 0 || refused+count(got, "-> *victim* ") != 100 {
		t.Fatalf("mallory got %d refusals and %d receipts in %d lines", refused, count(got, "-> *victim* "), len(got))
	}
	n, closing := victim.queued()
	if closing || n > 8 {
		t.Fatalf("victim: %d queued, closing %v; want at most half of 16 and not cut off", n, closing)
	}
	// The room's half is still there.
	mallory.Handle([]byte("a line to the room"))
	if n2, closing := victim.queued(); closing || n2 != n+1 {
		t.Fatalf("victim after a room line: %d queued (was %d), closing %v", n2, n, closing)
	}
	if st := h.Stats(); st.SlowKicks != 0 || st.PrivateRefusedFull != uint64(refused) {
		t.Fatalf("stats: %d slow kicks, %d refused for a full queue; want 0 and %d", st.SlowKicks, st.PrivateRefusedFull, refused)
	}
	close(sink.release)
	victim.out.Stop()
	victim.out.Wait()
}

// Private messages from other nodes obey the same rate.
func TestDeliverPrivateHasTheRateToo(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, PrivateRate: 0.001, PrivateBurst: 2}, nil)
	_, vm := connectFrom(t, h, "victim", "192.0.2.9:1")
	for i := range 2 {
		if name, err := h.DeliverPrivate("zed", "victim", fmt.Sprint("psst ", i)); err != nil || name != "victim" {
			t.Fatalf("DeliverPrivate %d = %q, %v", i, name, err)
		}
	}
	_, err := h.DeliverPrivate("zed", "victim", "once too often")
	if err == nil || !strings.HasPrefix(err.Error(), "victim is being sent too many private messages") {
		t.Fatalf("DeliverPrivate over the rate: %v", err)
	}
	if got := privateLines(vm); len(got) != 2 {
		t.Fatalf("victim got %q", got)
	}
}
