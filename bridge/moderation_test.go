package bridge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

const testOpPassword = "correct-horse-battery"

// TestModerationOverWebSocket: the operator commands work from a JSON
// client as from a terminal: /op, the topic in the JSON hello and as a
// topic event, a mute refused with an error event, a kick that closes a
// plain WebSocket with 1008 and the reason, and /metrics counts them.
// Members who are not operators, and malformed commands, are refused.
func TestModerationOverWebSocket(t *testing.T) {
	st := start(t, tcpserver.HubConfig{OpPassword: testOpPassword, ChangeBurst: -1}, Config{})
	op := st.jsonClient(t, "")
	op.send(`{"type":"command","text":"/nick alice"}`)
	op.expectEvent("nick", nil)
	carol := st.jsonClient(t, "")
	bob := st.plain(t, "")

	carol.send(`{"type":"command","text":"/kick ` + bob.name + `"}`)
	carol.expectEvent("error", func(e event) bool { return strings.Contains(e.Text, "/kick is for operators") })
	carol.send(`{"type":"command","text":"/op wrong-password\n/op ` + testOpPassword + `"}`)
	carol.expectEvent("error", func(e event) bool { return e.Text == "a command is one line" })
	op.send(`{"type":"command","text":"/op ` + testOpPassword + `"}`)
	op.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you are now an operator") })

	op.send(`{"type":"command","text":"/topic Read the FAQ first"}`)
	ev := carol.expectEvent("topic", nil)
	if ev.From != "alice" || ev.Text != "Read the FAQ first" || ev.Room != "lobby" || ev.ID == "" {
		t.Errorf("topic event = %+v", ev)
	}
	bob.expect("alice set the topic of lobby: Read the FAQ first")
	w, _, err := st.dialWS(t, "", &websocket.DialOptions{Subprotocols: []string{JSONProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	if hello := w.event(); hello.Type != "hello" || hello.Topic != "Read the FAQ first" {
		t.Errorf("hello = %+v, want the topic", hello)
	}
	pw, _, err := st.dialWS(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if welcome := pw.read(); !strings.Contains(welcome, "Welcome to chatbridge") || !strings.HasSuffix(welcome, "\r\n*** Topic: Read the FAQ first") {
		t.Errorf("plain welcome = %q, want the topic under it", welcome)
	}

	op.send(`{"type":"command","text":"/mute ` + carol.name + ` 10m"}`)
	carol.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you are muted for 10m by alice") })
	carol.send(`{"type":"message","text":"can anyone hear me"}`)
	carol.expectEvent("error", func(e event) bool { return strings.Contains(e.Text, "you are muted") })

	op.send(`{"type":"command","text":"/kick ` + bob.name + ` off topic"}`)
	if code, reason := bob.closeStatus(); code != websocket.StatusPolicyViolation || reason != "disconnected: kicked by alice: off topic" {
		t.Errorf("kicked: close %v %q", code, reason)
	}
	carol.expectEvent("leave", func(e event) bool { return e.From == bob.name && e.Text == "kicked by alice: off topic" })

	resp, err := http.Get(st.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`chatbridge_moderation_actions_total{action="kick"} 1`, `chatbridge_moderation_actions_total{action="topic"} 1`,
		`chatbridge_moderation_actions_total{action="mute"} 1`, `chatbridge_op_password_failures_total 0`, `chatbridge_connections_banned_total 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestBanOverWebSocket: a ban on the address a page connects from closes
// its WebSocket with 1008 and the reason, and a page that comes back is
// refused at connect with the reason and the time left, 1008 too, so
// that it does not retry.
func TestBanOverWebSocket(t *testing.T) {
	st := start(t, tcpserver.HubConfig{OpPassword: testOpPassword, ChangeBurst: -1}, Config{})
	page := st.jsonClient(t, "")
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	conn, err := d.Dial("tcp", st.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	op := &tcpClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	op.expect("Welcome to chatbridge")
	op.send("/nick alice")
	op.expect("is now known as alice")
	op.send("/op " + testOpPassword)
	op.expect("you are now an operator")
	op.send("/ban " + page.name + " 7d no ads")
	op.expect("you banned " + page.name + " (127.0.0.1/32) for 7d (no ads)")
	if code, reason := page.closeStatus(); code != websocket.StatusPolicyViolation || reason != "disconnected: banned by alice: no ads" {
		t.Errorf("banned page closed with %v %q", code, reason)
	}
	w, _, err := st.dialWS(t, "", &websocket.DialOptions{Subprotocols: []string{JSONProtocol}})
	if err != nil {
		t.Fatal(err)
	}
	code, reason := w.closeStatus()
	if code != websocket.StatusPolicyViolation || !strings.HasPrefix(reason, "you are banned from this server (no ads); 6d23h") && !strings.HasPrefix(reason, "you are banned from this server (no ads); 7d") {
		t.Errorf("page coming back: close %v %q", code, reason)
	}
}

// TestModerateOverWebSocket: a page in a moderated or slow room is told
// why its line was not said, in an error event, and is voiced like a
// terminal user.
func TestModerateOverWebSocket(t *testing.T) {
	st := start(t, tcpserver.HubConfig{OpPassword: testOpPassword, ChangeBurst: -1}, Config{})
	op := st.jsonClient(t, "")
	op.send(`{"type":"command","text":"/op ` + testOpPassword + `"}`)
	op.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "you are now an operator") })
	page := st.jsonClient(t, "")
	op.send(`{"type":"command","text":"/moderate on"}`)
	page.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "made lobby moderated") })
	page.send(`{"type":"message","text":"hello?"}`)
	page.expectEvent("error", func(e event) bool { return strings.HasPrefix(e.Text, "lobby is moderated") })
	op.send(`{"type":"command","text":"/voice ` + page.name + `"}`)
	op.send(`{"type":"command","text":"/slow 30"}`)
	page.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "slow mode") })
	page.send(`{"type":"message","text":"one\ntwo"}`)
	op.expectEvent("message", func(e event) bool { return e.From == page.name && e.Text == "one" })
	page.expectEvent("error", func(e event) bool { return strings.HasPrefix(e.Text, "lobby is in slow mode: one line every 30 s") })
}

// TestRegisteredOverWebSocket: a page registers its name with a JSON
// command, presence then marks it (registered), a page that comes back
// asking for the name at connect is a guest until it proves it, and
// /nick NAME PASSWORD takes it back.
func TestRegisteredOverWebSocket(t *testing.T) {
	st := start(t, tcpserver.HubConfig{ChangeBurst: -1, PasswordCost: 4}, Config{})
	page := st.jsonClient(t, "")
	page.send(`{"type":"command","text":"/nick alice"}`)
	page.expectEvent("nick", nil)
	page.send(`{"type":"command","text":"/register open-sesame"}`)
	page.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, "your name alice is registered") })
	page.send(`{"type":"command","text":"/who"}`)
	if ev := page.expectEvent("presence", nil); len(ev.Registered) != 1 || ev.Registered[0] != "alice" {
		t.Errorf("presence = %+v, want alice registered", ev)
	}
	page.c.Close(websocket.StatusNormalClosure, "")

	back := st.jsonClient(t, "nick=alice")
	if back.name == "alice" {
		t.Fatal("a page asking for a registered name at connect got it")
	}
	back.expectEvent("system", func(e event) bool { return strings.Contains(e.Text, `"alice" is registered`) })
	back.send(`{"type":"command","text":"/nick alice wrong-password"}`)
	back.expectEvent("error", func(e event) bool { return e.Text == "wrong password for alice" })
	back.send(`{"type":"command","text":"/nick alice open-sesame"}`)
	back.expectEvent("nick", func(e event) bool { return e.To == "alice" })
	back.expectEvent("system", func(e event) bool { return e.Text == "you are identified as alice" })
}
