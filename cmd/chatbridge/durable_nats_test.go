package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
)

// jsonEvent is what a JSON member is sent, as far as these tests read it.
type jsonEvent struct {
	Type   string            `json:"type"`
	ID     string            `json:"id"`
	IDs    []string          `json:"ids"`
	From   string            `json:"from"`
	Text   string            `json:"text"`
	Topic  string            `json:"topic"`
	Events []json.RawMessage `json:"events"`
	More   bool              `json:"more"`
}

// wsMember is a JSON (chatbridge.v1.json) member over WebSocket.
type wsMember struct {
	t     *testing.T
	ctx   context.Context
	conn  *websocket.Conn
	queue []jsonEvent // read, not yet looked at
}

func dialJSON(t *testing.T, ctx context.Context, httpAddr, nick string) *wsMember {
	t.Helper()
	dialRetry(t, httpAddr).Close()
	c, _, err := websocket.Dial(ctx, "ws://"+httpAddr+"/ws?nick="+nick, &websocket.DialOptions{Subprotocols: []string{"chatbridge.v1.json"}})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsMember{t: t, ctx: ctx, conn: c}
}

func (m *wsMember) send(v string) {
	m.t.Helper()
	if err := m.conn.Write(m.ctx, websocket.MessageText, []byte(v)); err != nil {
		m.t.Fatal(err)
	}
}

// expect reads events until one of type typ for which ok is true (nil:
// any), within 20 s, and returns it. A frame may hold one event or an
// array of them.
func (m *wsMember) expect(typ string, ok func(jsonEvent) bool) jsonEvent {
	m.t.Helper()
	var seen []string
	for {
		for len(m.queue) > 0 {
			ev := m.queue[0]
			m.queue = m.queue[1:]
			if ev.Type == typ && (ok == nil || ok(ev)) {
				return ev
			}
			seen = append(seen, ev.Type+" "+ev.Text)
		}
		rctx, cancel := context.WithTimeout(m.ctx, 20*time.Second)
		_, b, err := m.conn.Read(rctx)
		cancel()
		if err != nil {
			m.t.Fatalf("waiting for a %s event: %v; saw %q", typ, err, seen)
		}
		if len(b) > 0 && b[0] == '[' {
			err = json.Unmarshal(b, &m.queue)
		} else {
			m.queue = append(m.queue, jsonEvent{})
			err = json.Unmarshal(b, &m.queue[0])
		}
		if err != nil {
			m.t.Fatalf("not JSON: %q", b)
		}
	}
}

// TestModerationAcrossTwoNodes: two nodes on one NATS (in process,
// sealed with a cluster secret). What an operator on node A does holds
// on node B: a ban refuses the address there, the topic shows on join
// there, a name registered on A is refused there, and a line deleted on
// A leaves B's members' pages (a JSON delete event with the id they saw
// it under) and B's history; B's scrollback shows the lines said on A
// with the ids B's members saw them under live.
func TestModerationAcrossTwoNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	bin := buildChatbridge(t, ctx, dir)

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "nats"), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	env := []string{"CHATBRIDGE_CLUSTER_SECRET=the durable test's cluster secret", "CHATBRIDGE_OP_PASSWORD=" + durableOpPassword}
	tcpA, tcpB, httpB := freeAddr(t), freeAddr(t), freeAddr(t)
	for _, n := range []struct{ id, tcp, http string }{{"node-a", tcpA, ""}, {"node-b", tcpB, httpB}} {
		startProcessEnv(t, ctx, env, n.id, bin, "--tcp", n.tcp, "--http", n.http, "--nats", ns.ClientURL(), "--nats-node", n.id,
			"--nats-required", "--history", "5", "--announce-delay", "0", "--rate", "0", "--connect-rate", "0")
	}

	// On B, a page.
	page := dialJSON(t, ctx, httpB, "webby")
	page.expect("presence", nil)
	// On A, an operator, alice (who registers her name) and a spammer.
	op := named(t, tcpA, "oper")
	op.say("/op " + durableOpPassword)
	op.expect("you are now an operator")
	alice := named(t, tcpA, "alice")
	alice.say("/register alices-password")
	alice.expect("is registered")
	spammer := dialFrom(t, "127.0.0.2", tcpA)
	spammer.expect("Welcome")
	spammer.say("/nick mallory")
	spammer.expect("is now known as mallory")

	said := map[string]string{} // text: the id B's page saw it under
	for _, line := range []string{"one", "two", "three"} {
		alice.say(line)
		said[line] = page.expect("message", func(e jsonEvent) bool { return e.Text == line }).ID
	}
	spammer.say("cheap pills")
	spam := page.expect("message", func(e jsonEvent) bool { return e.Text == "cheap pills" }).ID
	alice.say("four")
	said["four"] = page.expect("message", func(e jsonEvent) bool { return e.Text == "four" }).ID
	for text, id := range said {
		if !strings.HasPrefix(id, "node-a-") {
			t.Fatalf("line %q came to B as %q, want an id of node-a's", text, id)
		}
	}

	op.say("/delete last mallory")
	op.expect("you removed 1 line by mallory")
	if ev := page.expect("delete", nil); ev.ID != spam || ev.From != "mallory" {
		t.Fatalf("B's page got delete %+v, want id %s", ev, spam)
	}
	// A /purge on A: the page on B loses both lines.
	var pills []string
	for _, line := range []string{"more pills", "pills again"} {
		spammer.say(line)
		pills = append(pills, page.expect("message", func(e jsonEvent) bool { return e.Text == line }).ID)
	}
	op.say("/purge mallory")
	op.expect("you removed 2 lines by mallory")
	if ev := page.expect("delete", nil); len(ev.IDs) != 2 || !slices.Contains(ev.IDs, pills[0]) || !slices.Contains(ev.IDs, pills[1]) {
		t.Fatalf("B's page got delete %+v, want ids %q", ev, pills)
	}
	op.say("/topic set on node A")
	op.expect("set on node A")
	op.say("/ban 127.0.0.2 spam")
	op.expect("you banned")
	alice.say("five")
	five := page.expect("message", func(e jsonEvent) bool { return e.Text == "five" }).ID
	alice.say("/quit")
	alice.expect("bye")

	// Scrollback on B, before the last line: the lines said on A, under
	// the ids B's page saw, without the deleted one.
	page.send(`{"type":"history","before":"` + five + `","limit":50}`)
	hist := page.expect("history", nil)
	var ids []string
	for _, raw := range hist.Events {
		var ev jsonEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID == spam || strings.Contains(ev.Text, "pills") {
			t.Fatalf("B's scrollback has the deleted line: %s", raw)
		}
		if want, ok := said[ev.Text]; ok && ev.ID != want {
			t.Fatalf("B's scrollback has %q as %s; B's page saw it as %s", ev.Text, ev.ID, want)
		}
		ids = append(ids, ev.ID)
	}
	if want := []string{said["one"], said["two"], said["three"], said["four"]}; strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("B's scrollback: %q, want %q", ids, want)
	}

	// A newcomer on B: the topic, the lines without the deleted one;
	// alice's name is refused; 127.0.0.2 is refused. What A's operator
	// did reaches B through the state bucket, within moments.
	deadline := time.Now().Add(10 * time.Second)
	for {
		bob := dialTelnet(t, tcpB)
		joined := bob.upTo("end of history")
		if strings.Contains(joined, "pills") {
			t.Fatalf("the deleted line replayed on B:\n%s", joined)
		}
		if !strings.Contains(joined, "<alice> four") {
			t.Fatalf("alice's last line not replayed on B:\n%s", joined)
		}
		bob.say("/nick alice")
		answer := bob.expect("alice")
		bob.conn.Close()
		registered := strings.Contains(answer[len(answer)-1], "is registered")
		if strings.Contains(joined, "set on node A") && registered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("on B, after 10 s: topic shown %v, alice refused %v:\n%s\n%s", strings.Contains(joined, "set on node A"), registered, joined, answer)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The ban, too, within moments.
	for {
		u := dialFrom(t, "127.0.0.2", tcpB)
		first := u.expect("")[0]
		u.conn.Close()
		if strings.Contains(first, "banned") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.2 not refused on B after 10 s: %q", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
