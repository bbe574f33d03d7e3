package natsrelay

import (
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	const w = time.Minute
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := now.UnixNano()
	type msg struct {
		node, sess string
		seq        uint64
		sent       int64
		now        time.Time
		want       bool
	}
	tests := []struct {
		name string
		msgs []msg
	}{
		{"in order", []msg{{"a", "s", 1, at, now, true}, {"a", "s", 2, at, now, true}, {"a", "s", 3, at, now, true}}},
		{"the same twice", []msg{{"a", "s", 1, at, now, true}, {"a", "s", 1, at, now, false}}},
		{"an older one again", []msg{{"a", "s", 1, at, now, true}, {"a", "s", 2, at, now, true}, {"a", "s", 1, at, now, false}}},
		{"reordered a little", []msg{{"a", "s", 3, at, now, true}, {"a", "s", 1, at, now, true}, {"a", "s", 2, at, now, true}, {"a", "s", 2, at, now, false}}},
		{"behind by more than the bits", []msg{{"a", "s", seqBits + 1, at, now, true}, {"a", "s", 1, at, now, false}, {"a", "s", 2, at, now, true}}},
		{"a jump forgets what is behind", []msg{{"a", "s", 1, at, now, true}, {"a", "s", 1000, at, now, true}, {"a", "s", 999, at, now, true}, {"a", "s", 1000, at, now, false}}},
		{"sessions and nodes apart", []msg{{"a", "s", 1, at, now, true}, {"a", "t", 1, at, now, true}, {"b", "s", 1, at, now, true}, {"a", "s", 1, at, now, false}}},
		{"number zero", []msg{{"a", "s", 0, at, now, false}}},
		{"older than the window", []msg{{"a", "s", 1, now.Add(-w - time.Second).UnixNano(), now, false}}},
		{"ahead by more than the window", []msg{{"a", "s", 1, now.Add(w + time.Second).UnixNano(), now, false}}},
		{"skew within the window", []msg{{"a", "s", 1, now.Add(-w + time.Second).UnixNano(), now, true}, {"a", "s", 2, now.Add(w - time.Second).UnixNano(), now, true}}},
		// Swept after two windows of silence: by then nothing it sent is
		// believed anyway, so a replay of its last message still fails.
		{"a replay after the session was forgotten", []msg{
			{"a", "s", 5, at, now, true},
			{"b", "s", 1, now.Add(2*w + time.Second).UnixNano(), now.Add(2*w + time.Second), true},
			{"a", "s", 5, at, now.Add(2*w + time.Second), false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newReplayGuard(w)
			for i, m := range tt.msgs {
				if got := g.fresh(m.node, m.sess, m.seq, m.sent, m.now); got != m.want {
					t.Fatalf("message %d (%s/%s #%d) fresh = %v, want %v", i, m.node, m.sess, m.seq, got, m.want)
				}
			}
		})
	}
}

func TestReplayGuardForgetsQuietSessionsAndIsBounded(t *testing.T) {
	const w = time.Minute
	now := time.Now()
	g := newReplayGuard(w)
	for i := range maxSessions {
		if !g.fresh("a", string(rune('A'+i%26))+time.Duration(i).String(), 1, now.UnixNano(), now) {
			t.Fatalf("session %d refused", i)
		}
	}
	if g.fresh("a", "one-too-many", 1, now.UnixNano(), now) {
		t.Fatal("a session past the bound was taken")
	}
	later := now.Add(2*w + time.Second)
	if !g.fresh("a", "one-too-many", 1, later.UnixNano(), later) {
		t.Fatal("quiet sessions were not forgotten")
	}
	if len(g.sessions) != 1 {
		t.Fatalf("%d sessions remembered, want 1", len(g.sessions))
	}
}

func TestNonceCache(t *testing.T) {
	const w = time.Minute
	now := time.Now()
	c := newNonceCache(w)
	n1, n2 := newNonce(), newNonce()
	if !c.first(n1, now) || !c.first(n2, now) {
		t.Fatal("new nonces refused")
	}
	if c.first(n1, now) {
		t.Fatal("a nonce was taken twice")
	}
	// A nonce is remembered for at least two windows, whenever in its
	// generation it came: any later replay is too old to be believed.
	if c.first(n1, now.Add(2*w)) || c.first(n2, now.Add(4*w-time.Second)) {
		t.Fatal("a nonce was forgotten within two windows")
	}
	for i := range maxNonces {
		var n [nonceLen]byte
		n[0], n[1], n[2] = byte(i), byte(i>>8), 0xee
		c.first(n, now.Add(4*w))
	}
	if c.first(newNonce(), now.Add(4*w)) {
		t.Fatal("a nonce past the bound was taken")
	}
}
