package natsrelay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A rogue is a client of the cluster's NATS that is not a node: it can
// publish and subscribe anywhere (this NATS has no permissions), but has
// not the cluster secret. Nothing it sends may reach a member.
type rogue struct {
	t  *testing.T
	nc *nats.Conn
	js jetstream.JetStream
}

func startRogue(t *testing.T, url string) *rogue {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &rogue{t: t, nc: nc, js: js}
}

func (r *rogue) publish(subject string, data []byte) {
	r.t.Helper()
	if err := r.nc.Publish(subject, data); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rogue) json(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// A wiretap keeps what the rogue overhears.
type wiretap struct {
	sub  *nats.Subscription
	seen []*nats.Msg
}

// find returns the first message overheard on subject whose data contains
// want.
func (w *wiretap) find(t *testing.T, subject, want string) *nats.Msg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		for ; i < len(w.seen); i++ {
			if m := w.seen[i]; m.Subject == subject && strings.Contains(string(m.Data), want) {
				return m
			}
		}
		m, err := w.sub.NextMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("overheard nothing on %s with %q: %v", subject, want, err)
		}
		w.seen = append(w.seen, m)
		i--
	}
}

// ignoredBy returns how many messages from NATS n has ignored.
func ignoredBy(n *node) uint64 {
	return n.relay.unverified.Load() + n.relay.replayed.Load() + n.relay.bad.Load()
}

// waitIgnored waits until each of nodes has ignored at least more messages
// than it had when before was taken.
func waitIgnored(t *testing.T, more uint64, before map[*node]uint64) {
	t.Helper()
	for n, was := range before {
		waitFor(t, fmt.Sprintf("%s to ignore %d more", n.relay.NodeID(), more), func() bool { return ignoredBy(n) >= was+more })
	}
}

func counts(nodes ...*node) map[*node]uint64 {
	m := make(map[*node]uint64)
	for _, n := range nodes {
		m[n] = ignoredBy(n)
	}
	return m
}

// count returns how many lines u received that contain each of words.
func (u *user) count(words ...string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, l := range u.all {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			n++
		}
	}
	return n
}

// expectEither waits for a line containing one or the other, and returns
// it.
func (u *user) expectEither(one, other string) string {
	u.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, l := range u.take() {
			if strings.Contains(l, one) || strings.Contains(l, other) {
				return l
			}
		}
		select {
		case <-u.signal:
		case <-deadline:
			u.t.Fatalf("%s: neither %q nor %q", u.name, one, other)
		}
	}
}

func TestRogueClientIsIgnored(t *testing.T) {
	start := time.Now()
	ns := startNATS(t)
	var logA, logB logBuffer
	a := startNodeWith(t, Config{URL: ns.url(), NodeID: "a"}, slog.New(slog.NewTextHandler(&logA, nil)))
	b := startNodeWith(t, Config{URL: ns.url(), NodeID: "b"}, slog.New(slog.NewTextHandler(&logB, nil)))
	rg := startRogue(t, ns.url())
	sub, err := rg.nc.SubscribeSync("chatbridge.>")
	if err != nil {
		t.Fatal(err)
	}
	tap := &wiretap{sub: sub}
	rg.nc.Flush()

	bob := b.join(t, "bob", "")
	alice := a.join(t, "alice", "")
	bob.expect("alice")
	alice.say("original line")
	bob.expect("<alice> original line")
	alice.say("/msg bob secret words")
	bob.expect("*alice* secret words")
	alice.expect("-> *bob* secret words")
	bob.ask("/who", " in lobby: ", "2 in lobby: alice, bob")

	// What a node sends can be read, but not the text of a private message.
	line := tap.find(t, "chatbridge.room.lobby.line", "original line")
	join := tap.find(t, "chatbridge.room.lobby.event", `"kind":"join"`)
	priv := tap.find(t, "chatbridge.node.b.private", `"to":"bob"`)
	if strings.Contains(string(priv.Data), "secret words") {
		t.Fatalf("a private message crossed NATS in clear: %s", priv.Data)
	}

	now := time.Now().UnixNano()
	wrongSecret, err := newSealer([]byte("not the cluster secret, though long"), "chatbridge")
	if err != nil {
		t.Fatal(err)
	}
	event := func(node, kind, from, to, text string, seq uint64) wireEvent {
		return wireEvent{V: wireVersion, Node: node, Sess: "rogue", Seq: seq, ID: seq, Kind: kind, Room: "lobby", From: from, To: to, Text: text, Time: now}
	}

	t.Run("forged room events", func(t *testing.T) {
		before := counts(a, b)
		sent := uint64(0)
		for i, node := range []string{"evil", "a", "b"} { // a fresh node ID, and each real one
			for j, ev := range []wireEvent{
				event(node, "message", "alice", "", "FORGED line", uint64(10*i+1)),
				event(node, "action", "alice", "", "FORGED action", uint64(10*i+2)),
				event(node, "join", "fakejoiner", "", "", uint64(10*i+3)),
				event(node, "leave", "alice", "", "", uint64(10*i+4)),
				event(node, "nick", "alice", "fakenick", "", uint64(10*i+5)),
			} {
				subject := "chatbridge.room.lobby.event"
				if j < 2 {
					subject = "chatbridge.room.lobby.line"
				}
				payload := rg.json(ev)
				old := payload // as version 1 was, unsealed
				old = []byte(strings.Replace(string(old), `"v":2`, `"v":1`, 1))
				rg.publish(subject, payload)
				rg.publish(subject, old)
				rg.publish(subject, wrongSecret.seal(nil, purposeEvent, subject, payload))
				sent += 3
			}
		}
		waitIgnored(t, sent, before)
		for _, u := range []*user{alice, bob} {
			for _, s := range [][]string{{"FORGED"}, {"fakejoiner"}, {"fakenick"}, {"alice", "left"}} {
				if u.count(s...) != 0 {
					t.Errorf("%s saw %q", u.name, s)
				}
			}
		}
	})

	t.Run("forged private messages", func(t *testing.T) {
		before := counts(b)
		inbox := rg.nc.NewInbox()
		answers, err := rg.nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		nonce := newNonce()
		for _, node := range []string{"evil", "a"} {
			p, err := encodePrivate(node, nonce, "mallory", "bob", wrongSecret.hide(nonce, "FORGED private"), now)
			if err != nil {
				t.Fatal(err)
			}
			old := rg.json(map[string]any{"v": 1, "node": node, "kind": "private", "from": "mallory", "to": "bob", "text": "FORGED private"})
			for _, data := range [][]byte{p, old, wrongSecret.seal(nil, purposePrivate, "chatbridge.node.b.private", p)} {
				if err := rg.nc.PublishRequest("chatbridge.node.b.private", inbox, data); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitIgnored(t, 6, before)
		if bob.count("FORGED") != 0 || bob.count("mallory") != 0 {
			t.Fatalf("bob saw a forged private message: %q", bob.take())
		}
		if m, err := answers.NextMsg(100 * time.Millisecond); err == nil {
			t.Fatalf("b answered a forged private message: %s", m.Data)
		}
	})

	t.Run("replayed messages", func(t *testing.T) {
		before := counts(a, b)
		for range 3 {
			for _, m := range []*nats.Msg{line, join, priv} {
				if err := rg.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Reply: m.Reply, Data: m.Data}); err != nil {
					t.Fatal(err)
				}
			}
		}
		// b sees each one thrice, a (whose own they are, or not its
		// subject) the room events thrice.
		waitIgnored(t, 6, before)
		waitFor(t, "b to ignore the replays", func() bool { return ignoredBy(b) >= before[b]+9 })
		alice.say("after the replays")
		bob.expect("<alice> after the replays")
		for _, c := range []struct {
			u     *user
			words []string
			want  int
		}{{bob, []string{"original line"}, 1}, {bob, []string{"secret words"}, 1}, {bob, []string{"alice", "joined"}, 1}, {alice, []string{"original line"}, 0}} {
			if got := c.u.count(c.words...); got != c.want {
				t.Errorf("%s saw %q %d times, want %d", c.u.name, c.words, got, c.want)
			}
		}
	})

	t.Run("name entry overwritten, then /msg", func(t *testing.T) {
		kv, err := rg.js.KeyValue(context.Background(), "chatbridge_names")
		if err != nil {
			t.Fatal(err)
		}
		// The rogue answers every private message sent its way:
		// "delivered".
		var stolen atomic.Int64
		sub, err := rg.nc.Subscribe("chatbridge.node.evil.private", func(m *nats.Msg) {
			stolen.Add(1)
			m.Respond([]byte(`{"name":"alice"}`))
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		entry := nameEntry{Node: "evil", Name: "alice", Room: "lobby", Time: now}
		for _, v := range [][]byte{
			rg.json(entry),
			[]byte(`{"node":"evil","name":"alice","room":"lobby"}`), // as version 1 was
			wrongSecret.seal(nil, purposeName, "alice", entry.encode()),
		} {
			before := counts(b)
			if _, err := kv.Put(context.Background(), "alice", v); err != nil {
				t.Fatal(err)
			}
			waitIgnored(t, 1, before) // b has seen it
			// Every /msg reaches the real alice, or says she is not
			// there; until her node has put her entry back, then the
			// former.
			for i := 0; ; i++ {
				text := fmt.Sprintf("overwritten %d", i)
				bob.say("/msg alice " + text)
				got := bob.expectEither(text, "no one called alice")
				if strings.Contains(got, "no one called alice") {
					if i > 100 {
						t.Fatal("alice's node did not put her entry back")
					}
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if !strings.Contains(got, "-> *alice* "+text) {
					t.Fatalf("bob: %q", got)
				}
				alice.expect("*bob* " + text)
				break
			}
		}
		if n := stolen.Load(); n != 0 {
			t.Fatalf("%d private messages went to the rogue", n)
		}
		// And alice's name is still hers: nobody else can take it.
		u := b.join(t, "", "")
		u.say("/nick alice")
		u.expect(`"alice" is taken`)
		u.client.Leave("")
	})

	t.Run("a replayed entry is put right by its node", func(t *testing.T) {
		kv, err := rg.js.KeyValue(context.Background(), "chatbridge_names")
		if err != nil {
			t.Fatal(err)
		}
		old, err := kv.Get(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		alice.say("/join dev")
		waitFor(t, "alice in dev on b", func() bool { _, n := b.relay.RemoteMembers("dev", 10); return n == 1 })
		if _, err := kv.Put(context.Background(), "alice", old.Value()); err != nil { // alice in lobby, sealed by a
			t.Fatal(err)
		}
		waitFor(t, "a to put alice's entry right", func() bool {
			e, err := kv.Get(context.Background(), "alice")
			return err == nil && strings.Contains(string(e.Value()), `"room":"dev"`)
		})
		waitFor(t, "alice in dev on b", func() bool { _, n := b.relay.RemoteMembers("dev", 10); return n == 1 })
		alice.say("/join lobby")
		bob.ask("/who", " in lobby: ", "in lobby: alice, bob")
	})

	t.Run("150 ghosts", func(t *testing.T) {
		kv, err := rg.js.KeyValue(context.Background(), "chatbridge_names")
		if err != nil {
			t.Fatal(err)
		}
		before := counts(a, b)
		for i := range 150 {
			key := fmt.Sprintf("ghost%d", i)
			e := nameEntry{Node: "evil", Name: key, Room: "lobby", Time: now}
			v := rg.json(e)
			switch i % 3 {
			case 1:
				e.Node = "a" // a real node's ID
				v = wrongSecret.seal(nil, purposeName, key, e.encode())
			case 2:
				v = []byte(fmt.Sprintf(`{"node":"evil","name":%q,"room":"lobby"}`, key))
			}
			if _, err := kv.Put(context.Background(), key, v); err != nil {
				t.Fatal(err)
			}
		}
		waitIgnored(t, 150, before)
		if names, n := b.relay.RemoteMembers("lobby", 1000); n != 1 {
			t.Fatalf("b sees %d on other nodes in lobby: %q", n, names)
		}
		bob.ask("/who", " in lobby: ", "2 in lobby: alice, bob")
		bob.say("/msg ghost1 boo")
		bob.expect("no one called ghost1")
	})

	t.Run("oversize messages", func(t *testing.T) {
		before := counts(a, b)
		big := event("evil", "message", "alice", "", strings.Repeat("x", 16<<10), 99)
		huge := event("evil", "message", "alice", "", strings.Repeat("y", 1<<20-4096), 100)
		for _, ev := range []wireEvent{big, huge} {
			rg.publish("chatbridge.room.lobby.line", rg.json(ev))
		}
		if err := rg.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		waitIgnored(t, 2, before)
		if bob.count("xxxx") != 0 || bob.count("yyyy") != 0 {
			t.Fatal("an oversize line reached bob")
		}
		ctx := context.Background()
		stream, err := rg.js.Stream(ctx, "chatbridge_history")
		if err != nil {
			t.Fatal(err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxBytes <= 0 || info.Config.MaxMsgSize <= 0 {
			t.Fatalf("the stream is unbounded: %+v", info.Config)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil {
				continue // deleted
			}
			if len(m.Data) > lineMessageMax(4096) {
				t.Fatalf("the stream kept a message of %d bytes", len(m.Data))
			}
		}
		kv, err := rg.js.KeyValue(ctx, "chatbridge_names")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "biggie", make([]byte, 64<<10)); err == nil {
			t.Fatal("the bucket took a 64 KiB entry")
		}
		if st, err := kv.Status(ctx); err != nil || st.Bytes() > 1<<20 {
			t.Fatalf("bucket status: %v, %v", st, err)
		}
	})

	t.Run("a flood leaves the logs small", func(t *testing.T) {
		before := counts(a, b)
		const flood = 20000
		for i := range flood {
			ev := event("evil", "message", "alice", "", fmt.Sprintf("FLOOD %d", i), uint64(1000+i))
			rg.publish("chatbridge.room.lobby.line", rg.json(ev))
		}
		rg.nc.Flush()
		waitIgnored(t, flood, before)
		alice.say("after the flood")
		bob.expect("<alice> after the flood")
		if bob.count("FLOOD") != 0 {
			t.Fatal("the flood reached bob")
		}
	})

	// At most a line per logEvery about what was ignored, and the rest
	// of the log as it would be without the rogue.
	allowed := int(time.Since(start)/logEvery) + 1
	for name, log := range map[string]*logBuffer{"a": &logA, "b": &logB} {
		out := log.String()
		if n := strings.Count(out, "message from NATS ignored"); n > allowed || len(out) > 8<<10 {
			t.Errorf("node %s logged %d lines about ignored messages (at most %d allowed), %d bytes in all:\n%s", name, n, allowed, len(out), out)
		}
		if !strings.Contains(out, "held_back=") {
			t.Errorf("node %s's log does not say how many it held back:\n%s", name, out)
		}
	}
	if got := a.relay.unverified.Load() + b.relay.unverified.Load(); got < 20000 {
		t.Errorf("unverified = %d", got)
	}
}

// TestRogueCannotAnswerPrivateMessages: node c dies, its member's entry
// lingers, and a rogue answers the private messages sent to c: unsigned,
// signed with another secret (with the right nonce, read off the request),
// and with a genuine answer of c's it overheard. None is taken for
// "delivered".
func TestRogueCannotAnswerPrivateMessages(t *testing.T) {
	ns := startNATS(t)
	b := startNode(t, ns.url(), "b", 0)
	c := startNode(t, ns.url(), "c", 0)
	rg := startRogue(t, ns.url())
	sub, err := rg.nc.SubscribeSync("_INBOX.>")
	if err != nil {
		t.Fatal(err)
	}
	tap := &wiretap{sub: sub}
	rg.nc.Flush()

	bob := b.join(t, "bob", "")
	carol := c.join(t, "carol", "")
	bob.ask("/who", " in lobby: ", "2 in lobby: bob, carol")
	bob.say("/msg carol first")
	carol.expect("*bob* first")
	bob.expect("-> *carol* first")
	var genuine *nats.Msg
	waitFor(t, "c's answer overheard", func() bool {
		for _, m := range tap.seen {
			if d := string(m.Data); strings.Contains(d, `"node":"c","nonce":`) && strings.Contains(d, `"name":"carol"`) {
				genuine = m
				return true
			}
		}
		if m, err := tap.sub.NextMsg(10 * time.Millisecond); err == nil {
			tap.seen = append(tap.seen, m)
		}
		return false
	})

	c.relay.Close() // c dies; carol's entry stays until the bucket forgets it
	wrongSecret, err := newSealer([]byte("not the cluster secret, though long"), "chatbridge")
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Int64
	rsub, err := rg.nc.Subscribe("chatbridge.node.c.private", func(m *nats.Msg) {
		var req wirePrivate
		json.Unmarshal(m.Data[sealedMin:], &req)
		forged, _ := marshal(wireReply{V: wireVersion, Node: "c", Nonce: req.Nonce, Name: "carol"})
		m.Respond([]byte(`{"name":"carol"}`))
		m.Respond(forged)
		m.Respond(wrongSecret.seal(nil, purposeReply, m.Subject, forged))
		m.Respond(genuine.Data)
		answered.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rsub.Unsubscribe()
	rg.nc.Flush()
	before := counts(b)
	bob.say("/msg carol second")
	got := bob.expectEither("-> *carol* second", "cannot reach carol") // not carol's join, which may come late
	if strings.Contains(got, "-> *carol*") || !strings.Contains(got, "cannot reach carol") {
		t.Fatalf("bob was told %q", got)
	}
	if answered.Load() != 1 {
		t.Fatalf("the rogue answered %d requests", answered.Load())
	}
	waitIgnored(t, 4, before)
}

func TestPresenceIsBoundedPerNode(t *testing.T) {
	ns := startNATS(t)
	const ttl = 2 * time.Second
	a := startNodeWith(t, Config{URL: ns.url(), NodeID: "a", MaxMembers: 3, PresenceTTL: ttl}, slog.New(slog.DiscardHandler))
	// b writes its entries again every NameAge/3.
	b := startNodeWith(t, Config{URL: ns.url(), NodeID: "b", PresenceTTL: ttl, NameAge: 3 * time.Second}, slog.New(slog.DiscardHandler))
	for i := range 5 {
		if err := b.relay.ClaimName(context.Background(), fmt.Sprintf("m%d", i), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	before := counts(a)
	waitIgnored(t, 2, before)
	if names, n := a.relay.RemoteMembers("lobby", 100); n != 3 {
		t.Fatalf("a shows %d of b's members: %q", n, names)
	}
	// One leaves: another takes its place at the next refresh.
	b.relay.ReleaseName("m0")
	waitFor(t, "a to show 3 again", func() bool {
		names, n := a.relay.RemoteMembers("lobby", 100)
		return n == 3 && !strings.Contains(strings.Join(names, ","), "m0")
	})
}

// TestRelayedTextObeysMaxLine: a node takes no longer line from another
// than its own members may type, whoever sends it.
func TestRelayedTextObeysMaxLine(t *testing.T) {
	ns := startNATS(t)
	a := startNode(t, ns.url(), "a", 0)
	b := startNodeWith(t, Config{URL: ns.url(), NodeID: "b", MaxLine: 100}, slog.New(slog.DiscardHandler))
	bob := b.join(t, "bob", "")
	alice := a.join(t, "alice", "")
	bob.expect("alice")
	long := strings.Repeat("x", 101)
	before := counts(b)
	alice.say(long, "/me "+long, "short line")
	bob.expect("<alice> short line")
	waitIgnored(t, 2, before)
	alice.say("/msg bob " + long)
	alice.expect("cannot reach bob on another node: node b refused it: bad message: 101 bytes, longer than a line there (--max-line 100)")
	alice.say("/msg bob short")
	bob.expect("*alice* short")
	if bob.count("xxxx") != 0 {
		t.Fatal("a line longer than b's --max-line reached bob")
	}
}

// TestNodesWithAnotherSecretIgnoreEachOther: what a rotated secret does
// to nodes not yet restarted, and what --cluster-insecure nodes share.
func TestNodesWithAnotherSecretIgnoreEachOther(t *testing.T) {
	ns := startNATS(t)
	discard := slog.New(slog.DiscardHandler)
	a := startNodeWith(t, Config{URL: ns.url(), NodeID: "a"}, discard)
	b := startNodeWith(t, Config{URL: ns.url(), NodeID: "b", Secret: []byte("the new secret, long enough")}, discard)
	c := startNodeWith(t, Config{URL: ns.url(), NodeID: "c", Insecure: true}, discard)
	d := startNodeWith(t, Config{URL: ns.url(), NodeID: "d", Insecure: true}, discard)
	bob, carol, dave := b.join(t, "bob", ""), c.join(t, "carol", ""), d.join(t, "dave", "")
	carol.expect("dave")
	before := counts(a, b)
	alice := a.join(t, "alice", "")
	alice.say("from the old secret")
	carol.say("from no secret")
	dave.expect("<carol> from no secret") // insecure nodes still talk to each other
	waitIgnored(t, 2, before)             // a and b saw the others' events, and ignored them
	for _, u := range []*user{bob, carol, dave} {
		if u.count("old secret") != 0 || u.count("alice") != 0 {
			t.Errorf("%s heard from a node with another secret", u.name)
		}
	}
	if bob.count("carol") != 0 || alice.count("carol") != 0 {
		t.Error("a node with a secret heard from an insecure one")
	}
	waitFor(t, "a to see the entries of bob, carol and dave", func() bool { return a.relay.unverified.Load() >= 3+1 })
	if _, n := a.relay.RemoteMembers("lobby", 10); n != 0 {
		t.Errorf("a sees %d members of other nodes", n)
	}
}
